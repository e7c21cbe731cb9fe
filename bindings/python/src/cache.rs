//! Models by id within one memory budget (woolly-core's `ModelCache`), and the session pools
//! handed out for them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use pyo3::prelude::*;
use woolly_core::generate::{SessionParams, SessionPool};
use woolly_core::model::{Model, ModelCache};

use crate::errors::IntoPy;
use crate::model::{load_with_progress, NativeModel, MAX_IDLE_SESSIONS};
use crate::options::{memory_policy, LoadOptions};

/// Session pools this cache handed out, by model id: a live one is handed out again (so that a
/// model's Python objects share its idle sessions), with the session params of the last load.
struct Handed {
    pool: Weak<SessionPool>,
    session: SessionParams,
}

/// Models by id within one memory budget (woolly-core's `ModelCache`); the `NativeModel`s it
/// returns hold their model, which keeps it from being evicted while they live.
#[pyclass(frozen, module = "woolly._woolly")]
pub struct NativeModelCache {
    cache: Arc<ModelCache>,
    handed: Mutex<HashMap<String, Handed>>,
}

impl NativeModelCache {
    fn handed(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handed>> {
        self.handed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live pool handed out for `id` when it is on `model` (and, with `session`, was
    /// opened with those params).
    fn live_pool(
        &self,
        id: &str,
        model: &Arc<Model>,
        session: Option<&SessionParams>,
    ) -> Option<Arc<SessionPool>> {
        let handed = self.handed();
        let h = handed.get(id)?;
        let pool = h.pool.upgrade()?;
        let session = session.unwrap_or(pool.params());
        pool.serves(model, session, MAX_IDLE_SESSIONS)
            .then_some(pool)
    }

    fn hand_out(&self, id: &str, pool: SessionPool, session: SessionParams) -> NativeModel {
        let pool = Arc::new(pool);
        self.handed().insert(
            id.to_string(),
            Handed {
                pool: Arc::downgrade(&pool),
                session,
            },
        );
        NativeModel { pool }
    }
}

#[pymethods]
impl NativeModelCache {
    #[new]
    #[pyo3(signature = (memory_budget, memory_reserve, pressure_threshold))]
    fn new(
        py: Python<'_>,
        memory_budget: Option<u64>,
        memory_reserve: Option<u64>,
        pressure_threshold: Option<f64>,
    ) -> PyResult<Self> {
        let policy = memory_policy(py, memory_budget, memory_reserve, pressure_threshold)?;
        Ok(NativeModelCache {
            cache: Arc::new(ModelCache::new(policy).py_err(py)?),
            handed: Mutex::new(HashMap::new()),
        })
    }

    /// The model `id`, loaded from `path` (or the default model) unless it already is; the
    /// options' memory policy is ignored (the cache's applies).
    #[pyo3(signature = (id, path, options, progress))]
    fn load(
        &self,
        py: Python<'_>,
        id: &str,
        path: Option<PathBuf>,
        options: PyRef<'_, LoadOptions>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<NativeModel> {
        let cache = &self.cache;
        let model = load_with_progress(py, &options, progress, |params| {
            cache.load(id, path.as_deref(), params)
        })?;
        if let Some(pool) = self.live_pool(id, &model, Some(&options.session)) {
            return Ok(NativeModel { pool });
        }
        let sp = options.session.clone();
        let pool = py
            .detach(|| SessionPool::new(model, sp.clone(), MAX_IDLE_SESSIONS))
            .py_err(py)?;
        Ok(self.hand_out(id, pool, sp))
    }

    /// The model `id` when it is loaded (marked as used), else None.
    fn get(&self, py: Python<'_>, id: &str) -> PyResult<Option<NativeModel>> {
        let Some(model) = self.cache.get(id) else {
            return Ok(None);
        };
        if let Some(pool) = self.live_pool(id, &model, None) {
            return Ok(Some(NativeModel { pool }));
        }
        let sp = self
            .handed()
            .get(id)
            .map(|h| h.session.clone())
            .unwrap_or_default();
        let pool = py
            .detach(|| SessionPool::new(model, sp.clone(), MAX_IDLE_SESSIONS))
            .py_err(py)?;
        Ok(Some(self.hand_out(id, pool, sp)))
    }

    /// Removes `id`; its memory returns once no Model object holds it. Whether it was loaded.
    fn unload(&self, py: Python<'_>, id: &str) -> bool {
        self.handed().remove(id);
        let cache = &self.cache;
        py.detach(|| cache.unload(id))
    }

    /// Keeps `id` from being evicted, or lets it be again.
    fn pin(&self, py: Python<'_>, id: &str, pinned: bool) -> PyResult<()> {
        self.cache.pin(id, pinned).py_err(py)
    }

    /// Ids of the loaded models, most recently used first.
    fn ids(&self) -> Vec<String> {
        self.cache.ids()
    }

    /// The cache's memory figures and models, as JSON.
    fn report_json(&self) -> String {
        self.cache.report().to_string()
    }

    /// Evicts idle models while the machine is under memory pressure; the ids evicted.
    fn relieve_pressure(&self, py: Python<'_>) -> Vec<String> {
        let cache = &self.cache;
        let gone = py.detach(|| cache.relieve_pressure());
        self.handed().retain(|id, _| !gone.contains(id));
        gone
    }
}
