//! A loaded model (`NativeModel`): loading with a progress callback, its facts and reports,
//! and the generations it starts on its session pool.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use woolly_core::generate::SessionPool;
use woolly_core::model::{Model, ModelParams, ProgressFn};
use woolly_core::Error;

use crate::errors::IntoPy;
use crate::openai::CompletionJob;
use crate::options::{self, GenerateOptions, LoadOptions};
use crate::session::Job;

/// How many idle sessions (each with its KV cache) a model keeps for reuse.
pub const MAX_IDLE_SESSIONS: usize = 4;

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
pub fn load_with_progress<T: Send>(
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
pub struct NativeModel {
    pub pool: Arc<SessionPool>,
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
        crate::tokenize::tokenize(py, self.pool.model(), text, add_special, parse_special)
    }

    /// Text of `ids`.
    fn detokenize(&self, py: Python<'_>, ids: Vec<i64>) -> PyResult<String> {
        crate::tokenize::detokenize(py, self.pool.model(), &ids)
    }

    /// The prompt text that `messages` become under the model's chat template.
    fn apply_chat_template(
        &self,
        py: Python<'_>,
        messages: Vec<(String, String)>,
    ) -> PyResult<String> {
        crate::tokenize::apply_chat_template(py, self.pool.model(), messages)
    }

    /// Facts about the model, as JSON.
    fn info_json(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.pool.model().info().py_err(py)?.to_string())
    }

    /// The model's counters, as JSON.
    fn metrics_json(&self) -> String {
        crate::metrics::model_metrics_json(self.pool.model())
    }

    /// The diagnostics report with this model, as JSON.
    fn diagnostics_json(&self) -> String {
        crate::metrics::model_diagnostics_json(self.pool.model())
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
    #[pyo3(signature = (prompt, messages, options))]
    fn start(
        &self,
        py: Python<'_>,
        prompt: Option<String>,
        messages: Option<Vec<(String, String)>>,
        options: PyRef<'_, GenerateOptions>,
    ) -> PyResult<Job> {
        let input = options::input(py, prompt, messages)?;
        Ok(Job::spawn(self.pool.clone(), input, options.params.clone()))
    }

    /// Starts an OpenAI-shaped request whose JSON body is `body` (a chat completion when
    /// `chat`, else a completion): planned and run on a session of the pool, on a new thread.
    fn create_completion(&self, chat: bool, body: String) -> CompletionJob {
        CompletionJob::on_session(self.pool.clone(), chat, body)
    }
}
