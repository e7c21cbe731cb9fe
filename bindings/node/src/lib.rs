//! Woolly for Node.js and Electron (Node-API through napi-rs).
//!
//! This native module is deliberately thin; `index.js` is the public API. Slow work (loading,
//! generating) runs on threads of its own, never on the JavaScript thread nor on libuv's pool, and
//! reports back through a thread-safe function as plain event objects:
//! `{ kind: "progress", progress }`, `{ kind: "loaded" }`, `{ kind: "token", text, id, index }`,
//! `{ kind: "done", ... }` and `{ kind: "error", code, message, details? }` (codes as in the C
//! ABI; `details` holds an error's figures, such as the bytes of an InsufficientMemory error).

mod error;
mod options;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use napi::bindgen_prelude::Unknown;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use serde_json::{json, Value};
use woolly_core::engine::{Engine, Event as EngineEvent, Priority, Prompt, Request};
use woolly_core::generate::{
    CancelToken, ChatMessage, GenerateParams, Generation, SessionParams, SessionPool, StopReason,
};
use woolly_core::model::{Model, ModelCache, ModelParams, ProgressFn};

use error::{js_error, to_event, to_js};
use options::{
    chat_messages, EngineOptions, GenerateOptions, LoadOptions, MemoryOptions, Message,
    RequestOptions, ThermalOptions,
};
use woolly_core::metrics::Registry;
use woolly_core::policy::power::{self, PowerProfile};

/// This addon carries its own Rust runtime: every panic in it is Woolly's, and none may print to
/// the host's stderr. Each exported function catches its panics (`catch_unwind`) and throws them
/// as errors, which `index.js` reports as `WOOLLY_ERR_INTERNAL`.
#[napi_derive::module_init]
fn init() {
    woolly_core::panics::claim_all();
}

/// For the tests only: panics on the JavaScript thread, as a bug inside Woolly would.
#[napi(js_name = "panicForTests", catch_unwind)]
pub fn panic_for_tests(message: String) {
    panic!("{message}");
}

/// A JavaScript callback that receives one event object, callable from any thread.
type EventFn = ThreadsafeFunction<Value, Unknown<'static>, Value, Status, false>;

/// Stack of the load and generation threads (the forward pass recurses little, but a chat
/// template render can).
const WORKER_STACK: usize = 8 << 20;

fn send(cb: &EventFn, ev: Value) {
    // NonBlocking on an unbounded queue never waits; it fails only while Node shuts down.
    let _ = cb.call(ev, ThreadsafeFunctionCallMode::NonBlocking);
}

/// Runs `work` on a new thread; a panic there becomes an `error` event instead of an abort (its
/// message goes to the log callback, not to the application's stderr: `woolly_core::panics`).
fn spawn_worker(
    name: &str,
    cb: Arc<EventFn>,
    work: impl FnOnce(&EventFn) -> Value + Send + 'static,
) -> napi::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(WORKER_STACK)
        .spawn(move || {
            let last = match catch_unwind(AssertUnwindSafe(|| work(&cb))) {
                Ok(ev) => ev,
                Err(p) => error::panic_event(&*p),
            };
            send(&cb, last);
        })
        .map(|_| ())
        .map_err(|e| js_error("WOOLLY_ERR_INTERNAL", format!("cannot start a thread: {e}")))
}

/// A load or generation in progress, as JavaScript holds it.
#[napi]
pub struct NativeTask {
    token: CancelToken,
}

#[napi]
impl NativeTask {
    /// Asks the work to stop; it then ends with a `WOOLLY_ERR_CANCELLED` error event (or, when it
    /// had already finished, with its normal result). Safe to call any number of times.
    #[napi(catch_unwind)]
    pub fn cancel(&self) {
        self.token.cancel();
    }
}

/// A loaded model: its session pool and facts fixed at load.
struct Loaded {
    pool: SessionPool,
    context_size: usize,
}

impl Loaded {
    /// A pool of sessions on `model`; it opens its first session now, so that bad session
    /// options (or a session that does not fit in the memory budget) fail here.
    fn open(
        model: Arc<Model>,
        session: SessionParams,
        max_idle: usize,
    ) -> woolly_core::Result<Arc<Loaded>> {
        let pool = SessionPool::new(model, session, max_idle)?;
        // The idle session the pool opened: no new one.
        let context_size = pool.acquire()?.context_size();
        Ok(Arc::new(Loaded { pool, context_size }))
    }
}

/// What to generate from.
enum Input {
    Prompt(String),
    Chat(Vec<ChatMessage>),
}

fn stop_reason_name(r: StopReason) -> &'static str {
    match r {
        StopReason::MaxTokens => "max_tokens",
        StopReason::EndOfGeneration => "end_of_generation",
        StopReason::StopString => "stop_string",
        StopReason::Callback => "callback",
    }
}

fn done_event(g: &Generation) -> Value {
    let t = &g.timings;
    json!({
        "kind": "done",
        "text": g.text,
        "promptIds": g.prompt_ids,
        "generatedIds": g.generated_ids,
        "stopReason": stop_reason_name(g.stop_reason),
        "timings": {
            "promptTokens": t.prompt_tokens,
            "cachedTokens": t.cached_tokens,
            "promptMs": t.prompt_ms,
            "promptTokS": t.prompt_tok_s,
            "generatedTokens": t.generated_tokens,
            "genMs": t.gen_ms,
            "genTokS": t.gen_tok_s,
            "ttftMs": t.ttft_ms,
            "queueMs": t.queue_ms,
        },
    })
}

/// One generation on a worker thread, on a session of the pool (returned to it afterwards).
fn run_generation(
    pool: &SessionPool,
    input: &Input,
    params: &GenerateParams,
    cb: &EventFn,
    stream: bool,
) -> Value {
    let mut session = match pool.acquire() {
        Ok(s) => s,
        Err(e) => return to_event(&e),
    };
    let on_token = |ev: &woolly_core::generate::TokenEvent<'_>| {
        if stream && !ev.text.is_empty() {
            send(
                cb,
                json!({ "kind": "token", "text": ev.text, "id": ev.id, "index": ev.index }),
            );
        }
        true
    };
    // The params carry the request's cancel token: a cancel before the start fails at once, one
    // during the prompt or the generation stops it within a layer's work.
    let result = match input {
        Input::Prompt(p) => session.generate(p, params, on_token),
        Input::Chat(m) => session.chat(m, params, on_token),
    };
    match result {
        Ok(g) => done_event(&g),
        Err(e) => to_event(&e),
    }
}

/// A model: empty until `load` succeeds, then shared by every generation on it.
#[napi]
pub struct NativeModel {
    inner: Arc<RwLock<Option<Arc<Loaded>>>>,
    loading: Arc<AtomicBool>,
}

impl Default for NativeModel {
    fn default() -> Self {
        Self::new()
    }
}

#[napi]
impl NativeModel {
    #[napi(constructor, catch_unwind)]
    pub fn new() -> Self {
        NativeModel {
            inner: Arc::new(RwLock::new(None)),
            loading: Arc::new(AtomicBool::new(false)),
        }
    }

    fn loaded(&self) -> napi::Result<Arc<Loaded>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| {
                js_error(
                    "WOOLLY_ERR_INVALID_ARGUMENT",
                    "the model is not loaded (or was closed)",
                )
            })
    }

    /// Starts a load on a new thread: `load` gets the model params (with the progress
    /// callback), the session params and the idle-session count; this object holds its result.
    fn begin_load(
        &self,
        options: Option<LoadOptions>,
        progress: bool,
        on_event: EventFn,
        load: impl FnOnce(&ModelParams, SessionParams, usize) -> woolly_core::Result<Arc<Loaded>>
            + Send
            + 'static,
    ) -> napi::Result<NativeTask> {
        if self.loading.swap(true, Ordering::SeqCst) || self.loaded().is_ok() {
            return Err(js_error(
                "WOOLLY_ERR_INVALID_ARGUMENT",
                "this model object is already loaded or loading",
            ));
        }
        // Bad options fail here, on the caller's thread, before anything starts.
        let options = options.unwrap_or_default();
        let prepared = options
            .model_params()
            .and_then(|p| Ok((p, options.session_params()?)));
        let (mut params, session) = match prepared {
            Ok(x) => x,
            Err(e) => {
                self.loading.store(false, Ordering::SeqCst);
                return Err(to_js(&e));
            }
        };
        let max_idle = options.max_idle();
        let token = CancelToken::new();
        let inner = self.inner.clone();
        let loading = self.loading.clone();
        let task_token = token.clone();
        let on_event = Arc::new(on_event);
        let tsfn_progress = if progress {
            Some(on_event.clone())
        } else {
            None
        };
        let result = spawn_worker("woolly-load", on_event, move |_| {
            let last_pct = Arc::new(AtomicU32::new(u32::MAX));
            let st = task_token.clone();
            let cb: ProgressFn = Arc::new(move |f: f32| {
                if let Some(cb) = &tsfn_progress {
                    let pct = (f.clamp(0.0, 1.0) * 100.0) as u32;
                    if last_pct.swap(pct, Ordering::Relaxed) != pct {
                        send(cb, json!({ "kind": "progress", "progress": f }));
                    }
                }
                !st.is_cancelled()
            });
            params.progress = Some(cb);
            let result = load(&params, session, max_idle);
            loading.store(false, Ordering::SeqCst);
            match result {
                Ok(loaded) => {
                    *inner.write().unwrap_or_else(|e| e.into_inner()) = Some(loaded);
                    json!({ "kind": "loaded" })
                }
                Err(e) => to_event(&e),
            }
        });
        if result.is_err() {
            self.loading.store(false, Ordering::SeqCst);
        }
        result.map(|_| NativeTask { token })
    }

    /// Loads the model at `path` (or the default one) on a new thread. Events: `progress` (when
    /// `progress` is true, at most once per percent), then `loaded` or `error`.
    #[napi(catch_unwind)]
    pub fn load(
        &self,
        path: Option<String>,
        options: Option<LoadOptions>,
        progress: bool,
        on_event: EventFn,
    ) -> napi::Result<NativeTask> {
        self.begin_load(
            options,
            progress,
            on_event,
            move |params, session, max_idle| {
                let path = path.map(PathBuf::from);
                Loaded::open(Model::load(path.as_deref(), params)?, session, max_idle)
            },
        )
    }

    fn start(
        &self,
        input: Input,
        options: Option<GenerateOptions>,
        stream: bool,
        on_event: EventFn,
    ) -> napi::Result<NativeTask> {
        let loaded = self.loaded()?;
        let token = CancelToken::new();
        let mut params = options
            .unwrap_or_default()
            .params()
            .map_err(|e| to_js(&e))?;
        params.cancel = Some(token.clone());
        spawn_worker("woolly-generate", Arc::new(on_event), move |cb| {
            run_generation(&loaded.pool, &input, &params, cb, stream)
        })?;
        Ok(NativeTask { token })
    }

    /// Generates from `prompt` on a new thread. Events: `token` (when `stream`), then `done` or
    /// `error`.
    #[napi(catch_unwind)]
    pub fn generate(
        &self,
        prompt: String,
        options: Option<GenerateOptions>,
        stream: bool,
        on_event: EventFn,
    ) -> napi::Result<NativeTask> {
        self.start(Input::Prompt(prompt), options, stream, on_event)
    }

    /// Like `generate`, with the model's chat template applied to `messages`.
    #[napi(catch_unwind)]
    pub fn chat(
        &self,
        messages: Vec<Message>,
        options: Option<GenerateOptions>,
        stream: bool,
        on_event: EventFn,
    ) -> napi::Result<NativeTask> {
        self.start(
            Input::Chat(chat_messages(messages)),
            options,
            stream,
            on_event,
        )
    }

    #[napi(catch_unwind)]
    pub fn tokenize(
        &self,
        text: String,
        add_special: Option<bool>,
        parse_special: Option<bool>,
    ) -> napi::Result<Vec<u32>> {
        self.loaded()?
            .pool
            .model()
            .tokenize(
                &text,
                add_special.unwrap_or(true),
                parse_special.unwrap_or(true),
            )
            .map_err(|e| to_js(&e))
    }

    #[napi(catch_unwind)]
    pub fn detokenize(&self, ids: Vec<u32>) -> napi::Result<String> {
        let loaded = self.loaded()?;
        let n_vocab = loaded.pool.model().hparams().n_vocab;
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= n_vocab) {
            return Err(js_error(
                "WOOLLY_ERR_INVALID_ARGUMENT",
                format!("invalid argument: token id {bad} is outside the vocabulary of {n_vocab}"),
            ));
        }
        loaded.pool.model().detokenize(&ids).map_err(|e| to_js(&e))
    }

    #[napi(catch_unwind)]
    pub fn apply_chat_template(&self, messages: Vec<Message>) -> napi::Result<String> {
        self.loaded()?
            .pool
            .model()
            .apply_chat_template(&chat_messages(messages))
            .map_err(|e| to_js(&e))
    }

    /// The model's facts (woolly-core's `Model::info`, the same as C and Python report), with
    /// the names this API uses in camelCase, and the context size of its sessions.
    #[napi(catch_unwind)]
    pub fn info(&self) -> napi::Result<Value> {
        let loaded = self.loaded()?;
        let mut info = loaded.pool.model().info().map_err(|e| to_js(&e))?;
        if let Value::Object(map) = &mut info {
            for (snake, camel) in [
                ("chat_template", "chatTemplate"),
                ("file_bytes", "fileBytes"),
                ("repacked_bytes", "repackedBytes"),
                ("load_ms", "loadMs"),
            ] {
                if let Some(v) = map.remove(snake) {
                    map.insert(camel.into(), v);
                }
            }
            map.insert("contextSize".into(), loaded.context_size.into());
        }
        Ok(info)
    }

    /// Counters of every generation on this model (woolly-core's snapshot JSON).
    #[napi(catch_unwind)]
    pub fn metrics(&self) -> napi::Result<Value> {
        Ok(self.loaded()?.pool.model().metrics().snapshot().to_json())
    }

    /// The diagnostics report with this model's section.
    #[napi(catch_unwind)]
    pub fn diagnostics(&self) -> napi::Result<Value> {
        Ok(woolly_core::diagnostics::report(Some(
            self.loaded()?.pool.model(),
        )))
    }

    /// This model's memory (woolly-core's `Model::memory_report`): the estimate, the charges
    /// and headroom of its memory account, the file's residency, the preload and lock state,
    /// the process's RSS.
    #[napi(catch_unwind)]
    pub fn memory_report(&self) -> napi::Result<Value> {
        Ok(self.loaded()?.pool.model().memory_report())
    }

    /// How far a background preload got: `{ done_bytes, total_bytes, finished }`.
    #[napi(catch_unwind)]
    pub fn preload_progress(&self) -> napi::Result<Value> {
        serde_json::to_value(self.loaded()?.pool.model().preload_progress())
            .map_err(|e| js_error("WOOLLY_ERR_INTERNAL", e))
    }

    /// Waits on a new thread until a background preload has read every page; then `done`.
    #[napi(catch_unwind)]
    pub fn wait_preloaded(&self, on_event: EventFn) -> napi::Result<NativeTask> {
        let loaded = self.loaded()?;
        spawn_worker("woolly-preload-wait", Arc::new(on_event), move |_| {
            loaded.pool.model().wait_preloaded();
            json!({ "kind": "done" })
        })?;
        Ok(NativeTask {
            token: CancelToken::new(),
        })
    }

    /// Whether the model's memory is locked (`mlock` asked for and allowed by the system).
    #[napi(getter, catch_unwind)]
    pub fn is_locked(&self) -> napi::Result<bool> {
        Ok(self.loaded()?.pool.model().is_locked())
    }

    /// Drops this object's hold on the model; the memory is freed once running generations end.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        self.inner.write().unwrap_or_else(|e| e.into_inner()).take();
    }

    #[napi(getter, catch_unwind)]
    pub fn loaded_state(&self) -> bool {
        self.loaded().is_ok()
    }
}

/// A model's engine (woolly-core's `Engine`: continuous batching on its own worker thread).
/// Each request's events go from that thread to its callback through a thread-safe function:
/// `token` (when `stream`), then `done` or `error`, as for `NativeModel.generate`.
#[napi]
pub struct NativeEngine {
    /// None once closed.
    engine: Mutex<Option<Arc<Engine>>>,
    /// Prepares requests (tokenizing, rendering templates) off the JavaScript thread, one
    /// after another in submission order; None once closed.
    preparer: Mutex<Option<Preparer>>,
}

/// A request's preparation and queueing, run on the preparer's thread.
type PrepJob = Box<dyn FnOnce() + Send>;

/// The thread that prepares an engine's requests, in the order they were submitted.
struct Preparer {
    jobs: std::sync::mpsc::Sender<PrepJob>,
    thread: std::thread::JoinHandle<()>,
}

impl Preparer {
    fn start() -> napi::Result<Preparer> {
        let (jobs, rx) = std::sync::mpsc::channel::<PrepJob>();
        let thread = std::thread::Builder::new()
            .name("woolly-engine-prepare".into())
            .stack_size(WORKER_STACK)
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    // A job sends its own failure as an event; a panic must not end the thread.
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
            })
            .map_err(|e| js_error("WOOLLY_ERR_INTERNAL", format!("cannot start a thread: {e}")))?;
        Ok(Preparer { jobs, thread })
    }

    /// Lets the jobs submitted so far finish, then ends the thread.
    fn finish(self) {
        drop(self.jobs);
        let _ = self.thread.join();
    }
}

impl NativeEngine {
    fn engine(&self) -> napi::Result<Arc<Engine>> {
        self.engine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| js_error("WOOLLY_ERR_INVALID_ARGUMENT", "the engine is closed"))
    }

    fn take(&self) -> (Option<Arc<Engine>>, Option<Preparer>) {
        (
            self.engine.lock().unwrap_or_else(|e| e.into_inner()).take(),
            self.preparer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        )
    }
}

/// Drops an engine off the JavaScript thread (after the requests being prepared are queued;
/// the drop joins its worker, which first ends every request), then runs `then`.
fn drop_engine<F: FnOnce() + Send + 'static>(
    (engine, preparer): (Option<Arc<Engine>>, Option<Preparer>),
    then: F,
) {
    type Job<F> = Mutex<Option<(Option<Arc<Engine>>, Option<Preparer>, F)>>;
    fn run<F: FnOnce()>(job: &Job<F>) {
        if let Some((engine, preparer, then)) = job.lock().unwrap_or_else(|e| e.into_inner()).take()
        {
            if let Some(p) = preparer {
                p.finish();
            }
            drop(engine);
            then();
        }
    }
    let job: Arc<Job<F>> = Arc::new(Mutex::new(Some((engine, preparer, then))));
    let theirs = job.clone();
    let spawned = std::thread::Builder::new()
        .name("woolly-engine-close".into())
        .spawn(move || run(&theirs));
    if spawned.is_err() {
        // No thread (the system is out of them): here, then.
        run(&job);
    }
}

#[napi]
impl NativeEngine {
    /// An engine on `model`'s weights (its sessions are not used). Starting one is quick: its
    /// threads start, its scratch is charged to the model's memory budget.
    #[napi(constructor, catch_unwind)]
    pub fn new(model: &NativeModel, options: Option<EngineOptions>) -> napi::Result<Self> {
        let params = options
            .unwrap_or_default()
            .params()
            .map_err(|e| to_js(&e))?;
        let model = model.loaded()?.pool.model().clone();
        let engine = Engine::new(model, params).map_err(|e| to_js(&e))?;
        Ok(NativeEngine {
            engine: Mutex::new(Some(Arc::new(engine))),
            preparer: Mutex::new(Some(Preparer::start()?)),
        })
    }

    /// Submits a request for `prompt` or `messages`. Throws at once for bad options; the
    /// prompt is tokenized (or the messages rendered) off the JavaScript thread, and a request
    /// refused then (full queue, deadline passed, context overflow, tokenizer or template
    /// error) ends with its `error` event, nothing queued. The returned task cancels it.
    #[napi(catch_unwind)]
    pub fn submit(
        &self,
        prompt: Option<String>,
        messages: Option<Vec<Message>>,
        options: Option<GenerateOptions>,
        request: Option<RequestOptions>,
        stream: bool,
        on_event: EventFn,
    ) -> napi::Result<NativeTask> {
        let engine = self.engine()?;
        let request_options = request.unwrap_or_default();
        let mut params = options
            .unwrap_or_default()
            .params()
            .map_err(|e| to_js(&e))?;
        let token = CancelToken::new();
        params.cancel = Some(token.clone());
        let prompt = match (prompt, messages) {
            (Some(p), None) => Prompt::Text(p),
            (None, Some(m)) if !m.is_empty() => Prompt::Messages(chat_messages(m)),
            _ => {
                return Err(js_error(
                    "WOOLLY_ERR_INVALID_ARGUMENT",
                    "invalid argument: give a prompt or non-empty messages",
                ))
            }
        };
        let request = Request {
            prompt,
            params,
            priority: request_options.priority().map_err(|e| to_js(&e))?,
            latency_sensitive: request_options.latency_sensitive.unwrap_or(false),
            deadline: request_options.deadline().map_err(|e| to_js(&e))?,
        };
        // On the engine's thread; the callback (and so the thread-safe function, which keeps
        // Node's loop alive) goes with the sink after the last event.
        let on_event = Arc::new(on_event);
        let on_refused = on_event.clone();
        let sink = Box::new(move |ev: EngineEvent| match ev {
            EngineEvent::Token { id, text, index } => {
                if stream && !text.is_empty() {
                    send(
                        &on_event,
                        json!({ "kind": "token", "text": text, "id": id, "index": index }),
                    );
                }
            }
            EngineEvent::Done(g) => send(&on_event, done_event(&g)),
            EngineEvent::Error(e) => send(&on_event, to_event(&e)),
        });
        let prepare = Box::new(move || {
            let queued = engine
                .prepare(request)
                .and_then(|prepared| engine.enqueue(prepared, sink));
            if let Err(e) = queued {
                // Refused: the sink (which would have answered) is dropped unused.
                send(&on_refused, to_event(&e));
            }
        });
        let preparer = self.preparer.lock().unwrap_or_else(|e| e.into_inner());
        let sent = match preparer.as_ref() {
            Some(p) => p.jobs.send(prepare).is_ok(),
            None => false,
        };
        if !sent {
            return Err(js_error(
                "WOOLLY_ERR_INVALID_ARGUMENT",
                "the engine is closed",
            ));
        }
        Ok(NativeTask { token })
    }

    /// Counters and the state now (woolly-core's `EngineStats`, snake_case as in every front
    /// end).
    #[napi(catch_unwind)]
    pub fn stats(&self) -> napi::Result<Value> {
        serde_json::to_value(self.engine()?.stats()).map_err(|e| js_error("WOOLLY_ERR_INTERNAL", e))
    }

    /// Milliseconds a request of `priority` submitted now would wait to start (an estimate).
    #[napi(catch_unwind)]
    pub fn estimated_wait(&self, priority: Option<String>) -> napi::Result<f64> {
        let p =
            Priority::from_name(priority.as_deref().unwrap_or("normal")).map_err(|e| to_js(&e))?;
        Ok(self.engine()?.estimated_wait(p).as_secs_f64() * 1e3)
    }

    /// Tokens of context of each request.
    #[napi(getter, catch_unwind)]
    pub fn context_size(&self) -> napi::Result<u32> {
        Ok(self.engine()?.context_size() as u32)
    }

    /// Stops the engine on a new thread: every request still waiting or running ends with a
    /// `WOOLLY_ERR_CANCELLED` error event; then `done` (also when it was closed already).
    #[napi(catch_unwind)]
    pub fn close(&self, on_event: EventFn) {
        drop_engine(self.take(), move || {
            send(&on_event, json!({ "kind": "done" }))
        });
    }

    #[napi(getter, catch_unwind)]
    pub fn closed(&self) -> bool {
        self.engine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
    }
}

impl Drop for NativeEngine {
    /// Garbage collected without close(): the requests still there are cancelled the same way,
    /// off the JavaScript thread.
    fn drop(&mut self) {
        let (engine, preparer) = self.take();
        if engine.is_some() || preparer.is_some() {
            drop_engine((engine, preparer), || {});
        }
    }
}

/// What a session pool of the cache was handed out with, by model id: a live one is handed
/// out again (so that a model's JavaScript objects share its idle sessions).
struct Handed {
    loaded: Weak<Loaded>,
    /// The session params' Debug form (SessionParams has no PartialEq) and the idle count.
    key: String,
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
    let key = format!("{session:?}/{max_idle}");
    if let Some(h) = lock(handed).get(id) {
        if h.key == key {
            if let Some(l) = h
                .loaded
                .upgrade()
                .filter(|l| Arc::ptr_eq(l.pool.model(), &model))
            {
                return Ok(l);
            }
        }
    }
    let loaded = Loaded::open(model, session.clone(), max_idle)?;
    lock(handed).insert(
        id.to_string(),
        Handed {
            loaded: Arc::downgrade(&loaded),
            key,
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
            None => (None, SessionParams::default(), 2),
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

/// What loading the model at `path` with `options` would take, from its header alone, read on
/// a new thread. Events: `done` with `estimate` (woolly-core's `MemoryEstimate`), or `error`.
#[napi(catch_unwind)]
pub fn estimate(
    path: Option<String>,
    options: Option<LoadOptions>,
    on_event: EventFn,
) -> napi::Result<NativeTask> {
    let params = options
        .unwrap_or_default()
        .model_params()
        .map_err(|e| to_js(&e))?;
    spawn_worker(
        "woolly-estimate",
        Arc::new(on_event),
        move |_| match Model::estimate(path.as_deref().map(Path::new), &params) {
            Ok(est) => json!({ "kind": "done", "estimate": est }),
            Err(e) => to_event(&e),
        },
    )?;
    Ok(NativeTask {
        token: CancelToken::new(),
    })
}

/// The machine's memory under `options`' policy, and this process's (woolly-core's
/// `policy::memory::report`).
#[napi(catch_unwind)]
pub fn memory_report(options: Option<MemoryOptions>) -> napi::Result<Value> {
    let policy = options
        .unwrap_or_default()
        .policy()
        .map_err(|e| to_js(&e))?;
    Ok(woolly_core::policy::memory::report(&policy))
}

/// What Woolly detected about this machine.
#[napi(catch_unwind)]
pub fn hardware() -> Value {
    woolly_core::platform::Hardware::detect().to_json()
}

/// The diagnostics report of this process (no model).
#[napi(catch_unwind)]
pub fn diagnostics() -> Value {
    woolly_core::diagnostics::report(None)
}

/// Woolly's version.
#[napi(catch_unwind)]
pub fn version() -> String {
    woolly_core::VERSION.to_string()
}

/// Where the default model lives (whether or not it is installed).
#[napi(catch_unwind)]
pub fn default_model_path() -> Option<String> {
    woolly_core::model::default_model_path().map(|p| p.display().to_string())
}

// ---------------------------------------------------------------------------------------------
// Power and heat (process-wide: every model, session and engine follows them)

/// Sets the process-wide power profile: `balanced`, `high_performance`, `power_saver` or
/// `adaptive`.
#[napi(catch_unwind)]
pub fn set_power_profile(name: String) -> napi::Result<()> {
    power::manager().set_profile(PowerProfile::from_name(&name).map_err(|e| to_js(&e))?);
    Ok(())
}

/// The power state (woolly-core's `PowerState`, snake_case as in every front end).
#[napi(catch_unwind)]
pub fn power_state() -> napi::Result<Value> {
    serde_json::to_value(power::manager().state()).map_err(|e| js_error("WOOLLY_ERR_INTERNAL", e))
}

/// Starts the thermal monitor on a thread of its own (replacing one already running).
#[napi(catch_unwind)]
pub fn start_thermal_monitor(options: Option<ThermalOptions>) -> napi::Result<()> {
    let cfg = options
        .unwrap_or_default()
        .config()
        .map_err(|e| to_js(&e))?;
    power::manager()
        .start_thermal_monitor(cfg)
        .map_err(|e| to_js(&e))
}

/// Stops the thermal monitor (nothing when none runs); the cap it set is lifted.
#[napi(catch_unwind)]
pub fn stop_thermal_monitor() {
    power::manager().stop_thermal_monitor();
}

/// Explicit opt-in that changes the system for every program: sets the CPU frequency governor
/// of every CPU under `sysfs_root` (default `/`); the number of CPUs set.
#[napi(catch_unwind)]
pub fn set_cpu_governor(governor: String, sysfs_root: Option<String>) -> napi::Result<u32> {
    let root = PathBuf::from(sysfs_root.as_deref().unwrap_or("/"));
    power::set_cpu_governor(&root, &governor)
        .map(|n| n as u32)
        .map_err(|e| to_js(&e))
}

/// Test hook: reads the power source under `root` (default `/`).
#[napi(catch_unwind)]
pub fn set_power_root(root: Option<String>) {
    power::manager().set_power_root(PathBuf::from(root.as_deref().unwrap_or("/")));
}

// ---------------------------------------------------------------------------------------------
// Metrics and the doctor

/// Every metric Woolly keeps, in the Prometheus text exposition format 0.0.4.
#[napi(catch_unwind)]
pub fn metrics_prometheus() -> String {
    Registry::global().render_prometheus()
}

/// The same metrics as a JSON snapshot (`time_unix_ms`, `metrics`, `models`, `gpu`).
#[napi(catch_unwind)]
pub fn metrics() -> Value {
    Registry::global().to_json()
}

/// The `Content-Type` of `metricsPrometheus()`.
#[napi(catch_unwind)]
pub fn prometheus_content_type() -> String {
    woolly_core::metrics::PROMETHEUS_CONTENT_TYPE.to_string()
}

/// The doctor on a new thread. Events: `progress` (`progress`, `message`; when `progress` is
/// true), then `done` with `report`. woolly-core cannot stop it early: the task's `cancel`
/// does nothing.
#[napi(catch_unwind)]
pub fn doctor(
    model: Option<String>,
    measure: bool,
    progress: bool,
    on_event: EventFn,
) -> napi::Result<NativeTask> {
    let opts = woolly_core::diagnostics::DoctorOptions {
        model: model.map(PathBuf::from),
        measure,
        ..Default::default()
    };
    spawn_worker("woolly-doctor", Arc::new(on_event), move |cb| {
        let report = woolly_core::diagnostics::doctor_with(&opts, &mut |f, what| {
            if progress {
                send(
                    cb,
                    json!({ "kind": "progress", "progress": f, "message": what }),
                );
            }
        });
        json!({ "kind": "done", "report": report })
    })?;
    Ok(NativeTask {
        token: CancelToken::new(),
    })
}
