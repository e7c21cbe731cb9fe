//! Metrics (the process-wide registry and a model's counters), diagnostics and the doctor.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use woolly_core::metrics::Registry;
use woolly_core::model::Model;

use crate::errors;

/// A model's counters, as JSON.
pub fn model_metrics_json(model: &Model) -> String {
    model.metrics().snapshot().to_json().to_string()
}

/// The diagnostics report with `model`, as JSON.
pub fn model_diagnostics_json(model: &Model) -> String {
    woolly_core::diagnostics::report(Some(model)).to_string()
}

/// This machine's hardware as Woolly detected it, as JSON.
#[pyfunction]
pub fn hardware_json() -> String {
    woolly_core::platform::Hardware::detect()
        .to_json()
        .to_string()
}

/// The CUDA devices as the driver reports them now (or why there are none), as JSON.
#[pyfunction]
pub fn cuda_devices_json() -> String {
    woolly_core::platform::cuda::report().to_json().to_string()
}

/// The diagnostics report without a model, as JSON.
#[pyfunction]
pub fn diagnostics_json() -> String {
    woolly_core::diagnostics::report(None).to_string()
}

/// Every metric Woolly keeps, in the Prometheus text exposition format 0.0.4.
#[pyfunction]
pub fn metrics_prometheus(py: Python<'_>) -> String {
    // The snapshot reads /proc and asks NVML about GPUs: without the GIL.
    py.detach(|| Registry::global().render_prometheus())
}

/// The same metrics as a JSON snapshot.
#[pyfunction]
pub fn metrics_json(py: Python<'_>) -> String {
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
pub struct DoctorJob {
    events: Mutex<Receiver<DoctorEvent>>,
}

/// Starts the doctor on a new thread.
#[pyfunction]
#[pyo3(signature = (model, measure, progress))]
pub fn doctor_start(
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
        .map_err(|e| errors::internal(py, format!("cannot start the doctor's thread: {e}")))?;
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
            Err(RecvTimeoutError::Disconnected) => Err(errors::internal(
                py,
                "the doctor's thread ended without a report",
            )),
        }
    }
}
