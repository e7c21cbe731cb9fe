//! The typed metrics: atomic counters, gauges and fixed-bucket histograms.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// A count that only grows (or is reset when its source restarts).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn new() -> Counter {
        Counter::default()
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes the total kept elsewhere (an engine's counters): the counter mirrors it.
    pub fn set_total(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn new() -> Gauge {
        Gauge::default()
    }

    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    pub fn add(&self, d: f64) {
        add_f64(&self.0, d);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

fn add_f64(a: &AtomicU64, d: f64) {
    let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
        Some((f64::from_bits(b) + d).to_bits())
    });
}

/// Bucket bounds for latencies in seconds: 5 ms to a minute.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Bucket bounds for whole generations in seconds: 50 ms to 10 minutes.
pub const DURATION_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Bucket bounds for rates in tokens per second.
pub const RATE_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
];

/// Bucket bounds for batch sizes (sequences per step).
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// A distribution over fixed buckets: `observe(v)` counts `v` in the first bucket whose upper
/// bound is at least `v` (the last, `+Inf`, takes the rest) and adds it to the sum.
#[derive(Debug)]
pub struct Histogram {
    bounds: Box<[f64]>,
    /// One count per bound, then the `+Inf` bucket (not cumulative).
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    /// A histogram over `bounds` (sorted and deduplicated; bounds that are not finite are
    /// dropped: `+Inf` is always the last bucket).
    pub fn new(bounds: &[f64]) -> Histogram {
        let mut b: Vec<f64> = bounds.iter().copied().filter(|x| x.is_finite()).collect();
        b.sort_by(f64::total_cmp);
        b.dedup();
        let counts = (0..=b.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            bounds: b.into_boxed_slice(),
            counts,
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Counts one observation of `v` (NaN is ignored).
    pub fn observe(&self, v: f64) {
        self.observe_n(v, 1);
    }

    /// Counts `n` observations of `v`.
    pub fn observe_n(&self, v: f64, n: u64) {
        if v.is_nan() || n == 0 {
            return;
        }
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts[i].fetch_add(n, Ordering::Relaxed);
        add_f64(&self.sum, v * n as f64);
    }

    /// The upper bounds, `+Inf` excluded.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// The buckets now, cumulative, with the count the same as the `+Inf` bucket.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut acc = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            acc += c.load(Ordering::Relaxed);
            buckets.push(Bucket {
                le: self.bounds.get(i).copied().unwrap_or(f64::INFINITY),
                count: acc,
            });
        }
        HistogramSnapshot {
            count: acc,
            sum: f64::from_bits(self.sum.load(Ordering::Relaxed)),
            buckets,
        }
    }
}

/// One cumulative bucket: observations at most `le`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub le: f64,
    pub count: u64,
}

impl Serialize for Bucket {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Bucket", 2)?;
        if self.le.is_finite() {
            st.serialize_field("le", &self.le)?;
        } else {
            st.serialize_field("le", "+Inf")?;
        }
        st.serialize_field("count", &self.count)?;
        st.end()
    }
}

/// A histogram at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramSnapshot {
    pub count: u64,
    pub sum: f64,
    /// Cumulative; the last is `+Inf` and equals `count`.
    pub buckets: Vec<Bucket>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_inclusive() {
        let h = Histogram::new(&[1.0, 0.5, 2.0, f64::INFINITY, 1.0]);
        assert_eq!(h.bounds(), &[0.5, 1.0, 2.0]);
        for v in [0.1, 0.5, 0.7, 1.0, 3.0, f64::NAN] {
            h.observe(v);
        }
        h.observe_n(1.5, 2);
        let s = h.snapshot();
        let counts: Vec<u64> = s.buckets.iter().map(|b| b.count).collect();
        assert_eq!(counts, vec![2, 4, 6, 7]);
        assert_eq!(s.count, 7);
        assert!(s.buckets[3].le.is_infinite());
        assert!((s.sum - (0.1 + 0.5 + 0.7 + 1.0 + 3.0 + 3.0)).abs() < 1e-12);
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["buckets"][3]["le"], "+Inf");
        assert_eq!(j["buckets"][0]["le"], 0.5);
    }

    #[test]
    fn counters_and_gauges() {
        let c = Counter::new();
        c.inc();
        c.add(4);
        assert_eq!(c.get(), 5);
        c.set_total(9);
        assert_eq!(c.get(), 9);
        let g = Gauge::new();
        g.set(2.5);
        g.add(-1.0);
        assert_eq!(g.get(), 1.5);
    }
}
