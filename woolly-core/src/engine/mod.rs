//! The engine: one model serving many requests at once, from any thread.
//!
//! Continuous batching: a worker thread runs decode *steps*. Each step is one forward pass over
//! every running sequence (the weights are read once for all of them): one token for each
//! sequence that is generating, and a chunk of the prompt of a sequence that is still reading
//! its prompt, so that a long prompt does not stall the others. New requests join between
//! steps; finished ones leave at once.
//!
//! Scheduling: waiting requests are admitted by priority, then latency sensitivity, then cost
//! (prompt plus tokens asked for), then arrival. An urgent request (High or Critical, or
//! latency-sensitive) that arrives while a step of less urgent work runs stops that step at the
//! next layer (the step is redone later; nothing is lost) and has its prompt read in a step of
//! its own, so its first token comes about as fast as on an idle engine. A bounded queue answers
//! [`Error::Busy`]; a deadline that passes before a request finishes ends it with
//! [`Error::DeadlineExceeded`] (checked between steps and, within a step, between layers: a
//! request that finishes after its deadline never reports success); any request can be
//! cancelled from any thread, by its handle or by its id ([`Engine::cancel`]). Every accepted
//! request ends with exactly one [`Event::Done`] or [`Event::Error`].
//!
//! Threads: preparing a request (tokenizing, rendering a template) takes no lock, so a long
//! prompt never holds up cancellation or the running requests. Sinks run on the engine's own
//! thread: there, waiting for a request of the same engine ([`RequestHandle::wait`]) answers
//! [`Error::Busy`] instead of waiting forever, and dropping the engine does not wait for the
//! thread (it stops once the sink returns).
//!
//! Files, one job each:
//! - `mod.rs` (here): the [`Engine`] handle (checking and preparing requests, submitting,
//!   cancelling, counters) and its [`EngineParams`] and [`EngineStats`];
//! - `request.rs`: the request types: what is submitted ([`Request`], [`Prompt`],
//!   [`Priority`]), prepared ([`Prepared`]) and waiting; the [`Event`]s of a request, its
//!   result and its [`RequestHandle`];
//! - `state.rs`: what the handle and the worker share: the queue, the signals between them,
//!   the counters;
//! - `scheduler.rs`: choosing what runs in a step: the queue, admission by rank, deadlines
//!   and cancellation before a request runs, the plan of each step (batching, prompt chunks,
//!   urgent prompts alone) and preemption;
//! - `worker.rs`: the engine's thread: it runs the steps (forward pass, sampling) and delivers
//!   every request's events and its one final answer.

mod request;
mod scheduler;
mod state;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::generate::GenerateParams;
use crate::kernels::cpu::ThreadPool;
use crate::metrics::EngineFigures;
use crate::model::kv_cache::KvPrecision;
use crate::model::Model;
use crate::{Error, Result};

pub use request::{Event, EventSink, Prepared, Priority, Prompt, Request, RequestHandle};
use state::{Queue, Shared};
use worker::Worker;

/// How an engine runs.
#[derive(Debug, Clone)]
pub struct EngineParams {
    /// Most sequences in one step.
    pub max_batch_size: usize,
    /// Most requests running at once (each holds a KV cache of `context_size`).
    pub max_concurrent: usize,
    /// Most requests waiting to start; beyond it, [`Engine::submit`] answers [`Error::Busy`].
    pub queue_capacity: usize,
    /// Prompt tokens read per step (a longer prompt takes several steps, so that running
    /// sequences keep their pace).
    pub prefill_chunk: usize,
    /// When the engine is idle, how long a new request may wait for others to share its
    /// first step (0: start at once).
    pub max_latency: Duration,
    /// Context of each sequence in tokens (0: the model's default, see
    /// [`crate::model::default_context`]).
    pub context_size: usize,
    pub kv_precision: KvPrecision,
    /// Threads, the worker's included (0: Woolly's policy for batched work; an explicit count
    /// above the CPUs available to the process is capped there, with a warning in the log).
    pub threads: usize,
}

impl Default for EngineParams {
    fn default() -> Self {
        EngineParams {
            max_batch_size: 16,
            max_concurrent: 16,
            queue_capacity: 256,
            prefill_chunk: 256,
            max_latency: Duration::ZERO,
            context_size: 0,
            kv_precision: KvPrecision::F16,
            threads: 0,
        }
    }
}

impl EngineParams {
    fn validate(&self) -> Result<()> {
        let check = |name: &str, v: usize, max: usize| {
            if v == 0 || v > max {
                Err(Error::InvalidArgument(format!(
                    "{name} = {v} must be in 1..={max}"
                )))
            } else {
                Ok(())
            }
        };
        check("max_batch_size", self.max_batch_size, 1024)?;
        check("max_concurrent", self.max_concurrent, 4096)?;
        check("queue_capacity", self.queue_capacity, 1 << 20)?;
        check("prefill_chunk", self.prefill_chunk, 1 << 16)?;
        if self.threads > 1024 {
            return Err(Error::InvalidArgument(format!(
                "{} threads is absurd (at most 1024)",
                self.threads
            )));
        }
        if self.max_latency > Duration::from_secs(10) {
            return Err(Error::InvalidArgument(
                "max_latency above 10 s is absurd".into(),
            ));
        }
        Ok(())
    }
}

/// Counters of an engine: the figures the metrics registry takes as they are
/// ([`EngineFigures`]).
pub type EngineStats = EngineFigures;

/// One model serving many requests (see the module documentation). Dropping it ends every
/// request still waiting or running with [`Error::Cancelled`].
pub struct Engine {
    shared: Arc<Shared>,
    model: Arc<Model>,
    worker: Option<std::thread::JoinHandle<()>>,
    /// The worker's thread, where sinks run.
    worker_thread: std::thread::ThreadId,
}

impl Engine {
    /// Starts an engine on `model`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for absurd params; [`Error::InsufficientMemory`] when not
    /// even one sequence's KV cache fits the model's memory budget.
    pub fn new(model: Arc<Model>, params: EngineParams) -> Result<Engine> {
        params.validate()?;
        let hp = model.hparams();
        let n_ctx = crate::model::resolve_context(hp, params.context_size)?;
        let threads = match params.threads {
            0 => crate::policy::threads_for(
                &crate::platform::Hardware::detect(),
                crate::policy::Workload::BatchInference,
            ),
            n => crate::policy::threads::cap_threads(n),
        };
        let pool = ThreadPool::new(threads)
            .map_err(|e| Error::Internal(format!("cannot start worker threads: {e}")))?;
        // Scratch for the largest step, charged once; each sequence's KV cache is charged
        // when it starts.
        let step_tokens = params.prefill_chunk + params.max_batch_size;
        let scratch_charge = crate::model::scratch_bytes(hp, step_tokens);
        let account = model.memory_account().clone();
        account.charge("the engine's scratch", scratch_charge)?;
        let kv_charge = crate::model::kv_bytes(hp, n_ctx, params.kv_precision);
        if kv_charge > account.headroom() {
            account.release(scratch_charge);
            return Err(Error::InsufficientMemory {
                what: format!("one {n_ctx}-token sequence"),
                required: kv_charge,
                available: account.headroom(),
                budgeted: account.policy().budget().is_some(),
            });
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            preempt: AtomicBool::new(false),
            step_urgent: AtomicBool::new(false),
            stats: Mutex::new(EngineStats::default()),
            decode_step_us: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            capacity: params.queue_capacity,
            max_concurrent: params.max_concurrent,
            n_ctx,
        });
        let mut worker = Worker::new(
            shared.clone(),
            model.clone(),
            params,
            n_ctx,
            pool,
            kv_charge,
            scratch_charge,
        );
        let handle = std::thread::Builder::new()
            .name("woolly-engine".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::Internal(format!("cannot start the engine thread: {e}")))?;
        Ok(Engine {
            shared,
            model,
            worker_thread: handle.thread().id(),
            worker: Some(handle),
        })
    }

    /// Whether the calling thread is this engine's own, where sinks run (a call there that
    /// waits for this engine's work would wait forever).
    pub fn is_engine_thread(&self) -> bool {
        std::thread::current().id() == self.worker_thread
    }

    /// Cancels request `id` (from any thread): it ends with [`Error::Cancelled`] within a
    /// step (within a layer of the running step). Returns false when no such request is
    /// waiting or running (it ended, or never was).
    pub fn cancel(&self, id: u64) -> bool {
        let token = self.shared.lock().cancels.get(&id).cloned();
        match token {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The context of each sequence.
    pub fn context_size(&self) -> usize {
        self.shared.n_ctx
    }

    /// Submits `request`; its events arrive on the returned handle.
    ///
    /// # Errors
    /// At once, without queueing: [`Error::Busy`] when the queue is full,
    /// [`Error::DeadlineExceeded`] for a deadline already past, tokenizer and template errors,
    /// [`Error::ContextOverflow`] and invalid params.
    pub fn submit(&self, request: Request) -> Result<RequestHandle> {
        let (tx, rx) = mpsc::channel();
        let cancel = request.params.cancel.clone().unwrap_or_default();
        let sink: EventSink = Box::new(move |ev| {
            let _ = tx.send(ev);
        });
        let id = self.submit_with(
            Request {
                params: GenerateParams {
                    cancel: Some(cancel.clone()),
                    ..request.params
                },
                ..request
            },
            sink,
        )?;
        Ok(RequestHandle {
            id,
            events: rx,
            cancel,
            engine_thread: self.worker_thread,
        })
    }

    /// Submits `request` with its events delivered to `sink` (on the engine's thread); returns
    /// its id. Cancel it through `request.params.cancel` or [`Engine::cancel`].
    ///
    /// # Errors
    /// As [`Engine::submit`]; then `sink` is never called.
    pub fn submit_with(&self, request: Request, sink: EventSink) -> Result<u64> {
        let prepared = self.prepare(request)?;
        self.enqueue(prepared, sink)
    }

    /// The first half of [`Engine::submit_with`]: checks `request` and tokenizes (or renders)
    /// its prompt, without taking any of the engine's locks, so it may run on any thread for
    /// as long as a long prompt takes. Nothing is queued.
    ///
    /// # Errors
    /// Tokenizer and template errors, [`Error::ContextOverflow`] and invalid params.
    pub fn prepare(&self, request: Request) -> Result<Prepared> {
        // Preparing the prompt observes the request's cancel token (a long render or text).
        let cancel = request.params.cancel.clone();
        let cancelled = move || cancel.as_ref().is_some_and(|c| c.is_cancelled());
        let prompt_ids = match &request.prompt {
            Prompt::Text(t) => self.model.tokenizer().encode_cancellable(
                t,
                request.params.add_special,
                request.params.parse_special,
                &cancelled,
            )?,
            Prompt::Messages(m) => {
                crate::generate::chat_tokens(&self.model, m, &request.params, &cancelled)?
            }
            Prompt::Tokens(t) => t.clone(),
        };
        if prompt_ids.is_empty() {
            return Err(Error::InvalidArgument("the prompt has no tokens".into()));
        }
        let vocab = self.model.hparams().n_vocab;
        if let Some(&bad) = prompt_ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let mut prompt_ids = prompt_ids;
        let fits = prompt_ids.len().saturating_add(request.params.max_tokens) <= self.shared.n_ctx;
        if !fits
            && matches!(
                request.params.overflow,
                crate::generate::Overflow::Shift { .. }
            )
        {
            return Err(Error::Unsupported(
                "overflow shift runs in sessions; the engine's requests fit their context or are \
                 cut (truncate-middle)"
                    .into(),
            ));
        }
        let protect = match &request.prompt {
            Prompt::Messages(m) if !fits => crate::generate::prompt::system_prefix_len(
                &self.model,
                m,
                &prompt_ids,
                &request.params,
            ),
            _ => 1,
        };
        let dropped = crate::generate::overflow::fit_prompt(
            &mut prompt_ids,
            request.params.max_tokens,
            self.shared.n_ctx,
            protect,
            request.params.overflow,
            self.model.tokenizer(),
        )?;
        // The sampler's params are checked and a constraint compiled now, not on the worker.
        let out = crate::generate::output::Output::new(
            crate::generate::output::ModelTokenizer(self.model.clone()),
            &request.params,
        )?;
        Ok(Prepared {
            out: Some(out),
            dropped,
            id: self.shared.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            prompt_ids,
            priority: request.priority,
            latency_sensitive: request.latency_sensitive,
            deadline: request.deadline,
            params: request.params,
        })
    }

    /// The second half of [`Engine::submit_with`]: queues a prepared request (quick: no
    /// tokenizing under the queue's lock); returns its id. A request whose cancel token was
    /// cancelled meanwhile is queued and ends with [`Error::Cancelled`].
    ///
    /// # Errors
    /// At once, without queueing: [`Error::Busy`] when the queue is full,
    /// [`Error::DeadlineExceeded`] for a deadline already past, [`Error::Cancelled`] once the
    /// engine is shutting down; then `sink` is never called.
    pub fn enqueue(&self, prepared: Prepared, sink: EventSink) -> Result<u64> {
        self.shared.enqueue(prepared, sink)
    }

    /// Counters and the state now.
    pub fn stats(&self) -> EngineStats {
        let mut s = self.shared.stats().clone();
        let q = self.shared.lock();
        s.queued = q.waiting.len();
        s.active = q.active;
        s
    }

    /// How long a request of `priority` submitted now would wait to start, from the measured
    /// step times and the work ahead of it.
    pub fn estimated_wait(&self, priority: Priority) -> Duration {
        self.shared.estimated_wait(priority)
    }
}

impl Drop for Engine {
    /// Ends every request and waits for the engine's thread to finish, except on that thread
    /// itself (a sink dropping its engine): then the thread finishes on its own, once the
    /// sink returns, answering every other request with [`Error::Cancelled`].
    fn drop(&mut self) {
        self.shared.lock().shutdown = true;
        self.shared.preempt.store(true, Ordering::Relaxed);
        self.shared.wake.notify_all();
        if let Some(w) = self.worker.take() {
            if self.is_engine_thread() {
                drop(w);
            } else {
                let _ = w.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_params_are_refused() {
        for p in [
            EngineParams {
                max_batch_size: 0,
                ..Default::default()
            },
            EngineParams {
                queue_capacity: 0,
                ..Default::default()
            },
            EngineParams {
                threads: 100_000,
                ..Default::default()
            },
        ] {
            assert!(p.validate().is_err());
        }
        EngineParams::default().validate().unwrap();
    }
}
