//! `woolly._woolly`: the native half of the Python package. It stays thin: Python's option
//! bags become core params here, the work runs off the caller's thread with the GIL released,
//! and `woolly/__init__.py` gives it its Pythonic shape (iterators, asyncio, defaults).

mod errors;

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;
use woolly_core::generate::{
    CancelToken, ChatMessage, GenerateParams, Generation, SamplingParams, SessionParams,
    SessionPool,
};
use woolly_core::model::{Model, ModelParams, Preload};
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
        ..Default::default()
    })
}

/// A loaded model and the sessions it keeps for reuse.
#[pyclass(frozen, module = "woolly._woolly")]
struct NativeModel {
    pool: Arc<SessionPool>,
}

#[pymethods]
impl NativeModel {
    #[new]
    #[pyo3(signature = (path, preload, mlock, repack, threads, thread_policy, context_size, progress))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: Option<PathBuf>,
        preload: &str,
        mlock: bool,
        repack: bool,
        threads: usize,
        thread_policy: &str,
        context_size: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let preload = match preload {
            "lazy" => Preload::Lazy,
            "full" => Preload::Prefault,
            other => {
                return Err(invalid(
                    py,
                    format!("preload must be 'lazy' or 'full', not {other:?}"),
                ))
            }
        };
        let sp = session_params(py, threads, thread_policy, context_size)?;
        // The progress callback runs Python (with the GIL) on the loading thread; an exception
        // from it, or Ctrl-C, cancels the load and is raised afterwards.
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
        let params = ModelParams {
            progress: Some(report),
            preload,
            mlock,
            repack,
        };
        let loaded = py.detach(|| {
            Model::load(path.as_deref(), &params)
                .and_then(|m| SessionPool::new(m, sp, MAX_IDLE_SESSIONS))
        });
        if let Some(e) = raised.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        Ok(NativeModel {
            pool: Arc::new(loaded.py_err(py)?),
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

    /// Starts a generation on a worker thread; the returned job streams its pieces.
    #[pyo3(signature = (prompt, messages, max_tokens, temperature, top_k, top_p, min_p,
        repeat_penalty, frequency_penalty, presence_penalty, penalty_last_n, seed, stop, ignore_eos))]
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
    ) -> PyResult<Job> {
        let sampling = SamplingParams {
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
        };
        // Bad parameters fail here, in the caller's thread, before anything starts.
        sampling.validate().py_err(py)?;
        let params = GenerateParams {
            max_tokens,
            sampling,
            stop,
            ignore_eos,
            ..Default::default()
        };
        let input = match (prompt, messages) {
            (Some(p), None) => Input::Text(p),
            (None, Some(m)) if !m.is_empty() => {
                Input::Chat(m.into_iter().map(|(r, c)| ChatMessage::new(r, c)).collect())
            }
            (None, Some(_)) => return Err(invalid(py, "messages is empty".into())),
            _ => return Err(invalid(py, "give a prompt or messages, not both".into())),
        };
        Ok(Job::spawn(self.pool.clone(), input, params))
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

/// This machine's hardware as Woolly detected it, as JSON.
#[pyfunction]
fn hardware_json() -> String {
    woolly_core::tune::Hardware::detect().to_json().to_string()
}

/// The diagnostics report without a model, as JSON.
#[pyfunction]
fn diagnostics_json() -> String {
    woolly_core::diagnostics::report(None).to_string()
}

#[pymodule]
fn _woolly(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", woolly_core::VERSION)?;
    m.add_class::<NativeModel>()?;
    m.add_class::<Job>()?;
    m.add_function(wrap_pyfunction!(hardware_json, m)?)?;
    m.add_function(wrap_pyfunction!(diagnostics_json, m)?)?;
    Ok(())
}
