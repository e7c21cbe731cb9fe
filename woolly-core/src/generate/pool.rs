//! Sessions kept for reuse: front ends that run each request on "the model" (Python's
//! `Model.generate`, Node's `model.generate`) take a session from the pool, so that concurrent
//! requests each get their own KV cache and threads, and sequential ones reuse the allocations
//! and the cached prompt prefix of an earlier request.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use super::{Session, SessionParams};
use crate::model::Model;
use crate::Result;

/// A pool of idle sessions on one model, all opened with the same params.
pub struct SessionPool {
    model: Arc<Model>,
    params: SessionParams,
    idle: Mutex<Vec<Session>>,
    max_idle: usize,
}

/// A session taken from a [`SessionPool`]; it goes back to the pool when dropped.
pub struct PooledSession<'a> {
    pool: &'a SessionPool,
    session: Option<Session>,
}

impl SessionPool {
    /// A pool that keeps at most `max_idle` idle sessions (each holds a KV cache).
    ///
    /// # Errors
    /// The params are checked by opening one session, which the pool then keeps.
    pub fn new(model: Arc<Model>, params: SessionParams, max_idle: usize) -> Result<SessionPool> {
        let first = Session::new(model.clone(), &params)?;
        Ok(SessionPool {
            model,
            params,
            idle: Mutex::new(vec![first]),
            max_idle: max_idle.max(1),
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// An idle session, or a new one when all are busy.
    pub fn acquire(&self) -> Result<PooledSession<'_>> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let session = match idle {
            Some(s) => s,
            None => Session::new(self.model.clone(), &self.params)?,
        };
        Ok(PooledSession {
            pool: self,
            session: Some(session),
        })
    }

    /// The params every session of this pool is opened with.
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// Most idle sessions the pool keeps.
    pub fn max_idle(&self) -> usize {
        self.max_idle
    }

    /// Whether this pool is on `model` with `params` and `max_idle`: a front end that hands out
    /// pools by model id gives out this one again instead of opening another.
    pub fn serves(&self, model: &Arc<Model>, params: &SessionParams, max_idle: usize) -> bool {
        Arc::ptr_eq(&self.model, model)
            && self.params == *params
            && self.max_idle == max_idle.max(1)
    }

    /// Idle sessions now.
    pub fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Deref for PooledSession<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        self.session.as_ref().expect("present until drop")
    }
}

impl DerefMut for PooledSession<'_> {
    fn deref_mut(&mut self) -> &mut Session {
        self.session.as_mut().expect("present until drop")
    }
}

impl Drop for PooledSession<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < self.pool.max_idle {
                idle.push(s);
            }
        }
    }
}
