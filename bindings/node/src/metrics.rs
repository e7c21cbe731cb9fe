//! Woolly's metrics, process-wide (a model's own counters are `NativeModel.metrics`).

use napi_derive::napi;
use serde_json::Value;
use woolly_core::metrics::Registry;

/// Every metric Woolly keeps, in the Prometheus text exposition format 0.0.4.
#[napi(catch_unwind)]
pub fn metrics_prometheus() -> String {
    Registry::global().render_prometheus()
}

/// The same metrics as a JSON snapshot (`time_unix_ms`, `metrics`, `models`, `gpu`).
#[napi(catch_unwind)]
pub fn metrics() -> Value {
    Registry::global().to_json()
}

/// The `Content-Type` of `metricsPrometheus()`.
#[napi(catch_unwind)]
pub fn prometheus_content_type() -> String {
    woolly_core::metrics::PROMETHEUS_CONTENT_TYPE.to_string()
}
