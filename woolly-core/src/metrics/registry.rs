//! The registry: named metric families of labelled series, gathered into a [`Snapshot`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

use super::collect::{collect_gpu, collect_models};
use super::snapshot::{FamilySnapshot, MetricType, SampleValue, SeriesSnapshot, Snapshot};
use super::types::{Counter, Gauge, Histogram};
use crate::platform::gpu;

/// Label pairs in the order they were given.
pub(super) type Labels = Vec<(String, String)>;

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
    pub(super) engines: Mutex<HashMap<Labels, (u64, f64)>>,
    /// Set once [`Registry::observe_batch`] reports exact batch sizes.
    pub(super) exact_batches: AtomicBool,
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

    #[test]
    fn text_format() {
        let r = Registry::new();
        r.counter(
            "t_total",
            "Line one\nback\\slash.",
            &[("model", "a \"quoted\"\nname\\")],
        )
        .add(7);
        r.histogram("t_seconds", "Latency.", &[0.5, 1.0], &[("m", "x")])
            .observe(0.75);
        r.gauge("t_g", "G.", &[]).set(f64::INFINITY);
        let text = r.render_prometheus();
        let expected = "\
# HELP t_g G.
# TYPE t_g gauge
t_g +Inf
# HELP t_seconds Latency.
# TYPE t_seconds histogram
t_seconds_bucket{m=\"x\",le=\"0.5\"} 0
t_seconds_bucket{m=\"x\",le=\"1\"} 1
t_seconds_bucket{m=\"x\",le=\"+Inf\"} 1
t_seconds_sum{m=\"x\"} 0.75
t_seconds_count{m=\"x\"} 1
# HELP t_total Line one\\nback\\\\slash.
# TYPE t_total counter
t_total{model=\"a \\\"quoted\\\"\\nname\\\\\"} 7
";
        assert_eq!(text, expected);
    }
}
