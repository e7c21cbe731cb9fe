//! OpenAI-shaped requests (`create_chat_completion`, `create_completion`): the JSON body that
//! `woolly/__init__.py` builds from the call's arguments goes to woolly-core's
//! `openai::{ChatCompletionRequest, CompletionRequest}` untouched; the planning (chat template,
//! tokenizing, compiling a constraint) and the generation run on a worker thread (or in an
//! engine), and the response object or the stream chunks come back through a channel that
//! Python polls with the GIL released, converted from JSON values to plain Python objects.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString};
use serde_json::Value;
use woolly_core::engine::{Engine, Event as EngineEvent};
use woolly_core::generate::{CancelToken, SessionPool};
use woolly_core::model::Model;
use woolly_core::openai::{self, Plan};
use woolly_core::Error;

use crate::errors;

/// What a request reports, in order: `Planned` once its body is planned (and, in an engine,
/// queued), then its stream chunks, then its end (the response object; `Null` when streaming).
/// In an engine the first chunks may come before `Planned` (they come from another thread).
enum Event {
    Planned,
    Chunk(Value),
    Done(Result<Value, Error>),
}

/// The plan of `body` (a chat completion when `chat`, else a completion) on `model`, with a
/// context of `context` tokens; generation stops when `cancel` is cancelled.
fn plan(
    chat: bool,
    body: &str,
    model: &Model,
    context: usize,
    cancel: &CancelToken,
) -> Result<Plan, Error> {
    let kind = if chat {
        openai::Kind::Chat
    } else {
        openai::Kind::Completion
    };
    let mut plan = openai::plan_json(kind, body.as_bytes(), model, None, context)?;
    plan.params.cancel = Some(cancel.clone());
    Ok(plan)
}

/// A JSON value as the plain Python object `json.loads` would give.
fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(fields) => {
            let dict = PyDict::new(py);
            for (k, item) in fields {
                dict.set_item(k, to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// An OpenAI-shaped request in flight. Dropping it cancels the generation.
#[pyclass(frozen, module = "woolly._woolly")]
pub struct CompletionJob {
    events: Mutex<Receiver<Event>>,
    cancel: CancelToken,
}

impl CompletionJob {
    fn new() -> (CompletionJob, Sender<Event>) {
        let (tx, rx) = channel();
        let job = CompletionJob {
            events: Mutex::new(rx),
            cancel: CancelToken::new(),
        };
        (job, tx)
    }

    /// Runs `work` on a new thread; its result is the job's end.
    fn spawn(
        name: &str,
        tx: Sender<Event>,
        work: impl FnOnce(&Sender<Event>) -> Result<Option<Value>, Error> + Send + 'static,
    ) {
        let tx_fail = tx.clone();
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                // `None`: the end comes from elsewhere (the engine's sink).
                if let Some(end) = work(&tx).transpose() {
                    let _ = tx.send(Event::Done(end));
                }
            });
        if let Err(e) = spawned {
            let _ = tx_fail.send(Event::Done(Err(Error::Internal(format!(
                "cannot start a thread: {e}"
            )))));
        }
    }

    /// Plans `body` and runs it on a session of `pool`, on a new thread (the session's context
    /// is the plan's).
    pub fn on_session(pool: Arc<SessionPool>, chat: bool, body: String) -> CompletionJob {
        let (job, tx) = CompletionJob::new();
        let cancel = job.cancel.clone();
        CompletionJob::spawn("woolly-openai", tx, move |tx| {
            let mut session = pool.acquire()?;
            let context = session.context_size();
            let plan = plan(chat, &body, pool.model(), context, &cancel)?;
            // The session's own check, before `Planned`: a stream's call raises it.
            let (prompt, requested) = (plan.prompt_ids.len(), plan.params.max_tokens);
            if prompt.saturating_add(requested) > context {
                return Err(Error::ContextOverflow {
                    prompt,
                    requested,
                    context,
                });
            }
            let _ = tx.send(Event::Planned);
            // When nobody listens any more, generation stops.
            let out = openai::run_session(&mut session, &plan, |chunk| {
                tx.send(Event::Chunk(chunk)).is_ok()
            })?;
            Ok(Some(out))
        });
        job
    }

    /// Plans `body` on a new thread and submits it to `engine`, whose sink answers it.
    pub fn on_engine(engine: Arc<Engine>, chat: bool, body: String) -> CompletionJob {
        let (job, tx) = CompletionJob::new();
        let cancel = job.cancel.clone();
        CompletionJob::spawn("woolly-openai-plan", tx, move |tx| {
            let plan = plan(chat, &body, engine.model(), engine.context_size(), &cancel)?;
            let stream = plan.stream;
            let (request, mut responder) = plan.into_engine();
            let sink_tx = tx.clone();
            // On the engine's thread (a send fails only once the job is gone, which has
            // cancelled the request).
            let sink = Box::new(move |ev: EngineEvent| {
                let end = !matches!(ev, EngineEvent::Token { .. });
                let _ = match responder.event(ev) {
                    Ok(mut values) if end && !stream => {
                        sink_tx.send(Event::Done(Ok(values.pop().unwrap_or(Value::Null))))
                    }
                    Ok(values) => {
                        for v in values {
                            let _ = sink_tx.send(Event::Chunk(v));
                        }
                        if end {
                            sink_tx.send(Event::Done(Ok(Value::Null)))
                        } else {
                            Ok(())
                        }
                    }
                    Err(e) => sink_tx.send(Event::Done(Err(e))),
                };
            });
            engine.submit_with(request, sink)?;
            let _ = tx.send(Event::Planned);
            Ok(None)
        });
        job
    }
}

#[pymethods]
impl CompletionJob {
    /// Waits up to `timeout` seconds (with the GIL released) for the next event: `(0, None)`
    /// nothing yet, `(1, None)` planned (and queued), `(2, chunk)` a stream chunk, `(3,
    /// response)` the end (the response object, or None when streaming); after the end
    /// `(4, None)`. A failed request raises its exception instead.
    fn poll(&self, py: Python<'_>, timeout: f64) -> PyResult<(u8, Option<Py<PyAny>>)> {
        let timeout = Duration::from_secs_f64(timeout.clamp(0.0, 3600.0));
        let got = py.detach(|| {
            let rx = self.events.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv_timeout(timeout)
        });
        match got {
            Ok(Event::Planned) => Ok((1, None)),
            Ok(Event::Chunk(c)) => Ok((2, Some(to_py(py, &c)?.unbind()))),
            Ok(Event::Done(Ok(Value::Null))) => Ok((3, None)),
            Ok(Event::Done(Ok(v))) => Ok((3, Some(to_py(py, &v)?.unbind()))),
            Ok(Event::Done(Err(e))) => Err(errors::to_py(py, &e)),
            Err(RecvTimeoutError::Timeout) => Ok((0, None)),
            Err(RecvTimeoutError::Disconnected) => Ok((4, None)),
        }
    }

    /// Asks the request to stop (also during its prompt); it then ends with CancelledError.
    fn cancel(&self) {
        self.cancel.cancel();
    }
}

impl Drop for CompletionJob {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
