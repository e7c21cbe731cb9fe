//! Counters, gauges and histograms that Woolly keeps about its own work, readable from every
//! front end as JSON and as Prometheus text.
//!
//! Each model owns a [`ModelMetrics`]; every session and engine request on it records its
//! generations there ([`GenerationFigures`]: counts, tokens, and the latency histograms). The
//! process-wide [`Registry::global`] exports every live model's figures (labelled
//! `model="..."`, see [`ModelMetrics::set_label`]) together with what the engine, the power
//! module and the system report: engine queue depth and batch sizes
//! ([`Registry::observe_engine`] with [`EngineFigures`]), thermal throttling and worker threads
//! ([`record_throttle`], [`set_worker_threads`]), resident memory, and the GPU through NVML
//! when a driver is present ([`crate::platform::gpu`]). [`Snapshot::to_prometheus`] renders
//! the text exposition format 0.0.4, [`Snapshot::to_json`] the same figures as JSON. The
//! library opens no port; a host application serves the text itself (see
//! `examples/metrics_server.rs`).
//!
//! Counters only grow; a snapshot is a consistent-enough copy for monitoring (each value is
//! read atomically, not all of them together).
//!
//! This module sits below the model, the generation and the engine: it takes their figures as
//! plain numbers ([`GenerationFigures`], [`EngineFigures`]), which those modules fill from
//! their own types.

mod collect;
mod engines;
mod prometheus;
mod registry;
mod snapshot;
mod types;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use serde::Serialize;

use crate::error::{Error, ErrorKind};

pub use engines::{observe_batch, observe_engine, EngineFigures};
pub use prometheus::CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE;
pub use registry::{record_throttle, set_cpu_temperature, set_worker_threads, Registry};
pub use snapshot::{FamilySnapshot, MetricType, SampleValue, SeriesSnapshot, Snapshot};
pub use types::{
    Bucket, Counter, Gauge, Histogram, HistogramSnapshot, BATCH_BUCKETS, DURATION_BUCKETS,
    LATENCY_BUCKETS, RATE_BUCKETS,
};

/// The figures of one finished generation that [`ModelMetrics::record`] takes: token counts,
/// and times in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerationFigures {
    pub prompt_tokens: usize,
    /// Prompt tokens taken from a cache instead of computed.
    pub cached_tokens: usize,
    pub prompt_ms: f64,
    pub generated_tokens: usize,
    pub gen_ms: f64,
    /// Generated tokens per second.
    pub gen_tok_s: f64,
    /// To the first generated token.
    pub ttft_ms: f64,
    /// Waiting in an engine's queue before it started (0 for a session).
    pub queue_ms: f64,
}

/// Live counters and histograms of one model. Creating one makes it visible to
/// [`Registry::global`] until it is dropped.
#[derive(Debug)]
pub struct ModelMetrics {
    inner: Arc<Series>,
}

/// The figures behind a [`ModelMetrics`], shared with the process-wide list of live models.
#[derive(Debug)]
pub(crate) struct Series {
    /// Order of creation in this process (1, 2, ...).
    pub(crate) id: u64,
    label: Mutex<Option<String>>,
    generations: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
    prompt_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    prompt_us: AtomicU64,
    generation_us: AtomicU64,
    ttft_us: AtomicU64,
    ttft_count: AtomicU64,
    queue_us: AtomicU64,
    /// Bytes of weights on a GPU, and the layers that run there (set at load).
    pub(crate) device_weight_bytes: AtomicU64,
    pub(crate) gpu_layers: AtomicU64,
    /// Sequences that ran on the CPU because their KV cache did not fit on the GPU.
    pub(crate) gpu_oom_fallbacks: AtomicU64,
    /// What its GPUs did (set at load when it uses one).
    gpu_activity: ActivitySource,
    /// Seconds: to the first token (generations that produced one), reading the prompt,
    /// generating, waiting in an engine's queue (0 for sessions).
    pub(crate) ttft: Histogram,
    pub(crate) prompt: Histogram,
    pub(crate) generation: Histogram,
    pub(crate) queue: Histogram,
    /// Generated tokens per second of each generation that produced at least two.
    pub(crate) gen_rate: Histogram,
}

/// What the GPUs did for a model's forward passes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct GpuActivity {
    /// Device time of its passes, in seconds (from a pass's first launch to its results).
    pub busy_seconds: f64,
    /// Passes captured as CUDA graphs, and passes that replayed one (decoding).
    pub graph_captures: u64,
    pub graph_replays: u64,
}

/// Where a model's [`GpuActivity`] comes from (its devices' counters).
#[derive(Default)]
struct ActivitySource(Mutex<Option<Box<dyn Fn() -> GpuActivity + Send + Sync>>>);

impl std::fmt::Debug for ActivitySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActivitySource")
    }
}

impl ActivitySource {
    fn get(&self) -> GpuActivity {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref().map(|f| f()).unwrap_or_default()
    }
}

/// Every live model's figures (weak: a dropped model leaves the list).
fn live() -> &'static Mutex<Vec<Weak<Series>>> {
    static LIVE: OnceLock<Mutex<Vec<Weak<Series>>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

/// The figures of every model alive now, oldest first.
pub(crate) fn live_models() -> Vec<Arc<Series>> {
    let mut l = live().lock().unwrap_or_else(|e| e.into_inner());
    l.retain(|w| w.strong_count() > 0);
    l.iter().filter_map(Weak::upgrade).collect()
}

impl Default for ModelMetrics {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let inner = Arc::new(Series {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            label: Mutex::new(None),
            generations: Default::default(),
            failed: Default::default(),
            cancelled: Default::default(),
            prompt_tokens: Default::default(),
            cached_tokens: Default::default(),
            generated_tokens: Default::default(),
            prompt_us: Default::default(),
            generation_us: Default::default(),
            ttft_us: Default::default(),
            ttft_count: Default::default(),
            queue_us: Default::default(),
            device_weight_bytes: Default::default(),
            gpu_layers: Default::default(),
            gpu_oom_fallbacks: Default::default(),
            gpu_activity: ActivitySource::default(),
            ttft: Histogram::new(LATENCY_BUCKETS),
            prompt: Histogram::new(LATENCY_BUCKETS),
            generation: Histogram::new(DURATION_BUCKETS),
            queue: Histogram::new(LATENCY_BUCKETS),
            gen_rate: Histogram::new(RATE_BUCKETS),
        });
        let mut l = live().lock().unwrap_or_else(|e| e.into_inner());
        l.retain(|w| w.strong_count() > 0);
        l.push(Arc::downgrade(&inner));
        drop(l);
        ModelMetrics { inner }
    }
}

/// The histograms of one model at one moment (seconds, and tokens per second).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelHistograms {
    pub ttft_seconds: HistogramSnapshot,
    pub prompt_seconds: HistogramSnapshot,
    pub generation_seconds: HistogramSnapshot,
    pub queue_seconds: HistogramSnapshot,
    pub generation_tok_s: HistogramSnapshot,
}

/// A copy of [`ModelMetrics`] at one moment, with derived rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MetricsSnapshot {
    /// Generations that finished (any stop reason).
    pub generations: u64,
    /// Generations that ended in an error other than cancellation.
    pub failed: u64,
    /// Generations cancelled by the caller.
    pub cancelled: u64,
    /// Prompt tokens, of which `cached_tokens` came from a session's cache.
    pub prompt_tokens: u64,
    pub cached_tokens: u64,
    pub generated_tokens: u64,
    /// Time spent on prompts and on generating, in milliseconds.
    pub prompt_ms: f64,
    pub generation_ms: f64,
    /// Mean time to first token over the generations that produced one.
    pub mean_ttft_ms: f64,
    /// Mean time engine requests waited before they started (0 for sessions) over all
    /// generations.
    pub mean_queue_ms: f64,
    /// Computed prompt tokens per second of prompt time, and generated tokens per second.
    pub prompt_tok_s: f64,
    pub generation_tok_s: f64,
}

fn us(ms: f64) -> u64 {
    (ms.max(0.0) * 1e3) as u64
}

impl ModelMetrics {
    /// Records a finished generation: its counts, and its times in the histograms.
    pub fn record(&self, g: impl Into<GenerationFigures>) {
        let t = &g.into();
        let m = &*self.inner;
        m.prompt.observe(t.prompt_ms.max(0.0) / 1e3);
        m.generation.observe(t.gen_ms.max(0.0) / 1e3);
        m.queue.observe(t.queue_ms.max(0.0) / 1e3);
        if t.generated_tokens > 0 {
            m.ttft.observe(t.ttft_ms.max(0.0) / 1e3);
        }
        if t.generated_tokens > 1 && t.gen_tok_s.is_finite() && t.gen_tok_s > 0.0 {
            m.gen_rate.observe(t.gen_tok_s);
        }
        m.generations.fetch_add(1, Ordering::Relaxed);
        m.prompt_tokens
            .fetch_add(t.prompt_tokens as u64, Ordering::Relaxed);
        m.cached_tokens
            .fetch_add(t.cached_tokens as u64, Ordering::Relaxed);
        m.generated_tokens
            .fetch_add(t.generated_tokens as u64, Ordering::Relaxed);
        m.prompt_us.fetch_add(us(t.prompt_ms), Ordering::Relaxed);
        m.queue_us.fetch_add(us(t.queue_ms), Ordering::Relaxed);
        m.generation_us.fetch_add(us(t.gen_ms), Ordering::Relaxed);
        if t.generated_tokens > 0 {
            m.ttft_us.fetch_add(us(t.ttft_ms), Ordering::Relaxed);
            m.ttft_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a generation that failed with `e`.
    pub fn record_error(&self, e: &Error) {
        if e.kind() == ErrorKind::Cancelled {
            self.inner.cancelled.fetch_add(1, Ordering::Relaxed);
        } else {
            self.inner.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Names this model in exported metrics (the `model` label); by default `model-N`, N
    /// counting the models of this process from 1.
    pub fn set_label(&self, label: impl Into<String>) {
        *self.inner.label.lock().unwrap_or_else(|e| e.into_inner()) = Some(label.into());
    }

    /// Records where the model runs: `layers` layers and `weight_bytes` bytes of weights on a
    /// GPU (0 and 0 on the CPU alone); exported as `woolly_model_gpu_layers` and
    /// `woolly_model_device_memory_bytes`.
    pub fn set_device(&self, layers: usize, weight_bytes: usize) {
        let m = &*self.inner;
        m.gpu_layers.store(layers as u64, Ordering::Relaxed);
        m.device_weight_bytes
            .store(weight_bytes as u64, Ordering::Relaxed);
    }

    /// Makes `source` what this model's GPUs report (exported as
    /// `woolly_model_gpu_busy_microseconds_total` and `woolly_model_gpu_graph_passes_total`).
    pub fn set_gpu_activity(&self, source: impl Fn() -> GpuActivity + Send + Sync + 'static) {
        *self
            .inner
            .gpu_activity
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Box::new(source));
    }

    /// What this model's GPUs did so far (zeros on the CPU alone).
    pub fn gpu_activity(&self) -> GpuActivity {
        self.inner.gpu_activity.get()
    }

    /// Counts a sequence that runs on the CPU because its KV cache did not fit on the GPU
    /// (exported as `woolly_gpu_oom_fallbacks_total`).
    pub fn count_gpu_oom_fallback(&self) {
        self.inner.gpu_oom_fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Sequences of this model that ran on the CPU because their KV cache did not fit on the
    /// GPU (under [`DeviceOomPolicy::Cpu`](crate::policy::placement::DeviceOomPolicy::Cpu)).
    pub fn gpu_oom_fallbacks(&self) -> u64 {
        self.inner.gpu_oom_fallbacks.load(Ordering::Relaxed)
    }

    /// The `model` label of this model's exported metrics.
    pub fn label(&self) -> String {
        self.inner.label()
    }

    /// The histograms now.
    pub fn histograms(&self) -> ModelHistograms {
        self.inner.histograms()
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.inner.snapshot()
    }
}

impl Series {
    pub(crate) fn gpu_activity(&self) -> GpuActivity {
        self.gpu_activity.get()
    }

    pub(crate) fn label(&self) -> String {
        self.label
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| format!("model-{}", self.id))
    }

    pub(crate) fn histograms(&self) -> ModelHistograms {
        ModelHistograms {
            ttft_seconds: self.ttft.snapshot(),
            prompt_seconds: self.prompt.snapshot(),
            generation_seconds: self.generation.snapshot(),
            queue_seconds: self.queue.snapshot(),
            generation_tok_s: self.gen_rate.snapshot(),
        }
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let prompt_ms = get(&self.prompt_us) as f64 / 1e3;
        let generation_ms = get(&self.generation_us) as f64 / 1e3;
        let computed = get(&self.prompt_tokens).saturating_sub(get(&self.cached_tokens));
        let per_s = |n: u64, ms: f64| if ms > 0.0 { n as f64 * 1e3 / ms } else { 0.0 };
        let ttft_n = get(&self.ttft_count);
        MetricsSnapshot {
            generations: get(&self.generations),
            failed: get(&self.failed),
            cancelled: get(&self.cancelled),
            prompt_tokens: get(&self.prompt_tokens),
            cached_tokens: get(&self.cached_tokens),
            generated_tokens: get(&self.generated_tokens),
            prompt_ms,
            generation_ms,
            mean_ttft_ms: if ttft_n > 0 {
                get(&self.ttft_us) as f64 / 1e3 / ttft_n as f64
            } else {
                0.0
            },
            mean_queue_ms: match get(&self.generations) {
                0 => 0.0,
                n => get(&self.queue_us) as f64 / 1e3 / n as f64,
            },
            prompt_tok_s: per_s(computed, prompt_ms),
            generation_tok_s: per_s(get(&self.generated_tokens), generation_ms),
        }
    }
}

impl MetricsSnapshot {
    /// The snapshot as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generation(prompt: usize, cached: usize, gen: usize) -> GenerationFigures {
        GenerationFigures {
            prompt_tokens: prompt,
            cached_tokens: cached,
            prompt_ms: 100.0,
            generated_tokens: gen,
            gen_ms: 500.0,
            ttft_ms: 120.0,
            ..Default::default()
        }
    }

    #[test]
    fn counts_and_rates() {
        let m = ModelMetrics::default();
        m.record(generation(10, 0, 5));
        m.record(generation(30, 20, 0));
        m.record_error(&Error::Cancelled);
        m.record_error(&Error::InvalidArgument("x".into()));
        let s = m.snapshot();
        assert_eq!(s.generations, 2);
        assert_eq!((s.cancelled, s.failed), (1, 1));
        assert_eq!(
            (s.prompt_tokens, s.cached_tokens, s.generated_tokens),
            (40, 20, 5)
        );
        assert!((s.prompt_ms - 200.0).abs() < 1e-9);
        // 20 computed prompt tokens in 200 ms; 5 generated in 1000 ms.
        assert!((s.prompt_tok_s - 100.0).abs() < 1e-9);
        assert!((s.generation_tok_s - 5.0).abs() < 1e-9);
        // Only the generation that produced a token counts for TTFT.
        assert!((s.mean_ttft_ms - 120.0).abs() < 1e-9);
        assert_eq!(s.to_json()["generated_tokens"], 5);
        // Every finished generation is in the time histograms; TTFT only where a token came.
        let h = m.histograms();
        assert_eq!(h.prompt_seconds.count, 2);
        assert!((h.prompt_seconds.sum - 0.2).abs() < 1e-9);
        assert_eq!(h.generation_seconds.count, 2);
        assert_eq!(h.ttft_seconds.count, 1);
        assert_eq!(h.queue_seconds.count, 2);
        // 0.12 s is in the 0.25 bucket, not the 0.1 one.
        let b = &h.ttft_seconds.buckets;
        let at = |le: f64| b.iter().find(|x| x.le == le).unwrap().count;
        assert_eq!((at(0.1), at(0.25)), (0, 1));
        assert!(m.label().starts_with("model-"));
        m.set_label("mine");
        assert_eq!(m.label(), "mine");
    }

    #[test]
    fn live_models_are_listed_until_dropped() {
        let m = ModelMetrics::default();
        m.set_label("listed-until-dropped");
        let has = || {
            live_models()
                .iter()
                .any(|s| s.label() == "listed-until-dropped")
        };
        assert!(has());
        drop(m);
        assert!(!has());
    }
}
