//! Woolly for Node.js and Electron (Node-API through napi-rs).
//!
//! This native module is deliberately thin; `index.js` is the public API. Slow work (loading,
//! generating) runs on threads of its own, never on the JavaScript thread nor on libuv's pool, and
//! reports back through a thread-safe function as plain event objects:
//! `{ kind: "progress", progress }`, `{ kind: "loaded" }`, `{ kind: "token", text, id, index }`,
//! `{ kind: "done", ... }` and `{ kind: "error", code, message }` (codes as in the C ABI).

mod error;
mod options;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use napi::bindgen_prelude::Unknown;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use serde_json::{json, Value};
use woolly_core::generate::{
    CancelToken, ChatMessage, GenerateParams, Generation, SessionPool, StopReason,
};
use woolly_core::model::{Model, ProgressFn};

use error::{js_error, to_event, to_js};
use options::{chat_messages, GenerateOptions, LoadOptions, Message};

/// A JavaScript callback that receives one event object, callable from any thread.
type EventFn = ThreadsafeFunction<Value, Unknown<'static>, Value, Status, false>;

/// Stack of the load and generation threads (the forward pass recurses little, but a chat
/// template render can).
const WORKER_STACK: usize = 8 << 20;

fn send(cb: &EventFn, ev: Value) {
    // NonBlocking on an unbounded queue never waits; it fails only while Node shuts down.
    let _ = cb.call(ev, ThreadsafeFunctionCallMode::NonBlocking);
}

/// Runs `work` on a new thread; a panic there becomes an `error` event instead of an abort.
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
    #[napi]
    pub fn cancel(&self) {
        self.token.cancel();
    }
}

/// A loaded model: its session pool and facts fixed at load.
struct Loaded {
    pool: SessionPool,
    context_size: usize,
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
    #[napi(constructor)]
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

    /// Loads the model at `path` (or the default one) on a new thread. Events: `progress` (when
    /// `progress` is true, at most once per percent), then `loaded` or `error`.
    #[napi]
    pub fn load(
        &self,
        path: Option<String>,
        options: Option<LoadOptions>,
        progress: bool,
        on_event: EventFn,
    ) -> napi::Result<NativeTask> {
        if self.loading.swap(true, Ordering::SeqCst) || self.loaded().is_ok() {
            return Err(js_error(
                "WOOLLY_ERR_INVALID_ARGUMENT",
                "this model object is already loaded or loading",
            ));
        }
        let options = options.unwrap_or_default();
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
            let mut params = options.model_params();
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
            let path = path.map(PathBuf::from);
            // The pool opens its first session now, so that bad session options fail the load.
            let result = Model::load(path.as_deref(), &params).and_then(|model| {
                SessionPool::new(
                    model,
                    options.session_params(),
                    options.max_idle_sessions.unwrap_or(2) as usize,
                )
            });
            let result = result.and_then(|pool| {
                // The idle session the pool opened: no new one.
                let context_size = pool.acquire()?.context_size();
                Ok(Loaded { pool, context_size })
            });
            loading.store(false, Ordering::SeqCst);
            match result {
                Ok(loaded) => {
                    *inner.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(loaded));
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
    #[napi]
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
    #[napi]
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

    #[napi]
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

    #[napi]
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

    #[napi]
    pub fn apply_chat_template(&self, messages: Vec<Message>) -> napi::Result<String> {
        self.loaded()?
            .pool
            .model()
            .apply_chat_template(&chat_messages(messages))
            .map_err(|e| to_js(&e))
    }

    /// The model's facts (woolly-core's `Model::info`, the same as C and Python report), with
    /// the names this API uses in camelCase, and the context size of its sessions.
    #[napi]
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
    #[napi]
    pub fn metrics(&self) -> napi::Result<Value> {
        Ok(self.loaded()?.pool.model().metrics().snapshot().to_json())
    }

    /// The diagnostics report with this model's section.
    #[napi]
    pub fn diagnostics(&self) -> napi::Result<Value> {
        Ok(woolly_core::diagnostics::report(Some(
            self.loaded()?.pool.model(),
        )))
    }

    /// Drops this object's hold on the model; the memory is freed once running generations end.
    #[napi]
    pub fn close(&self) {
        self.inner.write().unwrap_or_else(|e| e.into_inner()).take();
    }

    #[napi(getter)]
    pub fn loaded_state(&self) -> bool {
        self.loaded().is_ok()
    }
}

/// What Woolly detected about this machine.
#[napi]
pub fn hardware() -> Value {
    woolly_core::tune::Hardware::detect().to_json()
}

/// The diagnostics report of this process (no model).
#[napi]
pub fn diagnostics() -> Value {
    woolly_core::diagnostics::report(None)
}

/// Woolly's version.
#[napi]
pub fn version() -> String {
    woolly_core::VERSION.to_string()
}

/// Where the default model lives (whether or not it is installed).
#[napi]
pub fn default_model_path() -> Option<String> {
    woolly_core::model::default_model_path().map(|p| p.display().to_string())
}
