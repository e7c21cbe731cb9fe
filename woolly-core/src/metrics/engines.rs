//! What engines report to a registry: [`EngineFigures`] become the `woolly_engine_*`
//! families, and the batch-size histogram is estimated from their mean batch sizes until
//! [`Registry::observe_batch`] reports each step.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;

use super::registry::{Labels, Registry};
use super::types::{Histogram, BATCH_BUCKETS};

/// What an engine reports at one moment (its counters and state), as
/// [`Registry::observe_engine`] takes it (the engine's `stats()` are these figures).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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

impl Registry {
    /// Takes an engine's counters and state: request outcomes, steps, queue depth, running
    /// requests, mean batch size and step times. Call it whenever convenient (after a step,
    /// before a scrape); counters mirror the engine's totals.
    ///
    /// Until [`Registry::observe_batch`] reports exact batch sizes, the `woolly_engine_batch_size`
    /// histogram is fed from the mean batch size of the steps since the previous call.
    pub fn observe_engine(&self, stats: &EngineFigures) {
        self.observe_engine_labeled(&[], stats);
    }

    /// [`Registry::observe_engine`] for one of several engines, told apart by `labels` (e.g.
    /// `[("engine", "chat")]`).
    pub fn observe_engine_labeled(&self, labels: &[(&str, &str)], stats: &EngineFigures) {
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
}

/// [`Registry::observe_engine`] on the global registry.
pub fn observe_engine(stats: &EngineFigures) {
    Registry::global().observe_engine(stats);
}

/// [`Registry::observe_batch`] on the global registry.
pub fn observe_batch(sequences: usize) {
    Registry::global().observe_batch(sequences);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::SampleValue;

    #[test]
    fn an_engines_series_are_removed_by_its_label() {
        let r = Registry::new();
        let st = EngineFigures {
            steps: 3,
            mean_batch_size: 1.0,
            ..Default::default()
        };
        r.observe_engine_labeled(&[("engine", "a")], &st);
        r.observe_engine_labeled(&[("engine", "b")], &st);
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
        r.observe_engine(&st);
        // Ten more steps of four sequences: the mean over twenty is three.
        st.steps = 20;
        st.mean_batch_size = 3.0;
        r.observe_engine(&st);
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
}
