//! Several models by id, within one memory budget.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Model, ModelParams};
use crate::policy::memory::{MemoryAccount, MemoryPolicy};
use crate::{Error, Result};

/// Models by id, loaded on demand and shared by any number of sessions, within one
/// [`MemoryPolicy`] for all of them.
///
/// When a load would exceed the budget, the least recently used model that nobody holds (no
/// session, no handle outside the cache) and that is not pinned is evicted, then the next, until
/// the new one fits; a model in use is never evicted. A load that cannot fit even then fails with
/// [`Error::InsufficientMemory`]. [`ModelCache::relieve_pressure`] evicts idle models while the
/// machine is under memory pressure. Every method is safe to call from any thread.
pub struct ModelCache {
    account: Arc<MemoryAccount>,
    entries: Mutex<Entries>,
    /// Loads run one at a time, so that two of them cannot both count the same headroom.
    loading: Mutex<()>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<String, Entry>,
    clock: u64,
    evictions: u64,
}

struct Entry {
    model: Arc<Model>,
    path: PathBuf,
    last_used: u64,
    pinned: bool,
}

impl Entries {
    fn touch(&mut self, id: &str) -> Option<Arc<Model>> {
        self.clock += 1;
        let clock = self.clock;
        self.map.get_mut(id).map(|e| {
            e.last_used = clock;
            e.model.clone()
        })
    }

    /// The id of the least recently used model that may go.
    fn victim(&self) -> Option<String> {
        self.map
            .iter()
            .filter(|(_, e)| !e.pinned && Arc::strong_count(&e.model) == 1)
            .min_by_key(|(_, e)| e.last_used)
            .map(|(id, _)| id.clone())
    }
}

impl ModelCache {
    /// An empty cache whose models share `policy` (its budget covers all of them and their
    /// sessions).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a policy that does not validate.
    pub fn new(policy: MemoryPolicy) -> Result<ModelCache> {
        policy.validate()?;
        Ok(ModelCache {
            account: Arc::new(MemoryAccount::new(policy)),
            entries: Mutex::new(Entries::default()),
            loading: Mutex::new(()),
        })
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The model `id`, loading it from `path` (or the default model) when it is not loaded.
    /// When `id` is loaded from another path, that model is swapped for this one (the old one
    /// lives on while anyone still holds it). `params.memory` is ignored: the cache's policy
    /// applies.
    ///
    /// # Errors
    /// As [`Model::load`]; [`Error::InsufficientMemory`] when the model does not fit even after
    /// evicting every idle model.
    pub fn load(&self, id: &str, path: Option<&Path>, params: &ModelParams) -> Result<Arc<Model>> {
        if id.is_empty() {
            return Err(Error::InvalidArgument(
                "a model id must not be empty".into(),
            ));
        }
        let _one_at_a_time = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        let path = super::resolve_model_path(path)?;
        {
            let mut e = self.entries();
            if e.map.get(id).is_some_and(|x| x.path == path) {
                return Ok(e.touch(id).expect("present"));
            }
            // Swapping: the old model under this id goes (it lives on while held).
            e.map.remove(id);
        }
        let estimate = Model::estimate(Some(&path), params)?;
        // Evict until the model and one session fit, or nothing more can go.
        loop {
            if estimate.total_bytes <= self.account.headroom() {
                break;
            }
            let mut e = self.entries();
            let Some(victim) = e.victim() else { break };
            let gone = e.map.remove(&victim).expect("present");
            e.evictions += 1;
            drop(e);
            crate::log!(
                crate::log::Level::Info,
                "model cache: evicting {victim} ({}) to make room for {id}",
                gone.path.display()
            );
            // Dropped here, outside the lock: its memory returns to the account.
            drop(gone);
        }
        let model = Model::load_charged(Some(&path), params, self.account.clone())?;
        let mut e = self.entries();
        e.clock += 1;
        let last_used = e.clock;
        e.map.insert(
            id.to_string(),
            Entry {
                model: model.clone(),
                path,
                last_used,
                pinned: false,
            },
        );
        Ok(model)
    }

    /// The model `id` when it is loaded (and marks it used).
    pub fn get(&self, id: &str) -> Option<Arc<Model>> {
        self.entries().touch(id)
    }

    /// Removes `id` from the cache. Its memory returns when the last session or handle on it
    /// is dropped. Returns whether it was loaded.
    pub fn unload(&self, id: &str) -> bool {
        let gone = self.entries().map.remove(id);
        gone.is_some()
    }

    /// Keeps `id` from being evicted (`true`) or lets it be again (`false`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `id` is not loaded.
    pub fn pin(&self, id: &str, pinned: bool) -> Result<()> {
        match self.entries().map.get_mut(id) {
            Some(e) => {
                e.pinned = pinned;
                Ok(())
            }
            None => Err(Error::InvalidArgument(format!("no model {id:?} is loaded"))),
        }
    }

    /// Evicts idle, unpinned models (least recently used first) while the machine is under
    /// memory pressure; returns the ids evicted.
    pub fn relieve_pressure(&self) -> Vec<String> {
        let mut evicted = Vec::new();
        while self.account.budget().under_pressure() {
            let mut e = self.entries();
            let Some(victim) = e.victim() else { break };
            let gone = e.map.remove(&victim);
            e.evictions += 1;
            drop(e);
            crate::log!(
                crate::log::Level::Warn,
                "memory pressure: evicting idle model {victim}"
            );
            drop(gone);
            evicted.push(victim);
        }
        evicted
    }

    /// Ids of the loaded models, most recently used first.
    pub fn ids(&self) -> Vec<String> {
        let e = self.entries();
        let mut v: Vec<_> = e
            .map
            .iter()
            .map(|(k, x)| (x.last_used, k.clone()))
            .collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.0));
        v.into_iter().map(|(_, k)| k).collect()
    }

    /// The account the cache's models and sessions charge.
    pub fn account(&self) -> &Arc<MemoryAccount> {
        &self.account
    }

    /// The cache as JSON: the memory figures and each model (id, path, estimate, in use,
    /// pinned).
    pub fn report(&self) -> serde_json::Value {
        let e = self.entries();
        let mut models: Vec<_> = e
            .map
            .iter()
            .map(|(id, x)| {
                serde_json::json!({
                    "id": id,
                    "path": x.path.display().to_string(),
                    "model_bytes": x.model.memory_estimate().model_bytes(),
                    "in_use": Arc::strong_count(&x.model) > 1,
                    "pinned": x.pinned,
                    "last_used": x.last_used,
                })
            })
            .collect();
        models.sort_by_key(|m| std::cmp::Reverse(m["last_used"].as_u64()));
        let b = self.account.budget();
        serde_json::json!({
            "models": models,
            "evictions": e.evictions,
            "held_bytes": self.account.held(),
            "headroom_bytes": b.headroom(self.account.held()),
            "budget_bytes": b.budget_bytes,
            "reserve_bytes": b.reserve_bytes,
            "available_bytes": b.available_bytes,
            "total_bytes": b.total_bytes,
            "under_pressure": b.under_pressure(),
        })
    }
}
