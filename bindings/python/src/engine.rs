//! A model's engine (continuous batching, woolly-core's `Engine`): requests from any thread
//! share its forward passes.

use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use woolly_core::engine::{Engine, Event as EngineEvent, Request};
use woolly_core::generate::CancelToken;

use crate::errors::{self, invalid, IntoPy};
use crate::model::NativeModel;
use crate::openai::CompletionJob;
use crate::options::{self, GenerateOptions};
use crate::session::{Event, Job};

/// An engine on one model. Its requests are `Job`s, as the model's generations are: their
/// events come through a channel (the engine's worker thread never takes the GIL).
#[pyclass(frozen, module = "woolly._woolly")]
pub struct NativeEngine {
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

#[pymethods]
impl NativeEngine {
    /// Each None is woolly-core's default; `threads` None (or 0) is the core's thread policy.
    #[new]
    #[pyo3(signature = (model, max_batch_size=None, max_concurrent=None, queue_capacity=None,
        prefill_chunk=None, max_latency_ms=None, context_size=None, kv_precision=None,
        threads=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: PyRef<'_, NativeModel>,
        max_batch_size: Option<usize>,
        max_concurrent: Option<usize>,
        queue_capacity: Option<usize>,
        prefill_chunk: Option<usize>,
        max_latency_ms: Option<f64>,
        context_size: Option<usize>,
        kv_precision: Option<&str>,
        threads: Option<usize>,
    ) -> PyResult<Self> {
        let params = options::engine_params(
            py,
            max_batch_size,
            max_concurrent,
            queue_capacity,
            prefill_chunk,
            max_latency_ms,
            context_size,
            kv_precision,
            threads,
        )?;
        let model = model.pool.model().clone();
        let engine = py.detach(|| Engine::new(model, params)).py_err(py)?;
        Ok(NativeEngine {
            engine: Mutex::new(Some(Arc::new(engine))),
        })
    }

    /// Submits a request; returns its id and the job that streams its pieces. Fails at once
    /// (nothing queued) when the queue is full, the deadline has passed, or the request is bad.
    #[pyo3(signature = (prompt, messages, priority, latency_sensitive, deadline_s, options))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        prompt: Option<String>,
        messages: Option<Vec<(String, String)>>,
        priority: Option<&str>,
        latency_sensitive: bool,
        deadline_s: Option<f64>,
        options: PyRef<'_, GenerateOptions>,
    ) -> PyResult<(u64, Job)> {
        let prompt = options::input(py, prompt, messages)?;
        let priority = options::priority(py, priority)?;
        let deadline = options::deadline(py, deadline_s)?;
        let cancel = CancelToken::new();
        let (tx, rx) = channel();
        let mut params = options.params.clone();
        params.cancel = Some(cancel.clone());
        let job = Job::new(rx, cancel, &params);
        let request = Request {
            prompt,
            params,
            priority,
            latency_sensitive,
            deadline,
        };
        let engine = self.engine(py)?;
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
        Ok((id, job))
    }

    /// Starts an OpenAI-shaped request whose JSON body is `body` (a chat completion when
    /// `chat`, else a completion): planned on a new thread, then submitted. A refusal (full
    /// queue, deadline passed, context overflow) is the job's error.
    fn create_completion(
        &self,
        py: Python<'_>,
        chat: bool,
        body: String,
    ) -> PyResult<CompletionJob> {
        Ok(CompletionJob::on_engine(self.engine(py)?, chat, body))
    }

    /// The engine's counters and state, as JSON.
    fn stats_json(&self, py: Python<'_>) -> PyResult<String> {
        let stats = self.engine(py)?.stats();
        serde_json::to_string(&stats).map_err(|e| errors::internal(py, e))
    }

    /// Seconds a request of `priority` submitted now would wait to start (an estimate).
    #[pyo3(signature = (priority=None))]
    fn estimated_wait(&self, py: Python<'_>, priority: Option<&str>) -> PyResult<f64> {
        let priority = options::priority(py, priority)?;
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
