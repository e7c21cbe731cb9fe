//! A snapshot of a registry: its metric families of labelled series at one moment, with the
//! live models' counters and the GPU report, and their JSON form (`prometheus.rs` renders the
//! same figures as text).

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::types::HistogramSnapshot;
use super::MetricsSnapshot;
use crate::platform::gpu::GpuReport;

/// The kind of a metric family, as the `# TYPE` line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

impl MetricType {
    pub fn name(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// One series' value at one moment.
#[derive(Debug, Clone, PartialEq)]
pub enum SampleValue {
    Counter(u64),
    Gauge(f64),
    Histogram(HistogramSnapshot),
}

/// One labelled series of a family.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSnapshot {
    pub labels: Vec<(String, String)>,
    pub value: SampleValue,
}

/// A metric family: its name, help, type and series.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilySnapshot {
    pub name: String,
    pub help: String,
    pub kind: MetricType,
    pub series: Vec<SeriesSnapshot>,
}

impl FamilySnapshot {
    /// The series whose labels include every pair of `labels`.
    pub fn find(&self, labels: &[(&str, &str)]) -> Option<&SeriesSnapshot> {
        self.series.iter().find(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
    }
}

/// Every family of a registry at one moment, with the models' own snapshots and the GPU
/// report; both renderings come from the same figures.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Sorted by name.
    pub families: Vec<FamilySnapshot>,
    /// Each live model's label and counters (the global registry only).
    pub models: Vec<(String, MetricsSnapshot)>,
    /// The GPUs (the global registry only).
    pub gpu: Option<GpuReport>,
    /// When the snapshot was taken, in milliseconds since the Unix epoch.
    pub time_unix_ms: u64,
}

impl Snapshot {
    /// The family called `name`.
    pub fn family(&self, name: &str) -> Option<&FamilySnapshot> {
        self.families.iter().find(|f| f.name == name)
    }

    /// The same figures as JSON: `metrics` (each family's type, help and series), `models`
    /// (each live model's [`MetricsSnapshot`] with its `model` label), `gpu` (the
    /// [`GpuReport`], or null) and `time_unix_ms`.
    pub fn to_json(&self) -> Value {
        let mut metrics = Map::new();
        for f in &self.families {
            let series: Vec<Value> = f
                .series
                .iter()
                .map(|s| {
                    let labels: Map<String, Value> = s
                        .labels
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect();
                    match &s.value {
                        SampleValue::Counter(n) => json!({ "labels": labels, "value": n }),
                        SampleValue::Gauge(v) => json!({ "labels": labels, "value": finite(*v) }),
                        SampleValue::Histogram(h) => json!({
                            "labels": labels,
                            "count": h.count,
                            "sum": finite(h.sum),
                            "buckets": h.buckets,
                        }),
                    }
                })
                .collect();
            metrics.insert(
                f.name.clone(),
                json!({ "type": f.kind.name(), "help": f.help, "series": series }),
            );
        }
        let models: Vec<Value> = self
            .models
            .iter()
            .map(|(label, s)| {
                let mut v = s.to_json();
                v["model"] = Value::String(label.clone());
                v
            })
            .collect();
        json!({
            "time_unix_ms": self.time_unix_ms,
            "metrics": metrics,
            "models": models,
            "gpu": self.gpu.as_ref().map(GpuReport::to_json),
        })
    }
}

/// JSON has no NaN or infinity: those become null.
fn finite(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        Value::Null
    }
}
