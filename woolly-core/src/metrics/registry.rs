//! The registry: named metric families of labelled series, gathered into a [`Snapshot`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::types::{Counter, Gauge, Histogram, HistogramSnapshot, BATCH_BUCKETS};
use super::MetricsSnapshot;
use crate::platform::gpu::{self, GpuReport};

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

/// What an engine reports at one moment (its counters and state), as
/// [`Registry::observe_engine`] takes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineFigures {
    pub submitted: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub deadline_exceeded: u64,
    pub rejected_busy: u64,
    /// Steps run, steps stopped to let an urgent request in, and sequences per step on average.
    pub steps: u64,
    pub preempted_steps: u64,
    pub mean_batch_size: f64,
    /// Requests waiting and running now.
    pub queued: usize,
    pub active: usize,
    /// Smoothed duration of a step with one token per sequence, in milliseconds.
    pub decode_step_ms: f64,
    /// Smoothed time per prompt token in a step, in milliseconds.
    pub prefill_token_ms: f64,
    /// Mean time requests waited before starting, and to their first token, in milliseconds.
    pub mean_queue_ms: f64,
    pub mean_ttft_ms: f64,
}

/// Label pairs in the order they were given.
type Labels = Vec<(String, String)>;

#[derive(Debug, Clone)]
enum Metric {
    Counter(Arc<Counter>),
    Gauge(Arc<Gauge>),
    Histogram(Arc<Histogram>),
}

#[derive(Debug)]
struct Family {
    help: String,
    kind: MetricType,
    series: BTreeMap<Labels, Metric>,
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

    /// The Prometheus text exposition format 0.0.4 (`text/plain; version=0.0.4`).
    pub fn to_prometheus(&self) -> String {
        super::prometheus::render(&self.families)
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

fn valid_name(name: &str, colons: bool) -> bool {
    let mut chars = name.chars();
    let ok_first = |c: char| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':');
    chars.next().is_some_and(ok_first) && chars.all(|c| ok_first(c) || c.is_ascii_digit())
}

/// Named families of counters, gauges and histograms, each series with its own labels.
///
/// [`Registry::global`] is the process-wide one: it also exports every live model's figures,
/// the process's memory, the GPU, and what the engine and the power module report to it.
/// [`Registry::new`] makes a plain one holding only what is registered on it.
#[derive(Debug, Default)]
pub struct Registry {
    families: Mutex<BTreeMap<String, Family>>,
    /// Collect models, process and GPU figures at each snapshot.
    system: bool,
    /// The last steps and mean batch size seen per engine, for the batch-size estimate.
    engines: Mutex<HashMap<Labels, (u64, f64)>>,
    /// Set once [`Registry::observe_batch`] reports exact batch sizes.
    exact_batches: AtomicBool,
}

impl Registry {
    /// A registry with nothing in it.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The process-wide registry.
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let r = Registry {
                system: true,
                ..Registry::default()
            };
            r.gauge(
                "woolly_build_info",
                "Woolly's version and kernels (always 1).",
                &[
                    ("version", crate::VERSION),
                    ("kernels", crate::kernels::cpu::simd_level()),
                ],
            )
            .set(1.0);
            r.thermal_gauge();
            r.thermal_counter();
            r
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Family>> {
        self.families.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get_or_add(
        &self,
        name: &str,
        help: &str,
        kind: MetricType,
        labels: &[(&str, &str)],
        make: impl FnOnce() -> Metric,
    ) -> Metric {
        assert!(
            valid_name(name, true),
            "{name:?} is not a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"
        );
        for (k, _) in labels {
            assert!(
                valid_name(k, false) && !k.starts_with("__"),
                "{k:?} is not a valid label name"
            );
            assert!(
                !(kind == MetricType::Histogram && *k == "le"),
                "`le` is reserved for histogram buckets"
            );
        }
        let key: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut fams = self.lock();
        let fam = fams.entry(name.to_string()).or_insert_with(|| Family {
            help: help.to_string(),
            kind,
            series: BTreeMap::new(),
        });
        assert_eq!(
            fam.kind,
            kind,
            "metric {name:?} is already registered as a {}",
            fam.kind.name()
        );
        fam.series.entry(key).or_insert_with(make).clone()
    }

    /// The counter `name` with `labels`, registered on first use.
    ///
    /// # Panics
    /// For an invalid metric or label name, or a name registered with another type.
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Arc<Counter> {
        match self.get_or_add(name, help, MetricType::Counter, labels, || {
            Metric::Counter(Arc::default())
        }) {
            Metric::Counter(c) => c,
            _ => unreachable!(),
        }
    }

    /// The gauge `name` with `labels`, registered on first use.
    ///
    /// # Panics
    /// As [`Registry::counter`].
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Arc<Gauge> {
        match self.get_or_add(name, help, MetricType::Gauge, labels, || {
            Metric::Gauge(Arc::default())
        }) {
            Metric::Gauge(g) => g,
            _ => unreachable!(),
        }
    }

    /// The histogram `name` with `labels` over `buckets` (upper bounds; used when the series is
    /// registered, ignored afterwards), registered on first use.
    ///
    /// # Panics
    /// As [`Registry::counter`]; also for a label named `le`.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[(&str, &str)],
    ) -> Arc<Histogram> {
        match self.get_or_add(name, help, MetricType::Histogram, labels, || {
            Metric::Histogram(Arc::new(Histogram::new(buckets)))
        }) {
            Metric::Histogram(h) => h,
            _ => unreachable!(),
        }
    }

    /// Takes an engine's counters and state: request outcomes, steps, queue depth, running
    /// requests, mean batch size and step times. Call it whenever convenient (after a step,
    /// before a scrape); counters mirror the engine's totals.
    ///
    /// Until [`Registry::observe_batch`] reports exact batch sizes, the `woolly_engine_batch_size`
    /// histogram is fed from the mean batch size of the steps since the previous call.
    pub fn observe_engine(&self, stats: impl Into<EngineFigures>) {
        self.observe_engine_labeled(&[], stats);
    }

    /// [`Registry::observe_engine`] for one of several engines, told apart by `labels` (e.g.
    /// `[("engine", "chat")]`).
    pub fn observe_engine_labeled(&self, labels: &[(&str, &str)], stats: impl Into<EngineFigures>) {
        let stats = &stats.into();
        self.counter(
            "woolly_engine_requests_submitted_total",
            "Requests accepted by the engine.",
            labels,
        )
        .set_total(stats.submitted);
        for (outcome, n) in [
            ("completed", stats.completed),
            ("failed", stats.failed),
            ("cancelled", stats.cancelled),
            ("deadline_exceeded", stats.deadline_exceeded),
            ("rejected_busy", stats.rejected_busy),
        ] {
            let mut l = labels.to_vec();
            l.push(("outcome", outcome));
            self.counter(
                "woolly_engine_requests_total",
                "Engine requests by how they ended (rejected_busy: refused with a full queue).",
                &l,
            )
            .set_total(n);
        }
        self.counter(
            "woolly_engine_steps_total",
            "Decode steps (forward passes over the running sequences).",
            labels,
        )
        .set_total(stats.steps);
        self.counter(
            "woolly_engine_preempted_steps_total",
            "Steps stopped to let an urgent request in.",
            labels,
        )
        .set_total(stats.preempted_steps);
        for (name, help, v) in [
            (
                "woolly_engine_queue_depth",
                "Requests waiting to start.",
                stats.queued as f64,
            ),
            (
                "woolly_engine_active_requests",
                "Requests running.",
                stats.active as f64,
            ),
            (
                "woolly_engine_mean_batch_size",
                "Mean sequences per step since the engine started.",
                stats.mean_batch_size,
            ),
            (
                "woolly_engine_decode_step_seconds",
                "Smoothed duration of a step with one token per sequence.",
                stats.decode_step_ms / 1e3,
            ),
            (
                "woolly_engine_prefill_token_seconds",
                "Smoothed time per prompt token in a step.",
                stats.prefill_token_ms / 1e3,
            ),
            (
                "woolly_engine_mean_queue_seconds",
                "Mean time completed requests waited before starting.",
                stats.mean_queue_ms / 1e3,
            ),
            (
                "woolly_engine_mean_ttft_seconds",
                "Mean time to first token of completed requests.",
                stats.mean_ttft_ms / 1e3,
            ),
        ] {
            self.gauge(name, help, labels).set(v);
        }
        let key: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut engines = self.engines.lock().unwrap_or_else(|e| e.into_inner());
        let (prev_steps, prev_mean) = match engines.get(&key) {
            // A new engine under the same labels starts from zero.
            Some(&(s, m)) if s <= stats.steps => (s, m),
            _ => (0, 0.0),
        };
        engines.insert(key, (stats.steps, stats.mean_batch_size));
        drop(engines);
        let new_steps = stats.steps - prev_steps;
        if new_steps > 0 && !self.exact_batches.load(Ordering::Relaxed) {
            let seqs = stats.mean_batch_size * stats.steps as f64 - prev_mean * prev_steps as f64;
            let mean = (seqs / new_steps as f64).max(0.0);
            self.batch_histogram(labels).observe_n(mean, new_steps);
        }
    }

    /// Removes every series whose labels include all of `labels` (an engine's series, once it
    /// has stopped), and the families left without series; returns how many series went
    /// (none for empty `labels`).
    /// Handles to removed series keep working but are no longer exported.
    pub fn remove_labeled(&self, labels: &[(&str, &str)]) -> usize {
        if labels.is_empty() {
            // Every series would match: removing nothing is the safe reading.
            return 0;
        }
        let matches = |l: &Labels| {
            labels
                .iter()
                .all(|(k, v)| l.iter().any(|(a, b)| a == k && b == v))
        };
        let mut removed = 0;
        {
            let mut fams = self.lock();
            for fam in fams.values_mut() {
                let before = fam.series.len();
                fam.series.retain(|l, _| !matches(l));
                removed += before - fam.series.len();
            }
            fams.retain(|_, f| !f.series.is_empty());
        }
        self.engines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|l, _| !matches(l));
        removed
    }

    /// How many series the registry holds (every family's).
    pub fn series_count(&self) -> usize {
        self.lock().values().map(|f| f.series.len()).sum()
    }

    fn batch_histogram(&self, labels: &[(&str, &str)]) -> Arc<Histogram> {
        self.histogram(
            "woolly_engine_batch_size",
            "Sequences per engine step (estimated from the mean between observations unless \
             the engine reports each step).",
            BATCH_BUCKETS,
            labels,
        )
    }

    /// Counts one engine step over `sequences` sequences (exact batch sizes; from the first
    /// call on, [`Registry::observe_engine`] no longer estimates them).
    pub fn observe_batch(&self, sequences: usize) {
        self.exact_batches.store(true, Ordering::Relaxed);
        self.batch_histogram(&[]).observe(sequences as f64);
    }

    fn thermal_gauge(&self) -> Arc<Gauge> {
        self.gauge(
            "woolly_thermal_throttled",
            "1 while Woolly runs fewer worker threads because the machine is hot, else 0.",
            &[],
        )
    }

    fn thermal_counter(&self) -> Arc<Counter> {
        self.counter(
            "woolly_thermal_throttle_events_total",
            "Times Woolly started throttling itself for heat.",
            &[],
        )
    }

    /// Reports whether Woolly is throttling itself for heat now; a change from not throttled
    /// to throttled counts one event.
    pub fn record_throttle(&self, active: bool) {
        let g = self.thermal_gauge();
        let was = g.get() > 0.5;
        g.set(if active { 1.0 } else { 0.0 });
        if active && !was {
            self.thermal_counter().inc();
        }
    }

    /// Reports the worker threads Woolly runs now (after the power and thermal caps).
    pub fn set_worker_threads(&self, threads: usize) {
        self.gauge(
            "woolly_worker_threads",
            "Worker threads Woolly runs now, after power and thermal caps.",
            &[],
        )
        .set(threads as f64);
    }

    /// Reports the hottest CPU temperature the thermal monitor read, in °C.
    pub fn set_cpu_temperature(&self, celsius: f64) {
        self.gauge(
            "woolly_cpu_temperature_celsius",
            "Hottest CPU temperature the thermal monitor read.",
            &[],
        )
        .set(celsius);
    }

    /// Reads this process's resident memory into the `woolly_process_*` gauges (the global
    /// registry does it at each snapshot).
    pub fn observe_process(&self) {
        if let Some(b) = crate::platform::process::rss_bytes() {
            self.gauge(
                "woolly_process_resident_memory_bytes",
                "Resident memory of this process.",
                &[],
            )
            .set(b as f64);
        }
        if let Some(b) = crate::platform::process::peak_rss_bytes() {
            self.gauge(
                "woolly_process_peak_resident_memory_bytes",
                "Peak resident memory of this process.",
                &[],
            )
            .set(b as f64);
        }
    }

    /// Every family now (for the global registry: after reading the process's memory, the
    /// live models and the GPU).
    pub fn snapshot(&self) -> Snapshot {
        if self.system {
            self.observe_process();
        }
        let mut out: BTreeMap<String, FamilySnapshot> = BTreeMap::new();
        for (name, f) in self.lock().iter() {
            out.insert(
                name.clone(),
                FamilySnapshot {
                    name: name.clone(),
                    help: f.help.clone(),
                    kind: f.kind,
                    series: f
                        .series
                        .iter()
                        .map(|(labels, m)| SeriesSnapshot {
                            labels: labels.clone(),
                            value: match m {
                                Metric::Counter(c) => SampleValue::Counter(c.get()),
                                Metric::Gauge(g) => SampleValue::Gauge(g.get()),
                                Metric::Histogram(h) => SampleValue::Histogram(h.snapshot()),
                            },
                        })
                        .collect(),
                },
            );
        }
        let (mut models, mut gpu_report) = (Vec::new(), None);
        if self.system {
            let mut collected = Vec::new();
            models = collect_models(&mut collected);
            let report = gpu::detect();
            collect_gpu(&report, &mut collected);
            gpu_report = Some(report);
            for f in collected {
                match out.get_mut(&f.name) {
                    // A family registered by hand under the same name and type takes the
                    // collected series too; one of another type keeps its own.
                    Some(mine) if mine.kind == f.kind => mine.series.extend(f.series),
                    Some(_) => {}
                    None => {
                        out.insert(f.name.clone(), f);
                    }
                }
            }
        }
        Snapshot {
            families: out.into_values().collect(),
            models,
            gpu: gpu_report,
            time_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }

    /// [`Snapshot::to_prometheus`] of a snapshot taken now.
    pub fn render_prometheus(&self) -> String {
        self.snapshot().to_prometheus()
    }

    /// [`Snapshot::to_json`] of a snapshot taken now.
    pub fn to_json(&self) -> Value {
        self.snapshot().to_json()
    }
}

fn family(name: &str, help: &str, kind: MetricType) -> FamilySnapshot {
    FamilySnapshot {
        name: name.into(),
        help: help.into(),
        kind,
        series: Vec::new(),
    }
}

/// The families of every live model, labelled `model="..."` (a label used twice gets the
/// model's number appended); returns each model's label and counters.
fn collect_models(out: &mut Vec<FamilySnapshot>) -> Vec<(String, MetricsSnapshot)> {
    use MetricType::*;
    let mut requests = family(
        "woolly_requests_total",
        "Generations by how they ended (completed: any stop reason).",
        Counter,
    );
    let mut prompt = family(
        "woolly_prompt_tokens_total",
        "Prompt tokens, cached ones included.",
        Counter,
    );
    let mut cached = family(
        "woolly_cached_prompt_tokens_total",
        "Prompt tokens taken from a session's cache instead of computed.",
        Counter,
    );
    let mut generated = family(
        "woolly_generated_tokens_total",
        "Generated tokens.",
        Counter,
    );
    let mut gen_rate = family(
        "woolly_generation_tokens_per_second",
        "Generated tokens per second of generation time, over all generations.",
        Gauge,
    );
    let mut prompt_rate = family(
        "woolly_prompt_tokens_per_second",
        "Computed prompt tokens per second of prompt time, over all generations.",
        Gauge,
    );
    let mut ttft = family(
        "woolly_time_to_first_token_seconds",
        "Time from the call (or the submission) to the first generated token.",
        Histogram,
    );
    let mut prompt_s = family(
        "woolly_prompt_duration_seconds",
        "Time reading the prompt of each generation.",
        Histogram,
    );
    let mut gen_s = family(
        "woolly_generation_duration_seconds",
        "Time generating tokens in each generation.",
        Histogram,
    );
    let mut queue_s = family(
        "woolly_queue_wait_seconds",
        "Time engine requests waited before they started (0 for sessions).",
        Histogram,
    );
    let mut rate_h = family(
        "woolly_request_generation_tokens_per_second",
        "Generation speed of each generation that produced at least two tokens.",
        Histogram,
    );
    let mut seen = std::collections::HashSet::new();
    let mut models = Vec::new();
    for m in super::live_models() {
        let mut label = m.label();
        if !seen.insert(label.clone()) {
            label = format!("{label}#{}", m.id);
            seen.insert(label.clone());
        }
        let s = m.snapshot();
        let h = m.histograms();
        let l = || vec![("model".to_string(), label.clone())];
        let push = |f: &mut FamilySnapshot, value| {
            f.series.push(SeriesSnapshot { labels: l(), value });
        };
        let completed = s.generations;
        for (outcome, n) in [
            ("completed", completed),
            ("failed", s.failed),
            ("cancelled", s.cancelled),
        ] {
            let mut labels = l();
            labels.push(("outcome".into(), outcome.into()));
            requests.series.push(SeriesSnapshot {
                labels,
                value: SampleValue::Counter(n),
            });
        }
        push(&mut prompt, SampleValue::Counter(s.prompt_tokens));
        push(&mut cached, SampleValue::Counter(s.cached_tokens));
        push(&mut generated, SampleValue::Counter(s.generated_tokens));
        push(&mut gen_rate, SampleValue::Gauge(s.generation_tok_s));
        push(&mut prompt_rate, SampleValue::Gauge(s.prompt_tok_s));
        push(&mut ttft, SampleValue::Histogram(h.ttft_seconds));
        push(&mut prompt_s, SampleValue::Histogram(h.prompt_seconds));
        push(&mut gen_s, SampleValue::Histogram(h.generation_seconds));
        push(&mut queue_s, SampleValue::Histogram(h.queue_seconds));
        push(&mut rate_h, SampleValue::Histogram(h.generation_tok_s));
        models.push((label, s));
    }
    out.extend([
        requests,
        prompt,
        cached,
        generated,
        gen_rate,
        prompt_rate,
        ttft,
        prompt_s,
        gen_s,
        queue_s,
        rate_h,
    ]);
    models
}

/// The GPU families: `woolly_gpu_available`, and per device (labels `gpu`, `name`)
/// utilization, memory, temperature and power where NVML reports them.
fn collect_gpu(r: &GpuReport, out: &mut Vec<FamilySnapshot>) {
    let mut avail = family(
        "woolly_gpu_available",
        "1 when NVML reports at least one GPU, else 0 (see the JSON snapshot's gpu.reason).",
        MetricType::Gauge,
    );
    avail.series.push(SeriesSnapshot {
        labels: Vec::new(),
        value: SampleValue::Gauge(if r.available { 1.0 } else { 0.0 }),
    });
    out.push(avail);
    if r.devices.is_empty() {
        return;
    }
    type Get = fn(&gpu::GpuDevice) -> Option<f64>;
    let specs: [(&str, &str, Get); 7] = [
        (
            "woolly_gpu_utilization_ratio",
            "Fraction of the last sample period in which a kernel ran on the GPU.",
            |d| d.utilization_percent.map(|p| p as f64 / 100.0),
        ),
        (
            "woolly_gpu_memory_utilization_ratio",
            "Fraction of the last sample period in which GPU memory was read or written.",
            |d| d.memory_utilization_percent.map(|p| p as f64 / 100.0),
        ),
        (
            "woolly_gpu_memory_used_bytes",
            "GPU memory allocated.",
            |d| d.memory_used_bytes.map(|b| b as f64),
        ),
        (
            "woolly_gpu_memory_total_bytes",
            "GPU memory installed.",
            |d| d.memory_total_bytes.map(|b| b as f64),
        ),
        (
            "woolly_gpu_temperature_celsius",
            "GPU die temperature.",
            |d| d.temperature_celsius.map(f64::from),
        ),
        ("woolly_gpu_power_watts", "GPU power draw.", |d| {
            d.power_watts
        }),
        (
            "woolly_gpu_power_limit_watts",
            "GPU enforced power limit.",
            |d| d.power_limit_watts,
        ),
    ];
    for (name, help, get) in specs {
        let mut f = family(name, help, MetricType::Gauge);
        for d in &r.devices {
            if let Some(v) = get(d) {
                f.series.push(SeriesSnapshot {
                    labels: vec![
                        ("gpu".into(), d.index.to_string()),
                        ("name".into(), d.name.clone().unwrap_or_default()),
                    ],
                    value: SampleValue::Gauge(v),
                });
            }
        }
        if !f.series.is_empty() {
            out.push(f);
        }
    }
}

/// [`Registry::record_throttle`] on the global registry (for the power module).
pub fn record_throttle(active: bool) {
    Registry::global().record_throttle(active);
}

/// [`Registry::set_worker_threads`] on the global registry.
pub fn set_worker_threads(threads: usize) {
    Registry::global().set_worker_threads(threads);
}

/// [`Registry::set_cpu_temperature`] on the global registry.
pub fn set_cpu_temperature(celsius: f64) {
    Registry::global().set_cpu_temperature(celsius);
}

/// [`Registry::observe_engine`] on the global registry.
pub fn observe_engine(stats: impl Into<EngineFigures>) {
    Registry::global().observe_engine(stats);
}

/// [`Registry::observe_batch`] on the global registry.
pub fn observe_batch(sequences: usize) {
    Registry::global().observe_batch(sequences);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_series_and_types() {
        let r = Registry::new();
        let c = r.counter("t_requests_total", "Requests.", &[("model", "a")]);
        c.add(3);
        // The same name and labels give the same series.
        r.counter("t_requests_total", "Requests.", &[("model", "a")])
            .inc();
        r.counter("t_requests_total", "Requests.", &[("model", "b")])
            .inc();
        r.gauge("t_depth", "Depth.", &[]).set(2.0);
        r.histogram("t_lat_seconds", "Latency.", &[0.1, 1.0], &[])
            .observe(0.5);
        let s = r.snapshot();
        assert!(s.gpu.is_none() && s.models.is_empty());
        let f = s.family("t_requests_total").unwrap();
        assert_eq!(f.kind, MetricType::Counter);
        assert_eq!(
            f.find(&[("model", "a")]).unwrap().value,
            SampleValue::Counter(4)
        );
        assert_eq!(f.series.len(), 2);
        let j = s.to_json();
        assert_eq!(j["metrics"]["t_depth"]["series"][0]["value"], 2.0);
        assert_eq!(j["metrics"]["t_lat_seconds"]["series"][0]["count"], 1);
        assert_eq!(j["metrics"]["t_lat_seconds"]["type"], "histogram");
    }

    #[test]
    #[should_panic(expected = "already registered")]
    fn a_name_has_one_type() {
        let r = Registry::new();
        r.counter("t_x", "x", &[]);
        r.gauge("t_x", "x", &[]);
    }

    #[test]
    #[should_panic(expected = "not a valid metric name")]
    fn names_are_checked() {
        Registry::new().counter("1bad-name", "x", &[]);
    }

    #[test]
    fn an_engines_series_are_removed_by_its_label() {
        let r = Registry::new();
        let st = EngineFigures {
            steps: 3,
            mean_batch_size: 1.0,
            ..Default::default()
        };
        r.observe_engine_labeled(&[("engine", "a")], st.clone());
        r.observe_engine_labeled(&[("engine", "b")], st.clone());
        r.counter("other_total", "Another family.", &[]).inc();
        let per_engine = r.series_count();
        let text = r.render_prometheus();
        assert!(text.contains("engine=\"a\"") && text.contains("engine=\"b\""));
        assert_eq!(r.remove_labeled(&[]), 0);
        let gone = r.remove_labeled(&[("engine", "a")]);
        assert!(gone > 10, "{gone}");
        assert_eq!(r.series_count(), per_engine - gone);
        let text = r.render_prometheus();
        assert!(!text.contains("engine=\"a\"") && text.contains("engine=\"b\""));
        // The last engine gone: its families go too, the others stay.
        r.remove_labeled(&[("engine", "b")]);
        let text = r.render_prometheus();
        assert!(!text.contains("woolly_engine"), "{text}");
        assert!(text.contains("other_total 1"), "{text}");
        assert_eq!(r.series_count(), 1);
        assert!(r.engines.lock().unwrap().is_empty());
    }

    #[test]
    fn engine_stats_become_gauges_counters_and_batch_sizes() {
        let r = Registry::new();
        let mut st = EngineFigures {
            submitted: 5,
            completed: 3,
            steps: 10,
            mean_batch_size: 2.0,
            queued: 2,
            active: 1,
            decode_step_ms: 20.0,
            ..Default::default()
        };
        r.observe_engine(st.clone());
        // Ten more steps of four sequences: the mean over twenty is three.
        st.steps = 20;
        st.mean_batch_size = 3.0;
        r.observe_engine(st.clone());
        let s = r.snapshot();
        let v = |n: &str| s.family(n).unwrap().series[0].value.clone();
        assert_eq!(v("woolly_engine_queue_depth"), SampleValue::Gauge(2.0));
        assert_eq!(v("woolly_engine_steps_total"), SampleValue::Counter(20));
        assert_eq!(
            v("woolly_engine_decode_step_seconds"),
            SampleValue::Gauge(0.02)
        );
        let done = s
            .family("woolly_engine_requests_total")
            .unwrap()
            .find(&[("outcome", "completed")])
            .unwrap();
        assert_eq!(done.value, SampleValue::Counter(3));
        let SampleValue::Histogram(h) = v("woolly_engine_batch_size") else {
            panic!()
        };
        assert_eq!(h.count, 20);
        assert!((h.sum - 60.0).abs() < 1e-9);
        // 10 steps at 2 (le=2), 10 at 4 (le=4).
        assert_eq!(h.buckets[1].count, 10);
        assert_eq!(h.buckets[2].count, 20);
    }

    #[test]
    fn throttling_counts_transitions() {
        let r = Registry::new();
        r.record_throttle(true);
        r.record_throttle(true);
        r.record_throttle(false);
        r.record_throttle(true);
        r.set_worker_threads(3);
        let s = r.snapshot();
        let v = |n: &str| s.family(n).unwrap().series[0].value.clone();
        assert_eq!(
            v("woolly_thermal_throttle_events_total"),
            SampleValue::Counter(2)
        );
        assert_eq!(v("woolly_thermal_throttled"), SampleValue::Gauge(1.0));
        assert_eq!(v("woolly_worker_threads"), SampleValue::Gauge(3.0));
    }
}
