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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::generate::chat::ChatMessage;
use crate::generate::kv_cache::{KvCache, KvPrecision};
use crate::generate::output::{ModelTokenizer, Output};
use crate::generate::{CancelToken, GenerateParams, Generation, Timings, TokenEvent};
use crate::model::transformer::{Scratch, SeqBatch};
use crate::model::Model;
use crate::tokenizer::TokenId;
use crate::tune::ThreadPool;
use crate::{Error, Result};

/// How urgent a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Background work (summaries, indexing).
    Low = 0,
    #[default]
    Normal = 1,
    /// What the user waits for.
    High = 2,
    /// Ahead of everything.
    Critical = 3,
}

impl Priority {
    /// The name front ends use: `low`, `normal`, `high`, `critical`.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }

    /// The priority called `name`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for another name.
    pub fn from_name(name: &str) -> Result<Priority> {
        [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Critical,
        ]
        .into_iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "priority must be low, normal, high or critical, not {name:?}"
            ))
        })
    }
}

/// What a request asks the model to continue.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// Text (tokenized with the request's `add_special` and `parse_special`).
    Text(String),
    /// A conversation, rendered with the model's chat template.
    Messages(Vec<ChatMessage>),
    /// Token ids.
    Tokens(Vec<TokenId>),
}

/// One request to the engine.
#[derive(Debug, Clone)]
pub struct Request {
    pub prompt: Prompt,
    pub params: GenerateParams,
    pub priority: Priority,
    /// Someone waits for the first token (autocomplete, a chat reply): ahead of others of the
    /// same priority, and urgent (see the module documentation).
    pub latency_sensitive: bool,
    /// The request fails with [`Error::DeadlineExceeded`] if it has not finished by then.
    pub deadline: Option<Instant>,
}

impl Request {
    /// A Normal-priority request for `text` with `params`.
    pub fn text(text: impl Into<String>, params: GenerateParams) -> Request {
        Request {
            prompt: Prompt::Text(text.into()),
            params,
            priority: Priority::Normal,
            latency_sensitive: false,
            deadline: None,
        }
    }

    /// A Normal-priority chat request.
    pub fn chat(messages: Vec<ChatMessage>, params: GenerateParams) -> Request {
        Request {
            prompt: Prompt::Messages(messages),
            ..Request::text("", params)
        }
    }

    /// This request with `priority`.
    pub fn with_priority(mut self, priority: Priority) -> Request {
        self.priority = priority;
        self
    }

    /// This request, latency-sensitive.
    pub fn latency_sensitive(mut self) -> Request {
        self.latency_sensitive = true;
        self
    }

    /// This request with a deadline `after` from now.
    pub fn with_timeout(mut self, after: Duration) -> Request {
        self.deadline = Some(Instant::now() + after);
        self
    }
}

/// What a request reports, in order: tokens, then exactly one `Done` or `Error`.
#[derive(Debug)]
pub enum Event {
    /// A generated token and the text it made final (may be empty).
    Token {
        id: TokenId,
        text: String,
        index: usize,
    },
    /// The request finished; `timings.queue_ms` says how long it waited to start.
    Done(Generation),
    /// The request failed, was cancelled, or its deadline passed.
    Error(Error),
}

/// Receives a request's events on the engine's worker thread (keep it quick).
pub type EventSink = Box<dyn FnMut(Event) + Send>;

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

/// Counters of an engine.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineStats {
    pub submitted: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub deadline_exceeded: u64,
    pub rejected_busy: u64,
    /// Steps run, steps stopped to let an urgent request in, and sequences per step on average.
    pub steps: u64,
    pub preempted_steps: u64,
    pub mean_batch_size: f64,
    /// Requests waiting and running now.
    pub queued: usize,
    pub active: usize,
    /// Smoothed duration of a step with one token per sequence, in milliseconds.
    pub decode_step_ms: f64,
    /// Smoothed time per prompt token in a step, in milliseconds.
    pub prefill_token_ms: f64,
    /// Mean time requests waited before starting, and to their first token.
    pub mean_queue_ms: f64,
    pub mean_ttft_ms: f64,
}

/// A request in the queue: as prepared, with what delivers its answer.
struct Waiting {
    req: Prepared,
    cancel: CancelToken,
    sink: EventSink,
    submitted: Instant,
}

impl Waiting {
    /// Admission order: priority, latency sensitivity, cost, arrival.
    fn rank(&self) -> (std::cmp::Reverse<Priority>, bool, usize, u64) {
        (
            std::cmp::Reverse(self.req.priority),
            !self.req.latency_sensitive,
            self.req.prompt_ids.len() + self.req.params.max_tokens,
            self.req.id,
        )
    }
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    shutdown: bool,
    /// Requests running now.
    active: usize,
    /// The cancellation of every request not finished yet (waiting or running), by id.
    cancels: HashMap<u64, CancelToken>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Set by `submit` when an urgent request arrives while a step of less urgent work runs.
    preempt: AtomicBool,
    /// Whether the running step holds urgent work (then it is not preempted).
    step_urgent: AtomicBool,
    stats: Mutex<EngineStats>,
    /// Smoothed step figures (f64 bits), for the wait estimate.
    decode_step_us: AtomicU64,
    /// The last id handed out.
    next_id: AtomicU64,
    capacity: usize,
    max_concurrent: usize,
    n_ctx: usize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, EngineStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A submitted request: its events, and cancellation.
pub struct RequestHandle {
    id: u64,
    events: mpsc::Receiver<Event>,
    cancel: CancelToken,
    /// The engine's thread, where waiting for an event would wait forever.
    engine_thread: std::thread::ThreadId,
}

impl RequestHandle {
    /// The request's id (unique within its engine).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Cancels the request (from any thread): it ends with [`Error::Cancelled`] within a step,
    /// and its slot goes to the next request.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A token that cancels this request, for another thread.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Whether this thread is the engine's own (a sink runs there): waiting there would never
    /// end, as the engine cannot run the request while it waits.
    fn on_engine_thread(&self) -> bool {
        std::thread::current().id() == self.engine_thread
    }

    /// The next event, waiting for it; `None` after the final one, and at once (without
    /// waiting) on the engine's own thread, that is in a sink.
    pub fn recv(&self) -> Option<Event> {
        if self.on_engine_thread() {
            return self.events.try_recv().ok();
        }
        self.events.recv().ok()
    }

    /// The next event if it comes within `timeout` (on the engine's own thread: only one that
    /// has come already).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        if self.on_engine_thread() {
            return self.events.try_recv().ok();
        }
        self.events.recv_timeout(timeout).ok()
    }

    /// Waits for the end, passing each token to `on_token`.
    ///
    /// # Errors
    /// The request's error; [`Error::Busy`] at once when called on the engine's own thread (in
    /// a sink), where the request could never run (the request is then cancelled).
    pub fn wait_with(self, mut on_token: impl FnMut(TokenId, &str)) -> Result<Generation> {
        if self.on_engine_thread() {
            self.cancel.cancel();
            return Err(Error::Busy(
                "waiting for an engine request on that engine's own thread (in an event sink) \
                 would never end; submit without waiting there"
                    .into(),
            ));
        }
        while let Some(ev) = self.recv() {
            match ev {
                Event::Token { id, text, .. } => on_token(id, &text),
                Event::Done(g) => return Ok(g),
                Event::Error(e) => return Err(e),
            }
        }
        Err(Error::Internal(
            "the engine dropped a request without an answer".into(),
        ))
    }

    /// Waits for the end.
    ///
    /// # Errors
    /// The request's error.
    pub fn wait(self) -> Result<Generation> {
        self.wait_with(|_, _| {})
    }
}

/// One model serving many requests (see the module documentation). Dropping it ends every
/// request still waiting or running with [`Error::Cancelled`].
pub struct Engine {
    shared: Arc<Shared>,
    model: Arc<Model>,
    worker: Option<std::thread::JoinHandle<()>>,
    /// The worker's thread, where sinks run.
    worker_thread: std::thread::ThreadId,
}

/// A request checked and tokenized by [`Engine::prepare`], for [`Engine::enqueue`].
pub struct Prepared {
    id: u64,
    prompt_ids: Vec<TokenId>,
    params: GenerateParams,
    priority: Priority,
    latency_sensitive: bool,
    deadline: Option<Instant>,
}

impl Prepared {
    /// The id the request will have (unique within its engine).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The prompt's tokens.
    pub fn prompt_ids(&self) -> &[TokenId] {
        &self.prompt_ids
    }

    /// Whether the request is urgent (High or Critical, or latency-sensitive): it preempts a
    /// step of less urgent work, and reads its prompt in a step of its own.
    fn urgent(&self) -> bool {
        self.priority >= Priority::High || self.latency_sensitive
    }
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
            0 => crate::tune::threads_for(
                &crate::tune::Hardware::detect(),
                crate::tune::Workload::BatchInference,
            ),
            n => crate::tune::threads::cap_threads(n),
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
        let mut worker = Worker {
            shared: shared.clone(),
            model: model.clone(),
            params,
            n_ctx,
            pool,
            scratch: Scratch::default(),
            active: Vec::new(),
            free_caches: Vec::new(),
            kv_charge,
            kv_charged: 0,
            scratch_charge,
            decode_ms: None,
            prefill_ms: None,
            label: {
                static N: AtomicU64 = AtomicU64::new(0);
                format!("engine-{}", N.fetch_add(1, Ordering::Relaxed) + 1)
            },
        };
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
        if prompt_ids.len().saturating_add(request.params.max_tokens) > self.shared.n_ctx {
            return Err(Error::ContextOverflow {
                prompt: prompt_ids.len(),
                requested: request.params.max_tokens,
                context: self.shared.n_ctx,
            });
        }
        // The sampler's params are checked now, not on the worker.
        crate::generate::Sampler::new(request.params.sampling.clone())?;
        Ok(Prepared {
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
        let request = prepared;
        if request.deadline.is_some_and(|d| d <= Instant::now()) {
            self.shared.stats().deadline_exceeded += 1;
            return Err(Error::DeadlineExceeded(
                "the request's deadline had passed when it was submitted".into(),
            ));
        }
        let urgent = request.urgent();
        let mut q = self.shared.lock();
        if q.shutdown {
            return Err(Error::Cancelled);
        }
        if q.waiting.len() >= self.shared.capacity {
            drop(q);
            self.shared.stats().rejected_busy += 1;
            return Err(Error::Busy(format!(
                "{} requests are waiting (the queue holds {}); try again later",
                self.shared.capacity, self.shared.capacity
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
        if urgent && !self.shared.step_urgent.load(Ordering::Relaxed) {
            self.shared.preempt.store(true, Ordering::Relaxed);
        }
        self.shared.stats().submitted += 1;
        self.shared.wake.notify_all();
        Ok(id)
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
        let step_us = f64::from_bits(self.shared.decode_step_us.load(Ordering::Relaxed));
        let q = self.shared.lock();
        let ahead: usize = q
            .waiting
            .iter()
            .filter(|w| w.req.priority >= priority)
            .map(|w| w.req.params.max_tokens + 1)
            .sum();
        let free = self.shared.max_concurrent.saturating_sub(q.active);
        let n_ahead = q
            .waiting
            .iter()
            .filter(|w| w.req.priority >= priority)
            .count();
        if n_ahead < free {
            return Duration::from_micros(step_us as u64);
        }
        // Slots free as running requests end: roughly, the tokens ahead spread over the slots.
        let steps = ahead as f64 / self.shared.max_concurrent as f64 + 1.0;
        Duration::from_micros((steps * step_us) as u64)
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

/// A running request.
struct Active {
    w: Waiting,
    cache: KvCache,
    /// Tokens evaluated into the cache, then the next token to evaluate.
    history: Vec<TokenId>,
    pending: Option<TokenId>,
    out: Output<ModelTokenizer>,
    started: Instant,
    prompt_done: Option<Instant>,
    first_token: Option<Instant>,
}

impl Active {
    fn prefilling(&self) -> bool {
        self.history.len() < self.w.req.prompt_ids.len()
    }

    /// Prompt tokens this sequence reads in a step of at most `chunk` prompt tokens. The last
    /// part of a prompt is never split off below 64 tokens (attention computes batches of 64
    /// or more queries as prompt tiles, smaller ones query by query): how a prompt is chunked
    /// then does not change its numbers.
    fn prefill_len(&self, chunk: usize) -> usize {
        let left = self.w.req.prompt_ids.len() - self.history.len();
        if left <= chunk || left - chunk < 64 {
            left
        } else {
            chunk
        }
    }
}

struct Worker {
    shared: Arc<Shared>,
    model: Arc<Model>,
    params: EngineParams,
    n_ctx: usize,
    pool: ThreadPool,
    scratch: Scratch,
    active: Vec<Active>,
    free_caches: Vec<KvCache>,
    kv_charge: u64,
    kv_charged: u64,
    scratch_charge: u64,
    decode_ms: Option<f64>,
    prefill_ms: Option<f64>,
    /// This engine's label in the metrics (`engine-N`).
    label: String,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Worker {
    fn run(&mut self) {
        loop {
            if !self.admit() {
                break;
            }
            if self.active.is_empty() {
                continue;
            }
            self.step();
        }
        // Shut down: every request still here gets its answer.
        let waiting = std::mem::take(&mut self.shared.lock().waiting);
        for w in waiting {
            self.fail_waiting(w, Error::Cancelled);
        }
        for a in std::mem::take(&mut self.active) {
            self.finish(a, Err(Error::Cancelled));
        }
        let account = self.model.memory_account();
        account.release(self.kv_charged + self.scratch_charge);
        // This engine's series go with it (no step observes them any more).
        crate::metrics::Registry::global().remove_labeled(&[("engine", self.label.as_str())]);
    }

    fn fail_waiting(&self, mut w: Waiting, e: Error) {
        self.shared.lock().cancels.remove(&w.req.id);
        self.count_error(&e);
        self.model.metrics().record_error(&e);
        (w.sink)(Event::Error(e));
    }

    fn count_error(&self, e: &Error) {
        let mut s = self.shared.stats();
        match e {
            Error::Cancelled => s.cancelled += 1,
            Error::DeadlineExceeded(_) => s.deadline_exceeded += 1,
            _ => s.failed += 1,
        }
    }

    /// Drops expired and cancelled waiting requests, admits what fits, and waits when there
    /// is nothing to do. Returns false at shutdown.
    fn admit(&mut self) -> bool {
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
                        let c = &self.model.transformer().config;
                        KvCache::new(
                            self.model.hparams().n_layer,
                            c.n_head_kv * c.head_dim_k,
                            c.n_head_kv * c.head_dim_v,
                            self.n_ctx,
                            self.params.kv_precision,
                        )
                    }
                };
                let w = q.waiting.swap_remove(best);
                let out = match Output::new(ModelTokenizer(self.model.clone()), &w.req.params) {
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
                .max(crate::tune::power::manager().knobs().batch_latency);
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

    /// Ends `a`: its answer goes to its sink, its cache back to the free list.
    fn finish(&mut self, mut a: Active, result: Result<()>) {
        // The count first: a caller reading the stats after its answer sees it gone.
        {
            let mut q = self.shared.lock();
            q.active = self.active.len();
            q.cancels.remove(&a.w.req.id);
        }
        let now = Instant::now();
        // A request that ends after its deadline never reports success.
        let result = match (result, a.w.req.deadline) {
            (Ok(()), Some(d)) if d <= now => Err(Error::DeadlineExceeded(format!(
                "the deadline passed {:.0} ms before the request finished ({} generated tokens)",
                ms(now - d),
                a.out.generated.len()
            ))),
            (r, _) => r,
        };
        match result {
            Ok(()) => {
                a.out.finish(&mut |ev: &TokenEvent<'_>| {
                    (a.w.sink)(Event::Token {
                        id: ev.id,
                        text: ev.text.to_string(),
                        index: ev.index,
                    });
                    true
                });
                let queue_ms = ms(a.started - a.w.submitted);
                let prompt_ms = a.prompt_done.map_or(0.0, |p| ms(p - a.started));
                let ttft_ms = a.first_token.map_or(0.0, |f| ms(f - a.w.submitted));
                let gen_ms = a.prompt_done.map_or(0.0, |p| ms(now - p));
                let n = a.out.generated.len();
                let prompt_tokens = a.w.req.prompt_ids.len();
                let g = Generation {
                    prompt_ids: std::mem::take(&mut a.w.req.prompt_ids),
                    generated_ids: std::mem::take(&mut a.out.generated),
                    text: std::mem::take(&mut a.out.text),
                    stop_reason: a.out.stop_reason,
                    timings: Timings {
                        prompt_tokens,
                        cached_tokens: 0,
                        prompt_ms,
                        prompt_tok_s: if prompt_ms > 0.0 {
                            prompt_tokens as f64 * 1e3 / prompt_ms
                        } else {
                            0.0
                        },
                        generated_tokens: n,
                        gen_ms,
                        gen_tok_s: if gen_ms > 0.0 {
                            n.saturating_sub(1) as f64 * 1e3 / gen_ms
                        } else {
                            0.0
                        },
                        ttft_ms,
                        queue_ms,
                    },
                };
                self.model.metrics().record(&g);
                {
                    let mut s = self.shared.stats();
                    let c = s.completed as f64;
                    s.mean_queue_ms = (s.mean_queue_ms * c + queue_ms) / (c + 1.0);
                    s.mean_ttft_ms = (s.mean_ttft_ms * c + ttft_ms) / (c + 1.0);
                    s.completed += 1;
                }
                (a.w.sink)(Event::Done(g));
            }
            Err(e) => {
                self.count_error(&e);
                self.model.metrics().record_error(&e);
                (a.w.sink)(Event::Error(e));
            }
        }
        self.free_caches.push(a.cache);
    }

    /// One forward pass over the sequences chosen for it, then sampling.
    fn step(&mut self) {
        // Cancelled and expired requests leave first.
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
        if self.active.is_empty() {
            return;
        }
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
        // The power profile may ask for smaller batches (never larger than configured).
        let knobs = crate::tune::power::manager().knobs();
        let max_batch = self.params.max_batch_size.min(knobs.max_batch_size.max(1));
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

        // The tokens of each chosen sequence.
        let tokens: Vec<Vec<TokenId>> = chosen
            .iter()
            .map(|&(i, n)| {
                let a = &self.active[i];
                if a.prefilling() {
                    a.w.req.prompt_ids[a.history.len()..a.history.len() + n].to_vec()
                } else {
                    vec![a
                        .pending
                        .expect("a generating sequence has a token to evaluate")]
                }
            })
            .collect();
        let n_tokens: usize = tokens.iter().map(Vec::len).sum();
        let n_prompt: usize = chosen
            .iter()
            .zip(&tokens)
            .filter(|((i, _), _)| self.active[*i].prefilling())
            .map(|(_, t)| t.len())
            .sum();
        let want: Vec<bool> = chosen
            .iter()
            .map(|&(i, n)| {
                let a = &self.active[i];
                !a.prefilling() || a.history.len() + n == a.w.req.prompt_ids.len()
            })
            .collect();
        let cancels: Vec<CancelToken> = chosen
            .iter()
            .map(|&(i, _)| self.active[i].w.cancel.clone())
            .collect();
        // Deadlines are checked between layers too: a long prompt step stops once one of its
        // sequences is late (the next round ends that one and plans again).
        let deadline = chosen
            .iter()
            .filter_map(|&(i, _)| self.active[i].w.req.deadline)
            .min();
        let shared = self.shared.clone();
        let cancelled = move || {
            shared.preempt.load(Ordering::Relaxed)
                || cancels.iter().any(CancelToken::is_cancelled)
                || deadline.is_some_and(|d| Instant::now() >= d)
        };
        let power = crate::tune::power::manager();
        self.pool.set_active(power.threads(self.pool.size()));
        let t0 = Instant::now();
        let result = {
            // Split borrows: each chosen sequence's cache, in `chosen` order.
            let mut picked: Vec<Option<&mut Active>> = self.active.iter_mut().map(Some).collect();
            let mut seqs: Vec<SeqBatch<'_>> = Vec::with_capacity(chosen.len());
            for ((&(i, _), toks), &w) in chosen.iter().zip(&tokens).zip(&want) {
                let a = picked[i].take().expect("chosen once");
                seqs.push(SeqBatch {
                    cache: &mut a.cache,
                    tokens: toks,
                    want_logits: w,
                });
            }
            self.model.transformer().forward(
                self.model.file(),
                &mut seqs,
                &mut self.scratch,
                &self.pool,
                &cancelled,
            )
        };
        let elapsed = ms(t0.elapsed());
        match result {
            Err(Error::Cancelled) => {
                // Preempted or cancelled: the caches are as before the pass; the next round
                // drops what was cancelled and plans again.
                if self.shared.preempt.load(Ordering::Relaxed) {
                    self.shared.stats().preempted_steps += 1;
                }
                return;
            }
            Err(e) => {
                // A failure of the pass fails the requests in it.
                let mut idx: Vec<usize> = chosen.iter().map(|&(i, _)| i).collect();
                idx.sort_unstable_by_key(|&i| std::cmp::Reverse(i));
                for i in idx {
                    let a = self.active.swap_remove(i);
                    self.finish(a, Err(Error::Internal(format!("forward pass failed: {e}"))));
                }
                return;
            }
            Ok(()) => {}
        }
        self.record_step(elapsed, chosen.len(), n_tokens, n_prompt);
        if n_prompt == 0 && !knobs.decode_pause.is_zero() {
            // A lower duty cycle on battery or in PowerSaver.
            std::thread::sleep(knobs.decode_pause);
        }

        // Advance each chosen sequence; sample those that got logits.
        let n_vocab = self.model.hparams().n_vocab;
        let mut logits_at = 0;
        let mut done: Vec<(usize, Result<()>)> = Vec::new();
        let now = Instant::now();
        for ((&(i, _), toks), &w) in chosen.iter().zip(&tokens).zip(&want) {
            let a = &mut self.active[i];
            a.history.extend_from_slice(toks);
            a.cache.set_len(a.history.len());
            if !w {
                continue;
            }
            if a.prompt_done.is_none() {
                a.prompt_done = Some(now);
            }
            let logits = &mut self.scratch.logits[logits_at * n_vocab..(logits_at + 1) * n_vocab];
            logits_at += 1;
            if a.w.req.deadline.is_some_and(|d| d <= now) {
                // Late: no token from this step (finish reports the deadline).
                done.push((i, Ok(())));
                continue;
            }
            let sink = &mut a.w.sink;
            let mut emit = |ev: &TokenEvent<'_>| {
                sink(Event::Token {
                    id: ev.id,
                    text: ev.text.to_string(),
                    index: ev.index,
                });
                true
            };
            match a.out.step(logits, &a.history, &mut emit) {
                Ok(next) => {
                    if a.first_token.is_none() {
                        a.first_token = Some(Instant::now());
                    }
                    match next {
                        Some(id) => a.pending = Some(id),
                        None => done.push((i, Ok(()))),
                    }
                }
                Err(e) => done.push((i, Err(e))),
            }
        }
        done.sort_unstable_by_key(|d| std::cmp::Reverse(d.0));
        for (i, r) in done {
            let a = self.active.swap_remove(i);
            self.finish(a, r);
        }
    }

    fn record_step(&mut self, elapsed: f64, seqs: usize, tokens: usize, prompt: usize) {
        const ALPHA: f64 = 0.2;
        let smooth = |old: Option<f64>, new: f64| Some(old.map_or(new, |o| o + ALPHA * (new - o)));
        if prompt == 0 {
            self.decode_ms = smooth(self.decode_ms, elapsed);
        } else if prompt == tokens {
            self.prefill_ms = smooth(self.prefill_ms, elapsed / prompt as f64);
        }
        let step = self.decode_ms.unwrap_or(elapsed);
        self.shared
            .decode_step_us
            .store((step * 1e3).to_bits(), Ordering::Relaxed);
        crate::metrics::observe_batch(seqs);
        let mut snapshot = {
            let mut s = self.shared.stats();
            let n = s.steps as f64;
            s.mean_batch_size = (s.mean_batch_size * n + seqs as f64) / (n + 1.0);
            s.steps += 1;
            s.decode_step_ms = self.decode_ms.unwrap_or(0.0);
            s.prefill_token_ms = self.prefill_ms.unwrap_or(0.0);
            s.clone()
        };
        {
            let q = self.shared.lock();
            snapshot.queued = q.waiting.len();
            snapshot.active = q.active;
        }
        crate::metrics::Registry::global()
            .observe_engine_labeled(&[("engine", self.label.as_str())], &snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_order_and_names() {
        assert!(Priority::Critical > Priority::High && Priority::Low < Priority::Normal);
        for p in [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Critical,
        ] {
            assert_eq!(Priority::from_name(p.name()).unwrap(), p);
        }
        assert!(Priority::from_name("urgent").is_err());
    }

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
