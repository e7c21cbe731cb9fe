//! `NativeModel`: a loaded model, its pool of sessions, and the generations run on them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};

use napi_derive::napi;
use serde_json::{json, Value};
use woolly_core::generate::{
    CancelToken, GenerateParams, Generation, Prompt, SessionParams, SessionPool, TokenLogprob,
    TopLogprob,
};
use woolly_core::model::{Model, ModelParams, ProgressFn};

use crate::error::{js_error, to_event, to_js};
use crate::options::{chat_messages, GenerateOptions, LoadOptions, Message};
use crate::task::{send, spawn_worker, EventFn, NativeTask};

/// A loaded model: its session pool and facts fixed at load.
pub(crate) struct Loaded {
    pub(crate) pool: SessionPool,
    pub(crate) context_size: usize,
}

impl Loaded {
    /// A pool of sessions on `model`; it opens its first session now, so that bad session
    /// options (or a session that does not fit in the memory budget) fail here.
    pub(crate) fn open(
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

fn logprob_entry(t: &TopLogprob) -> Value {
    json!({ "id": t.id, "token": t.token, "bytes": t.bytes, "logprob": t.logprob })
}

/// One token's log probabilities as every front end spells them, in this API's camelCase:
/// `id`, `token`, `bytes`, `logprob` and `topLogprobs` (the alternatives, best first).
pub(crate) fn logprob_json(lp: &TokenLogprob) -> Value {
    let mut v = logprob_entry(&lp.chosen);
    v["topLogprobs"] = lp.top.iter().map(logprob_entry).collect();
    v
}

/// A `token` event: its text, id and index, and its log probabilities when asked for.
pub(crate) fn token_event(
    text: &str,
    id: u32,
    index: usize,
    logprob: Option<&TokenLogprob>,
) -> Value {
    let mut ev = json!({ "kind": "token", "text": text, "id": id, "index": index });
    if let Some(lp) = logprob {
        ev["logprob"] = logprob_json(lp);
    }
    ev
}

/// A `done` event; `logprobs` (one per generated token) when the generation asked for them.
pub(crate) fn done_event(g: &Generation, with_logprobs: bool) -> Value {
    let mut ev = finished(g);
    if with_logprobs {
        ev["logprobs"] = g.logprobs.iter().map(logprob_json).collect();
    }
    ev
}

fn finished(g: &Generation) -> Value {
    let t = &g.timings;
    json!({
        "kind": "done",
        "text": g.text,
        "promptIds": g.prompt_ids,
        "generatedIds": g.generated_ids,
        // woolly-core's names (`max_tokens`, `end_of_generation`, `stop_string`, `callback`):
        // StopReason serializes snake_case, as every front end reports it.
        "stopReason": g.stop_reason,
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
    input: &Prompt,
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
            send(cb, token_event(ev.text, ev.id, ev.index, ev.logprob));
        }
        true
    };
    // The params carry the request's cancel token: a cancel before the start fails at once, one
    // during the prompt or the generation stops it within a layer's work.
    let result = session.run(input, params, on_token);
    match result {
        Ok(g) => done_event(&g, params.logprobs.is_some()),
        Err(e) => to_event(&e),
    }
}

/// A model: empty until `load` succeeds, then shared by every generation on it.
#[napi]
pub struct NativeModel {
    pub(crate) inner: Arc<RwLock<Option<Arc<Loaded>>>>,
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

    pub(crate) fn loaded(&self) -> napi::Result<Arc<Loaded>> {
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
    pub(crate) fn begin_load(
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
        input: Prompt,
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
        self.start(Prompt::Text(prompt), options, stream, on_event)
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
            Prompt::Messages(chat_messages(messages)),
            options,
            stream,
            on_event,
        )
    }

    /// An OpenAI-shaped request whose JSON body is `body` (a chat completion when `chat`, else
    /// a completion), planned and run on a session of the pool on a new thread. Events:
    /// `planned`, `chunk` (when the body streams), then `done` (with `response`) or `error`.
    #[napi(catch_unwind)]
    pub fn create_completion(
        &self,
        chat: bool,
        body: String,
        on_event: EventFn,
    ) -> napi::Result<NativeTask> {
        let loaded = self.loaded()?;
        let token = CancelToken::new();
        let cancel = token.clone();
        spawn_worker("woolly-openai", Arc::new(on_event), move |cb| {
            crate::openai::run_on_session(&loaded.pool, chat, &body, &cancel, cb)
        })?;
        Ok(NativeTask { token })
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
