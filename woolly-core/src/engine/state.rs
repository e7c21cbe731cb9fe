//! What the engine's handle and its worker share: the queue of waiting requests (with what the
//! handles need to know of the running ones), the signals between them, the counters and the
//! engine's fixed sizes. How the queue is filled and emptied is `scheduler.rs`'s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Condvar, Mutex};

use crate::generate::CancelToken;

use super::request::Waiting;
use super::EngineStats;

/// The requests waiting, and what the handles need to know of the running ones.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) waiting: Vec<Waiting>,
    pub(super) shutdown: bool,
    /// Requests running now.
    pub(super) active: usize,
    /// The cancellation of every request not finished yet (waiting or running), by id.
    pub(super) cancels: HashMap<u64, CancelToken>,
}

/// What the engine's handle and its worker share: the queue, and the signals between them.
pub(super) struct Shared {
    pub(super) queue: Mutex<Queue>,
    pub(super) wake: Condvar,
    /// Set by `submit` when an urgent request arrives while a step of less urgent work runs.
    pub(super) preempt: AtomicBool,
    /// Whether the running step holds urgent work (then it is not preempted).
    pub(super) step_urgent: AtomicBool,
    pub(super) stats: Mutex<EngineStats>,
    /// Smoothed step figures (f64 bits), for the wait estimate.
    pub(super) decode_step_us: AtomicU64,
    /// The last id handed out.
    pub(super) next_id: AtomicU64,
    pub(super) capacity: usize,
    pub(super) max_concurrent: usize,
    pub(super) n_ctx: usize,
}

impl Shared {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn stats(&self) -> std::sync::MutexGuard<'_, EngineStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}
