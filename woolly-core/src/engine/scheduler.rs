//! Choosing what runs: the queue of waiting requests, shared by the callers that fill it and
//! the worker that empties it; admission from it (by rank, as KV caches allow, dropping what
//! was cancelled or is late); and the plan of each step (which sequences, how many prompt
//! tokens, whether an urgent prompt gets a step of its own).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::generate::output::{ModelTokenizer, Output};
use crate::{Error, Result};

use super::request::{EventSink, Prepared, Priority, Waiting};
use super::state::Shared;
use super::worker::{ms, Active, Worker};

impl Shared {
    /// Queues a prepared request (the second half of
    /// [`Engine::submit_with`](super::Engine::submit_with), see
    /// [`Engine::enqueue`](super::Engine::enqueue)); returns its id.
    pub(super) fn enqueue(&self, request: Prepared, sink: EventSink) -> Result<u64> {
        if request.deadline.is_some_and(|d| d <= Instant::now()) {
            self.stats().deadline_exceeded += 1;
            return Err(Error::DeadlineExceeded(
                "the request's deadline had passed when it was submitted".into(),
            ));
        }
        let urgent = request.urgent();
        let mut q = self.lock();
        if q.shutdown {
            return Err(Error::Cancelled);
        }
        if q.waiting.len() >= self.capacity {
            drop(q);
            self.stats().rejected_busy += 1;
            return Err(Error::Busy(format!(
                "{} requests are waiting (the queue holds {}); try again later",
                self.capacity, self.capacity
            )));
        }
        let id = request.id;
        let cancel = request.params.cancel.clone().unwrap_or_default();
        q.cancels.insert(id, cancel.clone());
        q.waiting.push(Waiting {
            req: request,
            cancel,
            sink,
            submitted: Instant::now(),
        });
        drop(q);
        if urgent && !self.step_urgent.load(Ordering::Relaxed) {
            self.preempt.store(true, Ordering::Relaxed);
        }
        self.stats().submitted += 1;
        self.wake.notify_all();
        Ok(id)
    }

    /// The estimate of [`Engine::estimated_wait`](super::Engine::estimated_wait).
    pub(super) fn estimated_wait(&self, priority: Priority) -> Duration {
        let step_us = f64::from_bits(self.decode_step_us.load(Ordering::Relaxed));
        let q = self.lock();
        let ahead: usize = q
            .waiting
            .iter()
            .filter(|w| w.req.priority >= priority)
            .map(|w| w.req.params.max_tokens + 1)
            .sum();
        let free = self.max_concurrent.saturating_sub(q.active);
        let n_ahead = q
            .waiting
            .iter()
            .filter(|w| w.req.priority >= priority)
            .count();
        if n_ahead < free {
            return Duration::from_micros(step_us as u64);
        }
        // Slots free as running requests end: roughly, the tokens ahead spread over the slots.
        let steps = ahead as f64 / self.max_concurrent as f64 + 1.0;
        Duration::from_micros((steps * step_us) as u64)
    }
}

impl Waiting {
    /// Admission order: priority, latency sensitivity, cost, arrival.
    pub(super) fn rank(&self) -> (std::cmp::Reverse<Priority>, bool, usize, u64) {
        (
            std::cmp::Reverse(self.req.priority),
            !self.req.latency_sensitive,
            self.req.prompt_ids.len() + self.req.params.max_tokens,
            self.req.id,
        )
    }
}

impl Active {
    /// Prompt tokens this sequence reads in a step of at most `chunk` prompt tokens. The last
    /// part of a prompt is never split off below 64 tokens (attention computes batches of 64
    /// or more queries as prompt tiles, smaller ones query by query): how a prompt is chunked
    /// then does not change its numbers.
    pub(super) fn prefill_len(&self, chunk: usize) -> usize {
        let left = self.w.req.prompt_ids.len() - self.history.len();
        if left <= chunk || left - chunk < 64 {
            left
        } else {
            chunk
        }
    }
}

impl Worker {
    /// Drops expired and cancelled waiting requests, admits what fits, and waits when there
    /// is nothing to do. Returns false at shutdown.
    pub(super) fn admit(&mut self) -> bool {
        let mut q = self.shared.lock();
        loop {
            if q.shutdown {
                return false;
            }
            let now = Instant::now();
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut q.waiting)
                .into_iter()
                .partition(|w| w.cancel.is_cancelled() || w.req.deadline.is_some_and(|d| d <= now));
            q.waiting = kept;
            if !gone.is_empty() {
                drop(q);
                for w in gone {
                    let e = if w.cancel.is_cancelled() {
                        Error::Cancelled
                    } else {
                        Error::DeadlineExceeded(format!(
                            "the deadline passed after {:.0} ms in the queue, before the request started",
                            ms(w.submitted.elapsed())
                        ))
                    };
                    self.fail_waiting(w, e);
                }
                q = self.shared.lock();
                continue;
            }
            // Admit by rank while there is room.
            while self.active.len() < self.params.max_concurrent && !q.waiting.is_empty() {
                let best = (0..q.waiting.len())
                    .min_by_key(|&i| q.waiting[i].rank())
                    .expect("not empty");
                let cache = match self.free_caches.pop() {
                    Some(c) => c,
                    None => {
                        let account = self.model.memory_account();
                        if account
                            .charge("a sequence's KV cache", self.kv_charge)
                            .is_err()
                        {
                            if self.active.is_empty() {
                                let w = q.waiting.swap_remove(best);
                                drop(q);
                                let e = Error::InsufficientMemory {
                                    what: format!("a {}-token sequence", self.n_ctx),
                                    required: self.kv_charge,
                                    available: account.headroom(),
                                    budgeted: account.policy().budget().is_some(),
                                };
                                self.fail_waiting(w, e);
                                q = self.shared.lock();
                                continue;
                            }
                            // Wait for a running request to give its cache back.
                            break;
                        }
                        self.kv_charged += self.kv_charge;
                        self.model
                            .new_kv_cache(self.n_ctx, self.params.kv_precision)
                    }
                };
                let mut w = q.waiting.swap_remove(best);
                let prepared = w.req.out.take();
                let out = match prepared.map_or_else(
                    || Output::new(ModelTokenizer(self.model.clone()), &w.req.params),
                    Ok,
                ) {
                    Ok(o) => o,
                    Err(e) => {
                        self.free_caches.push(cache);
                        drop(q);
                        self.fail_waiting(w, e);
                        q = self.shared.lock();
                        continue;
                    }
                };
                let mut cache = cache;
                cache.clear();
                self.active.push(Active {
                    history: Vec::with_capacity(w.req.prompt_ids.len() + w.req.params.max_tokens),
                    w,
                    cache,
                    pending: None,
                    out,
                    started: Instant::now(),
                    prompt_done: None,
                    first_token: None,
                });
                q.active = self.active.len();
            }
            if !self.active.is_empty() {
                return true;
            }
            // Idle: wait for work, or for the next deadline among the waiting.
            let next_deadline = q.waiting.iter().filter_map(|w| w.req.deadline).min();
            let timeout = next_deadline
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(3600));
            let had_waiting = !q.waiting.is_empty();
            q = self
                .shared
                .wake
                .wait_timeout(q, timeout)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            let latency = self
                .params
                .max_latency
                .max(crate::policy::power::manager().knobs().batch_latency);
            if !had_waiting && !latency.is_zero() && !q.waiting.is_empty() {
                // Give others a moment to share the first step.
                let until = Instant::now() + latency;
                while !q.shutdown
                    && Instant::now() < until
                    && q.waiting.len() < self.params.max_batch_size
                {
                    let left = until.saturating_duration_since(Instant::now());
                    q = self
                        .shared
                        .wake
                        .wait_timeout(q, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }

    /// Ends the running requests that were cancelled or whose deadline passed.
    pub(super) fn drop_ended(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.active.len() {
            let a = &self.active[i];
            let err = if a.w.cancel.is_cancelled() {
                Some(Error::Cancelled)
            } else if a.w.req.deadline.is_some_and(|d| d <= now) {
                Some(Error::DeadlineExceeded(format!(
                    "the deadline passed after {} generated tokens",
                    a.out.generated.len()
                )))
            } else {
                None
            };
            match err {
                Some(e) => {
                    let a = self.active.swap_remove(i);
                    self.finish(a, Err(e));
                }
                None => i += 1,
            }
        }
    }

    /// Chooses the sequences of the next step, as (index in `active`, tokens), at most
    /// `max_batch` of them, and tells `submit` whether the step holds urgent work (then an
    /// urgent arrival does not preempt it).
    pub(super) fn plan(&mut self, max_batch: usize) -> Vec<(usize, usize)> {
        // Most urgent first: they get the step's places and its prompt tokens.
        self.active.sort_by_key(|a| {
            (
                std::cmp::Reverse(a.w.req.priority),
                !a.w.req.latency_sensitive,
                a.w.req.id,
            )
        });
        // An urgent request still reading its prompt gets a step of its own.
        let exclusive = self
            .active
            .iter()
            .position(|a| a.w.req.urgent() && a.prefilling());
        let mut chosen: Vec<(usize, usize)> = Vec::new(); // (index, tokens)
        let mut prompt_budget = self.params.prefill_chunk;
        match exclusive {
            Some(i) => {
                let n = self.active[i].prefill_len(prompt_budget);
                chosen.push((i, n));
            }
            None => {
                for (i, a) in self.active.iter().enumerate() {
                    if chosen.len() == max_batch {
                        break;
                    }
                    if a.prefilling() {
                        if prompt_budget == 0 {
                            continue;
                        }
                        let n = a.prefill_len(prompt_budget);
                        prompt_budget = prompt_budget.saturating_sub(n);
                        chosen.push((i, n));
                    } else {
                        chosen.push((i, 1));
                    }
                }
            }
        }
        let urgent = chosen.iter().any(|&(i, _)| self.active[i].w.req.urgent());
        self.shared.step_urgent.store(urgent, Ordering::Relaxed);
        self.shared.preempt.store(false, Ordering::Relaxed);
        chosen
    }
}
