//! `NativeModelCache`: models by id within one memory budget (woolly-core's `ModelCache`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use napi_derive::napi;
use serde_json::Value;
use woolly_core::generate::SessionParams;
use woolly_core::model::{Model, ModelCache};

use crate::error::to_js;
use crate::model::{Loaded, NativeModel};
use crate::options::{LoadOptions, MemoryOptions, MAX_IDLE_SESSIONS};
use crate::task::{EventFn, NativeTask};

/// What a session pool of the cache was handed out with, by model id: a live one is handed
/// out again (so that a model's JavaScript objects share its idle sessions) when
/// woolly-core's `SessionPool::serves` says it is on that model with those params.
struct Handed {
    loaded: Weak<Loaded>,
    session: SessionParams,
    max_idle: usize,
}

type HandedMap = Arc<Mutex<HashMap<String, Handed>>>;

fn lock(h: &HandedMap) -> std::sync::MutexGuard<'_, HashMap<String, Handed>> {
    h.lock().unwrap_or_else(|e| e.into_inner())
}

/// The live pool handed out for `id` on `model` with the same session params, or a new one.
fn hand_out(
    handed: &HandedMap,
    id: &str,
    model: Arc<Model>,
    session: SessionParams,
    max_idle: usize,
) -> woolly_core::Result<Arc<Loaded>> {
    let live = lock(handed).get(id).and_then(|h| h.loaded.upgrade());
    if let Some(l) = live.filter(|l| l.pool.serves(&model, &session, max_idle)) {
        return Ok(l);
    }
    let loaded = Loaded::open(model, session.clone(), max_idle)?;
    lock(handed).insert(
        id.to_string(),
        Handed {
            loaded: Arc::downgrade(&loaded),
            session,
            max_idle,
        },
    );
    Ok(loaded)
}

/// Models by id within one memory budget (woolly-core's `ModelCache`). A `NativeModel` loaded
/// through it holds its model, which is never evicted while held (until `close()`).
#[napi]
pub struct NativeModelCache {
    cache: Arc<ModelCache>,
    handed: HandedMap,
}

#[napi]
impl NativeModelCache {
    #[napi(constructor, catch_unwind)]
    pub fn new(options: Option<MemoryOptions>) -> napi::Result<Self> {
        let policy = options
            .unwrap_or_default()
            .policy()
            .map_err(|e| to_js(&e))?;
        Ok(NativeModelCache {
            cache: Arc::new(ModelCache::new(policy).map_err(|e| to_js(&e))?),
            handed: Default::default(),
        })
    }

    /// Loads the model `id` (from `path`, or the default model, unless it is loaded) into
    /// `target` on a new thread, evicting idle models to make room. Events as `NativeModel.load`.
    #[napi(catch_unwind)]
    pub fn load(
        &self,
        target: &NativeModel,
        id: String,
        path: Option<String>,
        options: Option<LoadOptions>,
        progress: bool,
        on_event: EventFn,
    ) -> napi::Result<NativeTask> {
        let cache = self.cache.clone();
        let handed = self.handed.clone();
        target.begin_load(
            options,
            progress,
            on_event,
            move |params, session, max_idle| {
                let model = cache.load(&id, path.as_deref().map(Path::new), params)?;
                hand_out(&handed, &id, model, session, max_idle)
            },
        )
    }

    /// The model `id` when it is loaded (marked as used), else null.
    #[napi(catch_unwind)]
    pub fn get(&self, id: String) -> napi::Result<Option<NativeModel>> {
        let Some(model) = self.cache.get(&id) else {
            return Ok(None);
        };
        // (The lock is let go before hand_out takes it again.)
        let (live, session, max_idle) = match lock(&self.handed).get(&id) {
            Some(h) => (h.loaded.upgrade(), h.session.clone(), h.max_idle),
            None => (None, SessionParams::default(), MAX_IDLE_SESSIONS),
        };
        let loaded = match live {
            Some(l) if Arc::ptr_eq(l.pool.model(), &model) => l,
            _ => hand_out(&self.handed, &id, model, session, max_idle).map_err(|e| to_js(&e))?,
        };
        let m = NativeModel::new();
        *m.inner.write().unwrap_or_else(|e| e.into_inner()) = Some(loaded);
        Ok(Some(m))
    }

    /// Removes `id` from the cache; its memory returns once no model object holds it.
    #[napi(catch_unwind)]
    pub fn unload(&self, id: String) -> bool {
        lock(&self.handed).remove(&id);
        self.cache.unload(&id)
    }

    /// Keeps `id` from being evicted (`pinned` true, the default) or lets it be again.
    #[napi(catch_unwind)]
    pub fn pin(&self, id: String, pinned: Option<bool>) -> napi::Result<()> {
        self.cache
            .pin(&id, pinned.unwrap_or(true))
            .map_err(|e| to_js(&e))
    }

    /// Ids of the loaded models, most recently used first.
    #[napi(catch_unwind)]
    pub fn ids(&self) -> Vec<String> {
        self.cache.ids()
    }

    /// The cache's memory figures and models (woolly-core's `ModelCache::report`).
    #[napi(catch_unwind)]
    pub fn report(&self) -> Value {
        self.cache.report()
    }

    /// Evicts idle, unpinned models while the machine is under memory pressure; the ids evicted.
    #[napi(catch_unwind)]
    pub fn relieve_pressure(&self) -> Vec<String> {
        let gone = self.cache.relieve_pressure();
        lock(&self.handed).retain(|id, _| !gone.contains(id));
        gone
    }
}
