//! Counters that Woolly keeps about its own work, readable from every front end as JSON.
//!
//! Each [`crate::model::Model`] owns a [`ModelMetrics`]; every session on it records its
//! generations there. Counters only grow; a snapshot is a consistent-enough copy for
//! monitoring (each counter is read atomically, not all of them together).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::generate::Generation;

/// Live counters of one model.
#[derive(Debug, Default)]
pub struct ModelMetrics {
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
    /// Records a finished generation.
    pub fn record(&self, g: &Generation) {
        let t = &g.timings;
        self.generations.fetch_add(1, Ordering::Relaxed);
        self.prompt_tokens
            .fetch_add(t.prompt_tokens as u64, Ordering::Relaxed);
        self.cached_tokens
            .fetch_add(t.cached_tokens as u64, Ordering::Relaxed);
        self.generated_tokens
            .fetch_add(t.generated_tokens as u64, Ordering::Relaxed);
        self.prompt_us.fetch_add(us(t.prompt_ms), Ordering::Relaxed);
        self.queue_us.fetch_add(us(t.queue_ms), Ordering::Relaxed);
        self.generation_us
            .fetch_add(us(t.gen_ms), Ordering::Relaxed);
        if t.generated_tokens > 0 {
            self.ttft_us.fetch_add(us(t.ttft_ms), Ordering::Relaxed);
            self.ttft_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a generation that failed with `e`.
    pub fn record_error(&self, e: &Error) {
        if e.kind() == ErrorKind::Cancelled {
            self.cancelled.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
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
    use crate::generate::{StopReason, Timings};

    fn generation(prompt: usize, cached: usize, gen: usize) -> Generation {
        Generation {
            prompt_ids: vec![1; prompt],
            generated_ids: vec![2; gen],
            text: String::new(),
            stop_reason: StopReason::MaxTokens,
            timings: Timings {
                prompt_tokens: prompt,
                cached_tokens: cached,
                prompt_ms: 100.0,
                generated_tokens: gen,
                gen_ms: 500.0,
                ttft_ms: 120.0,
                ..Default::default()
            },
        }
    }

    #[test]
    fn counts_and_rates() {
        let m = ModelMetrics::default();
        m.record(&generation(10, 0, 5));
        m.record(&generation(30, 20, 0));
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
    }
}
