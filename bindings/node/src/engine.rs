//! `NativeEngine`: woolly-core's continuous-batching engine on a model's weights.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use napi_derive::napi;
use serde_json::{json, Value};
use woolly_core::engine::{Engine, Event as EngineEvent, Prompt, Request};
use woolly_core::generate::CancelToken;

use crate::error::{js_error, to_event, to_js};
use crate::model::{done_event, token_event, NativeModel};
use crate::options::{
    self, chat_messages, EngineOptions, GenerateOptions, Message, RequestOptions,
};
use crate::task::{send, EventFn, NativeTask, WORKER_STACK};

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

    /// Runs `job` on the preparer's thread, after those submitted before it.
    fn prepare(&self, job: PrepJob) -> napi::Result<()> {
        let preparer = self.preparer.lock().unwrap_or_else(|e| e.into_inner());
        let sent = match preparer.as_ref() {
            Some(p) => p.jobs.send(job).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(js_error(
                "WOOLLY_ERR_INVALID_ARGUMENT",
                "the engine is closed",
            ))
        }
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
        let with_logprobs = request.params.logprobs.is_some();
        let sink = Box::new(move |ev: EngineEvent| match ev {
            EngineEvent::Token {
                id,
                text,
                index,
                logprob,
            } => {
                if stream && !text.is_empty() {
                    send(&on_event, token_event(&text, id, index, logprob.as_ref()));
                }
            }
            EngineEvent::Done(g) => send(&on_event, done_event(&g, with_logprobs)),
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
        self.prepare(prepare)?;
        Ok(NativeTask { token })
    }

    /// An OpenAI-shaped request whose JSON body is `body` (a chat completion when `chat`, else
    /// a completion): planned off the JavaScript thread (in submission order), then queued.
    /// Events: `planned` (once queued; the first `chunk`s may come before it), `chunk` (when
    /// the body streams), then `done` (with `response`) or `error` (also for a refusal: a bad
    /// body, a full queue, a context overflow).
    #[napi(catch_unwind)]
    pub fn create_completion(
        &self,
        chat: bool,
        body: String,
        on_event: EventFn,
    ) -> napi::Result<NativeTask> {
        let engine = self.engine()?;
        let token = CancelToken::new();
        let cancel = token.clone();
        let on_event = Arc::new(on_event);
        self.prepare(Box::new(move || {
            crate::openai::submit_to_engine(&engine, chat, &body, &cancel, on_event)
        }))?;
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
        let p = options::priority(priority.as_deref()).map_err(|e| to_js(&e))?;
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
