//! The engine's thread: it admits requests (see `scheduler.rs`), runs each step's
//! forward pass over the sequences planned for it, samples, and delivers every request's
//! events to its sink, ending each with exactly one `Done` or `Error`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::generate::output::{ModelTokenizer, Output};
use crate::generate::{CancelToken, Generation, Timings, TokenEvent};
use crate::kernels::cpu::ThreadPool;
use crate::model::kv_cache::KvCache;
use crate::model::{Model, Scratch, SeqBatch};
use crate::tokenizer::TokenId;
use crate::{Error, Result};

use super::request::{Event, Waiting};
use super::state::Shared;
use super::EngineParams;

/// A running request.
pub(super) struct Active {
    pub(super) w: Waiting,
    pub(super) cache: KvCache,
    /// Tokens evaluated into the cache, then the next token to evaluate.
    pub(super) history: Vec<TokenId>,
    pub(super) pending: Option<TokenId>,
    pub(super) out: Output<ModelTokenizer>,
    pub(super) started: Instant,
    pub(super) prompt_done: Option<Instant>,
    pub(super) first_token: Option<Instant>,
}

impl Active {
    pub(super) fn prefilling(&self) -> bool {
        self.history.len() < self.w.req.prompt_ids.len()
    }
}

/// The engine's thread and what it owns: the running requests, their KV caches, the scratch
/// of a step and the thread pool.
pub(super) struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) model: Arc<Model>,
    pub(super) params: EngineParams,
    pub(super) n_ctx: usize,
    pool: ThreadPool,
    scratch: Scratch,
    pub(super) active: Vec<Active>,
    pub(super) free_caches: Vec<KvCache>,
    pub(super) kv_charge: u64,
    pub(super) kv_charged: u64,
    scratch_charge: u64,
    decode_ms: Option<f64>,
    prefill_ms: Option<f64>,
    /// This engine's label in the metrics (`engine-N`).
    label: String,
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Worker {
    /// A worker for an engine of `params`, with `kv_charge` to charge for each sequence's KV
    /// cache and `scratch_charge` already charged for the scratch.
    pub(super) fn new(
        shared: Arc<Shared>,
        model: Arc<Model>,
        params: EngineParams,
        n_ctx: usize,
        pool: ThreadPool,
        kv_charge: u64,
        scratch_charge: u64,
    ) -> Worker {
        Worker {
            shared,
            model,
            params,
            n_ctx,
            pool,
            scratch: Scratch::default(),
            active: Vec::new(),
            free_caches: Vec::new(),
            kv_charge,
            kv_charged: 0,
            scratch_charge,
            decode_ms: None,
            prefill_ms: None,
            label: {
                static N: AtomicU64 = AtomicU64::new(0);
                format!("engine-{}", N.fetch_add(1, Ordering::Relaxed) + 1)
            },
        }
    }

    pub(super) fn run(&mut self) {
        loop {
            if !self.admit() {
                break;
            }
            if self.active.is_empty() {
                continue;
            }
            self.step();
        }
        // Shut down: every request still here gets its answer.
        let waiting = std::mem::take(&mut self.shared.lock().waiting);
        for w in waiting {
            self.fail_waiting(w, Error::Cancelled);
        }
        for a in std::mem::take(&mut self.active) {
            self.finish(a, Err(Error::Cancelled));
        }
        let account = self.model.memory_account();
        account.release(self.kv_charged + self.scratch_charge);
        // This engine's series go with it (no step observes them any more).
        crate::metrics::Registry::global().remove_labeled(&[("engine", self.label.as_str())]);
    }

    pub(super) fn fail_waiting(&self, mut w: Waiting, e: Error) {
        self.shared.lock().cancels.remove(&w.req.id);
        self.count_error(&e);
        self.model.metrics().record_error(&e);
        (w.sink)(Event::Error(e));
    }

    fn count_error(&self, e: &Error) {
        let mut s = self.shared.stats();
        match e {
            Error::Cancelled => s.cancelled += 1,
            Error::DeadlineExceeded(_) => s.deadline_exceeded += 1,
            _ => s.failed += 1,
        }
    }

    /// Ends `a`: its answer goes to its sink, its cache back to the free list.
    pub(super) fn finish(&mut self, mut a: Active, result: Result<()>) {
        // The count first: a caller reading the stats after its answer sees it gone.
        {
            let mut q = self.shared.lock();
            q.active = self.active.len();
            q.cancels.remove(&a.w.req.id);
        }
        let now = Instant::now();
        // A request that ends after its deadline never reports success.
        let result = match (result, a.w.req.deadline) {
            (Ok(()), Some(d)) if d <= now => Err(Error::DeadlineExceeded(format!(
                "the deadline passed {:.0} ms before the request finished ({} generated tokens)",
                ms(now - d),
                a.out.generated.len()
            ))),
            (r, _) => r,
        };
        match result {
            Ok(()) => {
                a.out.finish(&mut |ev: &TokenEvent<'_>| {
                    (a.w.sink)(Event::Token {
                        id: ev.id,
                        text: ev.text.to_string(),
                        index: ev.index,
                        logprob: ev.logprob.cloned(),
                    });
                    true
                });
                let queue_ms = ms(a.started - a.w.submitted);
                let prompt_ms = a.prompt_done.map_or(0.0, |p| ms(p - a.started));
                let ttft_ms = a.first_token.map_or(0.0, |f| ms(f - a.w.submitted));
                let gen_ms = a.prompt_done.map_or(0.0, |p| ms(now - p));
                let n = a.out.generated.len();
                let prompt_tokens = a.w.req.prompt_ids.len();
                let g = Generation {
                    prompt_ids: std::mem::take(&mut a.w.req.prompt_ids),
                    generated_ids: std::mem::take(&mut a.out.generated),
                    text: std::mem::take(&mut a.out.text),
                    stop_reason: a.out.stop_reason,
                    logprobs: std::mem::take(&mut a.out.logprobs),
                    dropped: a.w.req.dropped.take().into_iter().collect(),
                    timings: Timings {
                        prompt_tokens,
                        cached_tokens: 0,
                        prompt_ms,
                        prompt_tok_s: if prompt_ms > 0.0 {
                            prompt_tokens as f64 * 1e3 / prompt_ms
                        } else {
                            0.0
                        },
                        generated_tokens: n,
                        gen_ms,
                        gen_tok_s: if gen_ms > 0.0 {
                            n.saturating_sub(1) as f64 * 1e3 / gen_ms
                        } else {
                            0.0
                        },
                        ttft_ms,
                        queue_ms,
                    },
                };
                self.model.metrics().record(&g);
                {
                    let mut s = self.shared.stats();
                    let c = s.completed as f64;
                    s.mean_queue_ms = (s.mean_queue_ms * c + queue_ms) / (c + 1.0);
                    s.mean_ttft_ms = (s.mean_ttft_ms * c + ttft_ms) / (c + 1.0);
                    s.completed += 1;
                }
                (a.w.sink)(Event::Done(g));
            }
            Err(e) => {
                self.count_error(&e);
                self.model.metrics().record_error(&e);
                (a.w.sink)(Event::Error(e));
            }
        }
        self.free_caches.push(a.cache);
    }

    /// One forward pass over the sequences chosen for it, then sampling.
    pub(super) fn step(&mut self) {
        // Cancelled and expired requests leave first.
        self.drop_ended();
        // Each sequence's KV cache on the GPU, allocated before its first step: one that does
        // not fit fails alone (or runs on the CPU, as the model was loaded to do).
        let mut i = 0;
        while i < self.active.len() {
            match self.model.ensure_device_kv(&mut self.active[i].cache) {
                Ok(()) => i += 1,
                Err(e) => {
                    let a = self.active.swap_remove(i);
                    self.finish(a, Err(e));
                }
            }
        }
        if self.active.is_empty() {
            return;
        }
        // The power profile may ask for smaller batches (never larger than configured).
        let knobs = crate::policy::power::manager().knobs();
        let max_batch = self.params.max_batch_size.min(knobs.max_batch_size.max(1));
        let chosen = self.plan(max_batch);

        // The tokens of each chosen sequence.
        let tokens: Vec<Vec<TokenId>> = chosen
            .iter()
            .map(|&(i, n)| {
                let a = &self.active[i];
                if a.prefilling() {
                    a.w.req.prompt_ids[a.history.len()..a.history.len() + n].to_vec()
                } else {
                    vec![a
                        .pending
                        .expect("a generating sequence has a token to evaluate")]
                }
            })
            .collect();
        let n_tokens: usize = tokens.iter().map(Vec::len).sum();
        let n_prompt: usize = chosen
            .iter()
            .zip(&tokens)
            .filter(|((i, _), _)| self.active[*i].prefilling())
            .map(|(_, t)| t.len())
            .sum();
        let want: Vec<bool> = chosen
            .iter()
            .map(|&(i, n)| {
                let a = &self.active[i];
                !a.prefilling() || a.history.len() + n == a.w.req.prompt_ids.len()
            })
            .collect();
        let cancels: Vec<CancelToken> = chosen
            .iter()
            .map(|&(i, _)| self.active[i].w.cancel.clone())
            .collect();
        // Deadlines are checked between layers too: a long prompt step stops once one of its
        // sequences is late (the next round ends that one and plans again).
        let deadline = chosen
            .iter()
            .filter_map(|&(i, _)| self.active[i].w.req.deadline)
            .min();
        let shared = self.shared.clone();
        let cancelled = move || {
            shared.preempt.load(Ordering::Relaxed)
                || cancels.iter().any(CancelToken::is_cancelled)
                || deadline.is_some_and(|d| Instant::now() >= d)
        };
        let power = crate::policy::power::manager();
        self.pool.set_active(power.threads(self.pool.size()));
        let t0 = Instant::now();
        let result = {
            // Split borrows: each chosen sequence's cache, in `chosen` order.
            let mut picked: Vec<Option<&mut Active>> = self.active.iter_mut().map(Some).collect();
            let mut seqs: Vec<SeqBatch<'_>> = Vec::with_capacity(chosen.len());
            for ((&(i, _), toks), &w) in chosen.iter().zip(&tokens).zip(&want) {
                let a = picked[i].take().expect("chosen once");
                seqs.push(SeqBatch {
                    cache: &mut a.cache,
                    tokens: toks,
                    want_logits: w,
                });
            }
            self.model
                .forward(&mut seqs, &mut self.scratch, &self.pool, &cancelled)
        };
        let elapsed = ms(t0.elapsed());
        match result {
            Err(Error::Cancelled) => {
                // Preempted or cancelled: the caches are as before the pass; the next round
                // drops what was cancelled and plans again.
                if self.shared.preempt.load(Ordering::Relaxed) {
                    self.shared.stats().preempted_steps += 1;
                }
                return;
            }
            Err(e) => {
                // A failure of the pass fails the requests in it.
                let mut idx: Vec<usize> = chosen.iter().map(|&(i, _)| i).collect();
                idx.sort_unstable_by_key(|&i| std::cmp::Reverse(i));
                for i in idx {
                    let a = self.active.swap_remove(i);
                    // Out of device memory stays what it is (the caller may retry, or load
                    // the model with fewer GPU layers).
                    let err = match &e {
                        Error::OutOfDeviceMemory {
                            device,
                            what,
                            required,
                            free,
                        } => Error::OutOfDeviceMemory {
                            device: *device,
                            what: what.clone(),
                            required: *required,
                            free: *free,
                        },
                        e => Error::Internal(format!("forward pass failed: {e}")),
                    };
                    self.finish(a, Err(err));
                }
                return;
            }
            Ok(()) => {}
        }
        self.record_step(elapsed, chosen.len(), n_tokens, n_prompt);
        if n_prompt == 0 && !knobs.decode_pause.is_zero() {
            // A lower duty cycle on battery or in PowerSaver.
            std::thread::sleep(knobs.decode_pause);
        }

        // Advance each chosen sequence; sample those that got logits.
        let n_vocab = self.model.hparams().n_vocab;
        let mut logits_at = 0;
        let mut done: Vec<(usize, Result<()>)> = Vec::new();
        let now = Instant::now();
        for ((&(i, _), toks), &w) in chosen.iter().zip(&tokens).zip(&want) {
            let a = &mut self.active[i];
            a.history.extend_from_slice(toks);
            a.cache.set_len(a.history.len());
            if !w {
                continue;
            }
            if a.prompt_done.is_none() {
                a.prompt_done = Some(now);
            }
            let logits =
                &mut self.scratch.logits_mut()[logits_at * n_vocab..(logits_at + 1) * n_vocab];
            logits_at += 1;
            if a.w.req.deadline.is_some_and(|d| d <= now) {
                // Late: no token from this step (finish reports the deadline).
                done.push((i, Ok(())));
                continue;
            }
            let sink = &mut a.w.sink;
            let mut emit = |ev: &TokenEvent<'_>| {
                sink(Event::Token {
                    id: ev.id,
                    text: ev.text.to_string(),
                    index: ev.index,
                    logprob: ev.logprob.cloned(),
                });
                true
            };
            match a.out.step(logits, &a.history, &mut emit) {
                Ok(next) => {
                    if a.first_token.is_none() {
                        a.first_token = Some(Instant::now());
                    }
                    match next {
                        Some(id) => a.pending = Some(id),
                        None => done.push((i, Ok(()))),
                    }
                }
                Err(e) => done.push((i, Err(e))),
            }
        }
        done.sort_unstable_by_key(|d| std::cmp::Reverse(d.0));
        for (i, r) in done {
            let a = self.active.swap_remove(i);
            self.finish(a, r);
        }
    }

    fn record_step(&mut self, elapsed: f64, seqs: usize, tokens: usize, prompt: usize) {
        const ALPHA: f64 = 0.2;
        let smooth = |old: Option<f64>, new: f64| Some(old.map_or(new, |o| o + ALPHA * (new - o)));
        if prompt == 0 {
            self.decode_ms = smooth(self.decode_ms, elapsed);
        } else if prompt == tokens {
            self.prefill_ms = smooth(self.prefill_ms, elapsed / prompt as f64);
        }
        let step = self.decode_ms.unwrap_or(elapsed);
        self.shared
            .decode_step_us
            .store((step * 1e3).to_bits(), Ordering::Relaxed);
        crate::metrics::observe_batch(seqs);
        let mut snapshot = {
            let mut s = self.shared.stats();
            let n = s.steps as f64;
            s.mean_batch_size = (s.mean_batch_size * n + seqs as f64) / (n + 1.0);
            s.steps += 1;
            s.decode_step_ms = self.decode_ms.unwrap_or(0.0);
            s.prefill_token_ms = self.prefill_ms.unwrap_or(0.0);
            s.clone()
        };
        {
            let q = self.shared.lock();
            snapshot.queued = q.waiting.len();
            snapshot.active = q.active;
        }
        crate::metrics::Registry::global()
            .observe_engine_labeled(&[("engine", self.label.as_str())], &snapshot);
    }
}
