//! Metrics: the process-wide registry (Prometheus text and JSON) and a model's counters.

use std::ffi::c_char;

use crate::boundary::{guard, required, write_string};
use crate::model::woolly_model;
use crate::status::woolly_status;

/// Every metric Woolly keeps (requests, tokens, latencies and TTFT histograms per model, engine
/// queue depth and batch sizes, RSS, thermal throttling, worker threads, GPU figures when an
/// NVIDIA driver is present) in the Prometheus text exposition format 0.0.4, written like
/// `woolly_detokenize` writes text. Woolly opens no port: serve it from the host application.
///
/// # Safety
/// `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_metrics_prometheus(
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        let text = woolly_core::metrics::Registry::global().render_prometheus();
        write_string(&text, buf, capacity, len)
    })
}

/// The same metrics as a JSON snapshot, written like `woolly_detokenize` writes text.
///
/// # Safety
/// `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_metrics_json(
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        let v = woolly_core::metrics::Registry::global().to_json();
        write_string(&v.to_string(), buf, capacity, len)
    })
}

/// The model's counters (generations, failures, cancellations, tokens, times, rates) as JSON,
/// written like [`woolly_detokenize`] writes text.
///
/// # Safety
/// `model` a live handle; `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_metrics_json(
    model: *const woolly_model,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        let m = required(model, "model")?;
        write_string(
            &m.model.metrics().snapshot().to_json().to_string(),
            buf,
            capacity,
            len,
        )
    })
}
