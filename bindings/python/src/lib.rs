//! `woolly._woolly`: the native half of the Python package. It stays thin: Python's option
//! bags become core params here, the work runs off the caller's thread with the GIL released,
//! and `woolly/__init__.py` gives it its Pythonic shape (iterators, asyncio, defaults).

mod errors;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use woolly_core::engine::{Engine, EngineParams, Event as EngineEvent, Priority, Prompt, Request};
use woolly_core::generate::{
    CancelToken, ChatMessage, GenerateParams, Generation, KvPrecision, SamplingParams,
    SessionParams, SessionPool,
};
use woolly_core::metrics::Registry;
use woolly_core::model::{Model, ModelCache, ModelParams, Preload, ProgressFn};
use woolly_core::policy::memory::{self, MemoryPolicy};
use woolly_core::policy::power::{self, PowerProfile, ThermalConfig};
use woolly_core::Error;

use errors::IntoPy;

/// How many idle sessions (each with its KV cache) a model keeps for reuse.
const MAX_IDLE_SESSIONS: usize = 4;

fn invalid(py: Python<'_>, msg: String) -> PyErr {
    errors::to_py(py, &Error::InvalidArgument(msg))
}

fn session_params(
    py: Python<'_>,
    threads: usize,
    thread_policy: &str,
    context_size: usize,
    kv_precision: &str,
) -> PyResult<SessionParams> {
    let (interactive, background) = match thread_policy {
        "auto" => (false, false),
        "interactive" => (true, false),
        "background" => (false, true),
        other => {
            return Err(invalid(
                py,
                format!(
                    "thread_policy must be 'auto', 'interactive' or 'background', not {other:?}"
                ),
            ))
        }
    };
    Ok(SessionParams {
        threads,
        interactive,
        background,
        context_size,
        kv_precision: KvPrecision::from_name(kv_precision).py_err(py)?,
        ..Default::default()
    })
}

/// A memory policy from the figures Python passes (sizes already in bytes), checked.
fn memory_policy(
    py: Python<'_>,
    budget: Option<u64>,
    reserve: Option<u64>,
    pressure_threshold: Option<f64>,
) -> PyResult<MemoryPolicy> {
    let policy = MemoryPolicy {
        budget_bytes: budget,
        reserve_bytes: reserve,
        pressure_threshold,
        ..Default::default()
    };
    policy.validate().py_err(py)?;
    Ok(policy)
}

/// Load options, checked once: the model's params (without the progress callback, which each
/// load brings) and the params of its sessions.
#[pyclass(frozen, module = "woolly._woolly")]
struct LoadOptions {
    model: ModelParams,
    session: SessionParams,
}

#[pymethods]
impl LoadOptions {
    #[new]
    #[pyo3(signature = (preload, mlock, repack, threads, thread_policy, context_size, kv_precision,
        memory_budget, memory_reserve, pressure_threshold))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        preload: &str,
        mlock: bool,
        repack: bool,
        threads: usize,
        thread_policy: &str,
        context_size: usize,
        kv_precision: &str,
        memory_budget: Option<u64>,
        memory_reserve: Option<u64>,
        pressure_threshold: Option<f64>,
    ) -> PyResult<Self> {
        let model = ModelParams {
            progress: None,
            preload: Preload::from_name(preload).py_err(py)?,
            mlock,
            repack,
            memory: memory_policy(py, memory_budget, memory_reserve, pressure_threshold)?,
            // The load plans its memory for the context its sessions will have.
            context_size,
        };
        let session = session_params(py, threads, thread_policy, context_size, kv_precision)?;
        Ok(LoadOptions { model, session })
    }
}

/// The load's progress callback: it runs Python (with the GIL) on the loading thread; an
/// exception from it, or Ctrl-C, cancels the load and lands in the returned slot, to be raised
/// afterwards.
fn progress_fn(progress: Option<Py<PyAny>>) -> (ProgressFn, Arc<Mutex<Option<PyErr>>>) {
    let raised: Arc<Mutex<Option<PyErr>>> = Arc::new(Mutex::new(None));
    let sink = raised.clone();
    let report = Arc::new(move |f: f32| -> bool {
        Python::attach(|py| {
            let outcome = py.check_signals().and_then(|()| match &progress {
                Some(cb) => cb.call1(py, (f,))?.bind(py).is_truthy(),
                None => Ok(true),
            });
            match outcome {
                Ok(go_on) => go_on,
                Err(e) => {
                    *sink.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    false
                }
            }
        })
    });
    (report, raised)
}

/// Runs `load` with the GIL released and the progress callback installed in its params; the
/// callback's exception, if any, wins over the load's own error (which is then Cancelled).
fn load_with_progress<T: Send>(
    py: Python<'_>,
    options: &LoadOptions,
    progress: Option<Py<PyAny>>,
    load: impl FnOnce(&ModelParams) -> Result<T, Error> + Send,
) -> PyResult<T> {
    let (report, raised) = progress_fn(progress);
    let params = ModelParams {
        progress: Some(report),
        ..options.model.clone()
    };
    let loaded = py.detach(|| load(&params));
    // The callback (and the Python objects it holds) goes with the GIL held.
    drop(params);
    if let Some(e) = raised.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    loaded.py_err(py)
}

/// A loaded model and the sessions it keeps for reuse.
#[pyclass(frozen, module = "woolly._woolly")]
struct NativeModel {
    pool: Arc<SessionPool>,
}

#[pymethods]
impl NativeModel {
    #[new]
    #[pyo3(signature = (path, options, progress))]
    fn new(
        py: Python<'_>,
        path: Option<PathBuf>,
        options: PyRef<'_, LoadOptions>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let sp = options.session.clone();
        let pool = load_with_progress(py, &options, progress, |params| {
            Model::load(path.as_deref(), params)
                .and_then(|m| SessionPool::new(m, sp, MAX_IDLE_SESSIONS))
        })?;
        Ok(NativeModel {
            pool: Arc::new(pool),
        })
    }

    /// Token ids of `text`.
    fn tokenize(
        &self,
        py: Python<'_>,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> PyResult<Vec<u32>> {
        let model = self.pool.model();
        py.detach(|| model.tokenize(text, add_special, parse_special))
            .py_err(py)
    }

    /// Text of `ids`.
    fn detokenize(&self, py: Python<'_>, ids: Vec<i64>) -> PyResult<String> {
        let model = self.pool.model();
        let vocab = model.hparams().n_vocab;
        let mut toks = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            if id < 0 || id as u64 >= vocab as u64 {
                return Err(invalid(
                    py,
                    format!("ids[{i}] = {id} is outside the vocabulary of {vocab}"),
                ));
            }
            toks.push(id as u32);
        }
        py.detach(|| model.detokenize(&toks)).py_err(py)
    }

    /// The prompt text that `messages` become under the model's chat template.
    fn apply_chat_template(
        &self,
        py: Python<'_>,
        messages: Vec<(String, String)>,
    ) -> PyResult<String> {
        let msgs: Vec<ChatMessage> = messages
            .into_iter()
            .map(|(r, c)| ChatMessage::new(r, c))
            .collect();
        self.pool.model().apply_chat_template(&msgs).py_err(py)
    }

    /// Facts about the model, as JSON.
    fn info_json(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.pool.model().info().py_err(py)?.to_string())
    }

    /// The model's counters, as JSON.
    fn metrics_json(&self) -> String {
        self.pool.model().metrics().snapshot().to_json().to_string()
    }

    /// The diagnostics report with this model, as JSON.
    fn diagnostics_json(&self) -> String {
        woolly_core::diagnostics::report(Some(self.pool.model())).to_string()
    }

    /// The model's memory (estimate, charges, residency, preload, RSS), as JSON.
    fn memory_report_json(&self, py: Python<'_>) -> String {
        let model = self.pool.model();
        py.detach(|| model.memory_report().to_string())
    }

    /// How far a background preload got, as JSON.
    fn preload_progress_json(&self) -> String {
        serde_json::to_string(&self.pool.model().preload_progress()).unwrap_or_default()
    }

    /// Waits (with the GIL released) until a background preload has read every page.
    fn wait_preloaded(&self, py: Python<'_>) {
        let model = self.pool.model();
        py.detach(|| model.wait_preloaded());
    }

    /// Whether the model's memory is locked (mlock asked for and allowed).
    fn is_locked(&self) -> bool {
        self.pool.model().is_locked()
    }

    /// Starts a generation on a worker thread; the returned job streams its pieces.
    #[pyo3(signature = (prompt, messages, max_tokens, temperature, top_k, top_p, min_p,
        repeat_penalty, frequency_penalty, presence_penalty, penalty_last_n, seed, stop, ignore_eos, parse_special_in_messages))]
    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        py: Python<'_>,
        prompt: Option<String>,
        messages: Option<Vec<(String, String)>>,
        max_tokens: usize,
        temperature: f32,
        top_k: usize,
        top_p: f32,
        min_p: f32,
        repeat_penalty: f32,
        frequency_penalty: f32,
        presence_penalty: f32,
        penalty_last_n: usize,
        seed: Option<u64>,
        stop: Vec<String>,
        ignore_eos: bool,
        parse_special_in_messages: bool,
    ) -> PyResult<Job> {
        let params = generate_params(
            py,
            max_tokens,
            SamplingParams {
                temperature,
                top_k,
                top_p,
                min_p,
                repetition_penalty: repeat_penalty,
                frequency_penalty,
                presence_penalty,
                penalty_last_n,
                seed,
                ..Default::default()
            },
            stop,
            ignore_eos,
            parse_special_in_messages,
        )?;
        let input = input(py, prompt, messages)?;
        Ok(Job::spawn(self.pool.clone(), input, params))
    }
}

/// Generation params from Python's options; bad ones fail here, in the caller's thread, before
/// anything starts.
fn generate_params(
    py: Python<'_>,
    max_tokens: usize,
    sampling: SamplingParams,
    stop: Vec<String>,
    ignore_eos: bool,
    parse_special_in_messages: bool,
) -> PyResult<GenerateParams> {
    sampling.validate().py_err(py)?;
    Ok(GenerateParams {
        max_tokens,
        sampling,
        stop,
        ignore_eos,
        parse_special_in_messages,
        ..Default::default()
    })
}

/// A prompt or a conversation (exactly one of them).
fn input(
    py: Python<'_>,
    prompt: Option<String>,
    messages: Option<Vec<(String, String)>>,
) -> PyResult<Input> {
    match (prompt, messages) {
        (Some(p), None) => Ok(Input::Text(p)),
        (None, Some(m)) if !m.is_empty() => Ok(Input::Chat(
            m.into_iter().map(|(r, c)| ChatMessage::new(r, c)).collect(),
        )),
        (None, Some(_)) => Err(invalid(py, "messages is empty".into())),
        _ => Err(invalid(py, "give a prompt or messages, not both".into())),
    }
}

enum Input {
    Text(String),
    Chat(Vec<ChatMessage>),
}

enum Event {
    Piece(String),
    Done(Result<Generation, Error>),
}

/// A generation running on its own thread. Dropping it cancels the generation.
#[pyclass(frozen, module = "woolly._woolly")]
struct Job {
    events: Mutex<Receiver<Event>>,
    cancel: CancelToken,
}

impl Job {
    fn spawn(pool: Arc<SessionPool>, input: Input, mut params: GenerateParams) -> Job {
        let (tx, rx) = channel();
        let cancel = CancelToken::new();
        params.cancel = Some(cancel.clone());
        let tx_fail = tx.clone();
        let spawned = std::thread::Builder::new()
            .name("woolly-generate".into())
            .spawn(move || {
                let result = run(&pool, &input, &params, &tx);
                let _ = tx.send(Event::Done(result));
            });
        if let Err(e) = spawned {
            // No thread: the job reports the failure as its result.
            let _ = tx_fail.send(Event::Done(Err(Error::Internal(format!(
                "cannot start a generation thread: {e}"
            )))));
        }
        Job {
            events: Mutex::new(rx),
            cancel,
        }
    }
}

fn run(
    pool: &SessionPool,
    input: &Input,
    params: &GenerateParams,
    tx: &Sender<Event>,
) -> Result<Generation, Error> {
    let mut session = pool.acquire()?;
    // Pieces go to the channel; when nobody listens any more, generation stops.
    let on_token = |ev: &woolly_core::generate::TokenEvent<'_>| {
        ev.text.is_empty() || tx.send(Event::Piece(ev.text.to_string())).is_ok()
    };
    match input {
        Input::Text(p) => session.generate(p, params, on_token),
        Input::Chat(m) => session.chat(m, params, on_token),
    }
}

#[pymethods]
impl Job {
    /// Waits up to `timeout` seconds (with the GIL released) for the next event:
    /// `(0, None)` nothing yet, `(1, piece)` text, `(2, result_json)` finished. A failed
    /// generation raises its exception instead; after the end it returns `(3, None)`.
    fn poll(&self, py: Python<'_>, timeout: f64) -> PyResult<(u8, Option<String>)> {
        let timeout = Duration::from_secs_f64(timeout.clamp(0.0, 3600.0));
        let got = py.detach(|| {
            let rx = self.events.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv_timeout(timeout)
        });
        match got {
            Ok(Event::Piece(p)) => Ok((1, Some(p))),
            Ok(Event::Done(Ok(g))) => {
                let v = serde_json::json!({
                    "text": g.text,
                    "prompt_ids": g.prompt_ids,
                    "generated_ids": g.generated_ids,
                    "stop_reason": format!("{:?}", g.stop_reason),
                    "timings": g.timings,
                });
                Ok((2, Some(v.to_string())))
            }
            Ok(Event::Done(Err(e))) => Err(errors::to_py(py, &e)),
            Err(RecvTimeoutError::Timeout) => Ok((0, None)),
            Err(RecvTimeoutError::Disconnected) => Ok((3, None)),
        }
    }

    /// Asks the generation to stop (also during its prompt); it then ends with CancelledError.
    fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A model's engine (continuous batching, woolly-core's `Engine`): requests from any thread
/// share its forward passes. Its requests are `Job`s, as the model's generations are: their
/// events come through a channel (the engine's worker thread never takes the GIL).
#[pyclass(frozen, module = "woolly._woolly")]
struct NativeEngine {
    /// None once closed.
    engine: Mutex<Option<Arc<Engine>>>,
}

impl NativeEngine {
    fn engine(&self, py: Python<'_>) -> PyResult<Arc<Engine>> {
        self.engine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| invalid(py, "the engine is closed".into()))
    }
}

/// A duration of `value` units of `unit` seconds (finite, not negative), named `name` in the
/// error.
fn duration(py: Python<'_>, name: &str, value: f64, unit: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value * unit).map_err(|_| {
        invalid(
            py,
            format!("{name} must be a finite number >= 0, not {value}"),
        )
    })
}

#[pymethods]
impl NativeEngine {
    #[new]
    #[pyo3(signature = (model, max_batch_size, max_concurrent, queue_capacity, prefill_chunk,
        max_latency_ms, context_size, kv_precision, threads))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: PyRef<'_, NativeModel>,
        max_batch_size: usize,
        max_concurrent: usize,
        queue_capacity: usize,
        prefill_chunk: usize,
        max_latency_ms: f64,
        context_size: usize,
        kv_precision: &str,
        threads: usize,
    ) -> PyResult<Self> {
        let params = EngineParams {
            max_batch_size,
            max_concurrent,
            queue_capacity,
            prefill_chunk,
            max_latency: duration(py, "max_latency_ms", max_latency_ms, 1e-3)?,
            context_size,
            kv_precision: KvPrecision::from_name(kv_precision).py_err(py)?,
            threads,
        };
        let model = model.pool.model().clone();
        let engine = py.detach(|| Engine::new(model, params)).py_err(py)?;
        Ok(NativeEngine {
            engine: Mutex::new(Some(Arc::new(engine))),
        })
    }

    /// Submits a request; returns its id and the job that streams its pieces. Fails at once
    /// (nothing queued) when the queue is full, the deadline has passed, or the request is bad.
    #[pyo3(signature = (prompt, messages, priority, latency_sensitive, deadline_s, max_tokens,
        temperature, top_k, top_p, min_p, repeat_penalty, frequency_penalty, presence_penalty,
        penalty_last_n, seed, stop, ignore_eos, parse_special_in_messages))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        prompt: Option<String>,
        messages: Option<Vec<(String, String)>>,
        priority: &str,
        latency_sensitive: bool,
        deadline_s: Option<f64>,
        max_tokens: usize,
        temperature: f32,
        top_k: usize,
        top_p: f32,
        min_p: f32,
        repeat_penalty: f32,
        frequency_penalty: f32,
        presence_penalty: f32,
        penalty_last_n: usize,
        seed: Option<u64>,
        stop: Vec<String>,
        ignore_eos: bool,
        parse_special_in_messages: bool,
    ) -> PyResult<(u64, Job)> {
        let mut params = generate_params(
            py,
            max_tokens,
            SamplingParams {
                temperature,
                top_k,
                top_p,
                min_p,
                repetition_penalty: repeat_penalty,
                frequency_penalty,
                presence_penalty,
                penalty_last_n,
                seed,
                ..Default::default()
            },
            stop,
            ignore_eos,
            parse_special_in_messages,
        )?;
        let prompt = match input(py, prompt, messages)? {
            Input::Text(t) => Prompt::Text(t),
            Input::Chat(m) => Prompt::Messages(m),
        };
        let priority = Priority::from_name(priority).py_err(py)?;
        // A deadline too far to represent is no deadline.
        let deadline = match deadline_s {
            Some(s) => Instant::now().checked_add(duration(py, "deadline_s", s, 1.0)?),
            None => None,
        };
        let cancel = CancelToken::new();
        params.cancel = Some(cancel.clone());
        let request = Request {
            prompt,
            params,
            priority,
            latency_sensitive,
            deadline,
        };
        let engine = self.engine(py)?;
        let (tx, rx) = channel();
        // On the engine's thread: pieces and the end go to the job's channel (a send fails
        // only once the job is gone, which has cancelled the request).
        let sink = Box::new(move |ev: EngineEvent| {
            let _ = match ev {
                EngineEvent::Token { text, .. } if text.is_empty() => Ok(()),
                EngineEvent::Token { text, .. } => tx.send(Event::Piece(text)),
                EngineEvent::Done(g) => tx.send(Event::Done(Ok(g))),
                EngineEvent::Error(e) => tx.send(Event::Done(Err(e))),
            };
        });
        // Tokenizing (and a chat template) runs here, without the GIL.
        let id = py.detach(|| engine.submit_with(request, sink)).py_err(py)?;
        Ok((
            id,
            Job {
                events: Mutex::new(rx),
                cancel,
            },
        ))
    }

    /// The engine's counters and state, as JSON.
    fn stats_json(&self, py: Python<'_>) -> PyResult<String> {
        let stats = self.engine(py)?.stats();
        serde_json::to_string(&stats)
            .map_err(|e| errors::to_py(py, &Error::Internal(e.to_string())))
    }

    /// Seconds a request of `priority` submitted now would wait to start (an estimate).
    fn estimated_wait(&self, py: Python<'_>, priority: &str) -> PyResult<f64> {
        let priority = Priority::from_name(priority).py_err(py)?;
        Ok(self.engine(py)?.estimated_wait(priority).as_secs_f64())
    }

    /// Tokens of context of each request.
    fn context_size(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.engine(py)?.context_size())
    }

    /// Stops the engine (with the GIL released): every request still waiting or running ends
    /// with CancelledError. Later calls do nothing.
    fn close(&self, py: Python<'_>) {
        let engine = self.engine.lock().unwrap_or_else(|p| p.into_inner()).take();
        // The last holder drops it: it joins the worker, which answers every request first.
        py.detach(move || drop(engine));
    }

    fn is_closed(&self) -> bool {
        self.engine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }
}

/// This machine's hardware as Woolly detected it, as JSON.
#[pyfunction]
fn hardware_json() -> String {
    woolly_core::platform::Hardware::detect()
        .to_json()
        .to_string()
}

/// The diagnostics report without a model, as JSON.
#[pyfunction]
fn diagnostics_json() -> String {
    woolly_core::diagnostics::report(None).to_string()
}

/// Bytes of a size such as `"512MB"`, `"1.5GiB"` or `"1048576"`.
#[pyfunction]
fn parse_size(py: Python<'_>, text: &str) -> PyResult<u64> {
    memory::parse_size(text).py_err(py)
}

/// What loading the model at `path` with `options` would take (from its header), as JSON.
#[pyfunction]
#[pyo3(signature = (path, options))]
fn estimate_json(
    py: Python<'_>,
    path: Option<PathBuf>,
    options: PyRef<'_, LoadOptions>,
) -> PyResult<String> {
    let params = &options.model;
    let est = py
        .detach(|| Model::estimate(path.as_deref(), params))
        .py_err(py)?;
    serde_json::to_string(&est).map_err(|e| errors::to_py(py, &Error::Internal(e.to_string())))
}

/// The machine's memory, the policy's figures and this process, as JSON.
#[pyfunction]
#[pyo3(signature = (memory_budget, memory_reserve, pressure_threshold))]
fn memory_report_json(
    py: Python<'_>,
    memory_budget: Option<u64>,
    memory_reserve: Option<u64>,
    pressure_threshold: Option<f64>,
) -> PyResult<String> {
    let policy = memory_policy(py, memory_budget, memory_reserve, pressure_threshold)?;
    Ok(memory::report(&policy).to_string())
}

/// Session pools this cache handed out, by model id: a live one is handed out again (so that a
/// model's Python objects share its idle sessions), with the session params of the last load.
struct Handed {
    pool: Weak<SessionPool>,
    session: SessionParams,
}

/// Models by id within one memory budget (woolly-core's `ModelCache`); the `NativeModel`s it
/// returns hold their model, which keeps it from being evicted while they live.
#[pyclass(frozen, module = "woolly._woolly")]
struct NativeModelCache {
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
        // SessionParams has no PartialEq: its Debug form stands for its fields.
        if session.is_some_and(|s| format!("{s:?}") != format!("{:?}", h.session)) {
            return None;
        }
        h.pool.upgrade().filter(|p| Arc::ptr_eq(p.model(), model))
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

// ---------------------------------------------------------------------------------------------
// Power and heat (process-wide: every model, session and engine follows them)

/// Uses the power profile `name` from now on.
#[pyfunction]
fn set_power_profile(py: Python<'_>, name: &str) -> PyResult<()> {
    power::manager().set_profile(PowerProfile::from_name(name).py_err(py)?);
    Ok(())
}

/// The power state (profile, power source, knobs, throttling, temperature), as JSON.
#[pyfunction]
fn power_state_json(py: Python<'_>) -> PyResult<String> {
    // Reading the power source touches sysfs: without the GIL.
    let state = py.detach(|| power::manager().state());
    serde_json::to_string(&state).map_err(|e| errors::to_py(py, &Error::Internal(e.to_string())))
}

/// Starts (or restarts) the thermal monitor on its own thread.
#[pyfunction]
#[pyo3(signature = (threshold_c, interval_s, sysfs_root))]
fn start_thermal_monitor(
    py: Python<'_>,
    threshold_c: f64,
    interval_s: f64,
    sysfs_root: Option<PathBuf>,
) -> PyResult<()> {
    if !threshold_c.is_finite() || threshold_c <= 0.0 || threshold_c > 150.0 {
        return Err(invalid(
            py,
            format!("threshold_c = {threshold_c} must be in (0, 150]"),
        ));
    }
    let interval = duration(py, "interval_s", interval_s, 1.0)?;
    let cfg = ThermalConfig {
        root: sysfs_root.unwrap_or_else(|| PathBuf::from("/")),
        threshold_c,
        interval,
        ..ThermalConfig::default()
    };
    // A running monitor is stopped (its thread joined) first.
    py.detach(|| power::manager().start_thermal_monitor(cfg))
        .py_err(py)
}

/// Stops the thermal monitor (nothing when none runs); the cap it set is lifted.
#[pyfunction]
fn stop_thermal_monitor(py: Python<'_>) {
    py.detach(|| power::manager().stop_thermal_monitor());
}

/// Explicit opt-in that changes the system: the CPU frequency governor of every CPU under
/// `sysfs_root` (None: `/`); the number of CPUs set.
#[pyfunction]
#[pyo3(signature = (governor, sysfs_root))]
fn set_cpu_governor(
    py: Python<'_>,
    governor: &str,
    sysfs_root: Option<PathBuf>,
) -> PyResult<usize> {
    let root = sysfs_root.unwrap_or_else(|| PathBuf::from("/"));
    py.detach(|| power::set_cpu_governor(&root, governor))
        .py_err(py)
}

/// Test hook: reads the power source under `root` (None: `/`) instead of `/`.
#[pyfunction]
#[pyo3(signature = (root))]
fn set_power_root(py: Python<'_>, root: Option<PathBuf>) {
    py.detach(|| {
        power::manager().set_power_root(root.unwrap_or_else(|| PathBuf::from("/")));
    });
}

// ---------------------------------------------------------------------------------------------
// Metrics and the doctor

/// Every metric Woolly keeps, in the Prometheus text exposition format 0.0.4.
#[pyfunction]
fn metrics_prometheus(py: Python<'_>) -> String {
    // The snapshot reads /proc and asks NVML about GPUs: without the GIL.
    py.detach(|| Registry::global().render_prometheus())
}

/// The same metrics as a JSON snapshot.
#[pyfunction]
fn metrics_json(py: Python<'_>) -> String {
    py.detach(|| Registry::global().to_json().to_string())
}

enum DoctorEvent {
    Progress(f32, String),
    Done(String),
}

/// The doctor running on its own thread. Its progress comes through a channel, so the
/// callback runs on the caller's thread; dropping the job stops listening (woolly-core has no
/// way to stop the measurement itself, which then finishes in the background).
#[pyclass(frozen, module = "woolly._woolly")]
struct DoctorJob {
    events: Mutex<Receiver<DoctorEvent>>,
}

/// Starts the doctor on a new thread.
#[pyfunction]
#[pyo3(signature = (model, measure, progress))]
fn doctor_start(
    py: Python<'_>,
    model: Option<PathBuf>,
    measure: bool,
    progress: bool,
) -> PyResult<DoctorJob> {
    let (tx, rx) = channel();
    let opts = woolly_core::diagnostics::DoctorOptions {
        model,
        measure,
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("woolly-doctor".into())
        .spawn(move || {
            let report = woolly_core::diagnostics::doctor_with(&opts, &mut |f, what| {
                if progress {
                    let _ = tx.send(DoctorEvent::Progress(f, what.to_string()));
                }
            });
            let _ = tx.send(DoctorEvent::Done(report.to_string()));
        })
        .map_err(|e| {
            errors::to_py(
                py,
                &Error::Internal(format!("cannot start the doctor's thread: {e}")),
            )
        })?;
    Ok(DoctorJob {
        events: Mutex::new(rx),
    })
}

#[pymethods]
impl DoctorJob {
    /// Waits up to `timeout` seconds (with the GIL released) for the next event: `(0, 0.0,
    /// None)` nothing yet, `(1, fraction, message)` progress, `(2, 1.0, report_json)` done.
    fn poll(&self, py: Python<'_>, timeout: f64) -> PyResult<(u8, f32, Option<String>)> {
        let timeout = Duration::from_secs_f64(timeout.clamp(0.0, 3600.0));
        let got = py.detach(|| {
            let rx = self.events.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv_timeout(timeout)
        });
        match got {
            Ok(DoctorEvent::Progress(f, what)) => Ok((1, f, Some(what))),
            Ok(DoctorEvent::Done(json)) => Ok((2, 1.0, Some(json))),
            Err(RecvTimeoutError::Timeout) => Ok((0, 0.0, None)),
            Err(RecvTimeoutError::Disconnected) => Err(errors::to_py(
                py,
                &Error::Internal("the doctor's thread ended without a report".into()),
            )),
        }
    }
}

/// For the tests only: panics on the caller's thread, as a bug inside Woolly would. PyO3 raises
/// `pyo3_runtime.PanicException`; the panic's message goes to Woolly's log, never to stderr.
#[pyfunction(name = "_panic")]
fn panic_for_tests(message: &str) {
    panic!("{message}");
}

#[pymodule]
fn _woolly(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // This extension module carries its own Rust runtime: every panic in it is Woolly's, and
    // none may print to the host's stderr (PyO3 turns a panic in a call into an exception).
    woolly_core::panics::claim_all();
    m.add("__version__", woolly_core::VERSION)?;
    m.add(
        "PROMETHEUS_CONTENT_TYPE",
        woolly_core::metrics::PROMETHEUS_CONTENT_TYPE,
    )?;
    m.add_class::<NativeModel>()?;
    m.add_class::<NativeModelCache>()?;
    m.add_class::<LoadOptions>()?;
    m.add_class::<Job>()?;
    m.add_class::<NativeEngine>()?;
    m.add_class::<DoctorJob>()?;
    m.add_function(wrap_pyfunction!(hardware_json, m)?)?;
    m.add_function(wrap_pyfunction!(diagnostics_json, m)?)?;
    m.add_function(wrap_pyfunction!(parse_size, m)?)?;
    m.add_function(wrap_pyfunction!(estimate_json, m)?)?;
    m.add_function(wrap_pyfunction!(memory_report_json, m)?)?;
    m.add_function(wrap_pyfunction!(set_power_profile, m)?)?;
    m.add_function(wrap_pyfunction!(power_state_json, m)?)?;
    m.add_function(wrap_pyfunction!(start_thermal_monitor, m)?)?;
    m.add_function(wrap_pyfunction!(stop_thermal_monitor, m)?)?;
    m.add_function(wrap_pyfunction!(set_cpu_governor, m)?)?;
    m.add_function(wrap_pyfunction!(set_power_root, m)?)?;
    m.add_function(wrap_pyfunction!(metrics_prometheus, m)?)?;
    m.add_function(wrap_pyfunction!(metrics_json, m)?)?;
    m.add_function(wrap_pyfunction!(doctor_start, m)?)?;
    m.add_function(wrap_pyfunction!(panic_for_tests, m)?)?;
    Ok(())
}
