//! A session: one conversation's KV cache and the generation loop over it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::generation::{Generation, Timings, TokenEvent};
use super::params::{CancelToken, GenerateParams, SessionParams};
use super::prompt::{chat_tokens, Prompt};
use super::sampler::Sampler;
use crate::chat::ChatMessage;
use crate::kernels::cpu::ThreadPool;
use crate::model::{KvCache, Model, Scratch, SeqBatch};
use crate::tokenizer::TokenId;
use crate::{Error, Result};

/// Cancels a session's generation in progress from any thread.
#[derive(Debug, Clone)]
pub struct CancelHandle(Arc<AtomicBool>);

impl CancelHandle {
    /// Asks the generation in progress to stop; it returns [`Error::Cancelled`] within one layer's
    /// work, also in the middle of a long prompt.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A conversation with a model: a KV cache, scratch buffers and settings. One generation at a time
/// (`&mut self`); open several sessions on one [`Model`] to generate in parallel.
pub struct Session {
    model: Arc<Model>,
    cache: KvCache,
    scratch: Scratch,
    /// The tokens whose keys and values are in the cache.
    history: Vec<TokenId>,
    cancel: Arc<AtomicBool>,
    /// The running generation's own token, if it has one.
    request_cancel: Option<CancelToken>,
    pool: ThreadPool,
    batch_size: usize,
    logits: Vec<f32>,
    prompt_threads: usize,
    gen_threads: usize,
    /// Bytes charged to the model's memory account for the KV cache and scratch.
    charged: u64,
    /// Prompt tokens a cut in the middle keeps (BOS, a chat's system prompt), for the call
    /// being made.
    protect: usize,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.model.memory_account().release(self.charged);
    }
}

/// Threads for the prompt and for generation.
fn thread_plan(params: &SessionParams) -> Result<(usize, usize)> {
    use crate::platform::Hardware;
    use crate::policy::{threads_for, Workload};
    match params.threads {
        0 => {
            let hw = Hardware::detect();
            Ok(if params.interactive {
                let n = threads_for(&hw, Workload::Interactive);
                (n, n)
            } else if params.background {
                let n = threads_for(&hw, Workload::BatchInference);
                (n, n)
            } else {
                (
                    threads_for(&hw, Workload::PromptProcessing),
                    threads_for(&hw, Workload::TokenGeneration),
                )
            })
        }
        n if n > crate::policy::threads::MAX_REQUESTED_THREADS => Err(Error::InvalidArgument(
            format!("{n} threads is absurd (at most 1024)"),
        )),
        n => {
            let n = crate::policy::threads::cap_threads(n);
            Ok((n, n))
        }
    }
}

impl Session {
    /// Opens a session on `model`.
    pub fn new(model: Arc<Model>, params: &SessionParams) -> Result<Session> {
        let hp = model.hparams();
        let explicit = params.context_size != 0;
        let mut n_ctx = crate::model::resolve_context(hp, params.context_size)?;
        if params.batch_size == 0 || params.batch_size > 1 << 16 {
            return Err(Error::InvalidArgument(format!(
                "batch_size {} must be in 1..=65536",
                params.batch_size
            )));
        }
        // The KV cache and scratch are charged to the model's memory account up front (the
        // cache grows as it is used, but its whole capacity is promised). Without an explicit
        // context, the default one shrinks (in steps of 256) to what the headroom allows.
        let account = model.memory_account().clone();
        let scratch_bytes = crate::model::scratch_bytes(hp, params.batch_size.min(n_ctx));
        let need = |n: usize| crate::model::kv_bytes(hp, n, params.kv_precision) + scratch_bytes;
        if !explicit {
            let room = account.headroom();
            while n_ctx > 256 && need(n_ctx) > room {
                n_ctx = (n_ctx - 1) / 256 * 256;
            }
            if n_ctx < crate::model::default_context(hp) {
                crate::log!(
                    crate::log::Level::Info,
                    "memory budget: the session's context is {n_ctx} tokens (default {})",
                    crate::model::default_context(hp)
                );
            }
        }
        let charged = need(n_ctx);
        account.charge(&format!("a session's {n_ctx}-token KV cache"), charged)?;
        let release = |r: Result<Session>| {
            if r.is_err() {
                account.release(charged);
            }
            r
        };
        release(Self::open(model.clone(), params, n_ctx, charged))
    }

    fn open(
        model: Arc<Model>,
        params: &SessionParams,
        n_ctx: usize,
        charged: u64,
    ) -> Result<Session> {
        let (prompt_threads, gen_threads) = thread_plan(params)?;
        let threads = prompt_threads.max(gen_threads);
        let hw_cpus = params
            .pin_threads
            .then(|| {
                crate::policy::threads::spread_cpus(&crate::platform::Hardware::detect(), threads)
            })
            .flatten();
        let cache = model.new_kv_cache(n_ctx, params.kv_precision);
        Ok(Session {
            model,
            cache,
            scratch: Scratch::default(),
            history: Vec::new(),
            cancel: Arc::new(AtomicBool::new(false)),
            request_cancel: None,
            pool: {
                let pool = ThreadPool::with_options(
                    threads,
                    crate::kernels::cpu::pool::DEFAULT_SPIN,
                    hw_cpus,
                )
                .map_err(|e| Error::Internal(format!("cannot start worker threads: {e}")))?;
                if params.background {
                    // Lowering our own threads' priority needs no privilege; a failure only
                    // means they keep the normal one.
                    let _ = pool.set_worker_nice(crate::policy::threads::BACKGROUND_NICE);
                }
                pool
            },
            prompt_threads,
            gen_threads,
            batch_size: params.batch_size,
            logits: Vec::new(),
            charged,
            protect: 1,
        })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The context size in tokens.
    pub fn context_size(&self) -> usize {
        self.cache.capacity()
    }

    /// Bytes the KV cache holds now (it grows with the positions used).
    pub fn kv_cache_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// Bytes charged to the model's memory account for this session (its whole KV capacity
    /// and scratch).
    pub fn charged_bytes(&self) -> u64 {
        self.charged
    }

    /// Threads used for prompt processing and for generation, the caller's included.
    pub fn threads(&self) -> (usize, usize) {
        (self.prompt_threads, self.gen_threads)
    }

    /// Uses `threads` threads for both phases from the next generation on (0 = the policy's
    /// choice again), e.g. when the power or thermal state changes.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an absurd count; [`Error::Internal`] when threads cannot
    /// be started.
    pub fn set_threads(&mut self, threads: usize) -> Result<()> {
        let (p, g) = thread_plan(&SessionParams {
            threads,
            ..SessionParams::default()
        })?;
        if p.max(g) > self.pool.size() {
            self.pool = ThreadPool::new(p.max(g))
                .map_err(|e| Error::Internal(format!("cannot start worker threads: {e}")))?;
        }
        self.prompt_threads = p;
        self.gen_threads = g;
        Ok(())
    }

    /// A handle that cancels this session's generations from any thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle(self.cancel.clone())
    }

    /// Forgets the conversation.
    pub fn reset(&mut self) {
        self.cache.clear();
        self.history.clear();
    }

    /// Runs the model over `tokens` appended to the cache and leaves the last token's logits in
    /// `self.logits`.
    fn eval(&mut self, tokens: &[TokenId]) -> Result<()> {
        // The power profile and the thermal cap may lower the threads (never raise them).
        let power = crate::policy::power::manager();
        self.pool.set_active(power.threads(if tokens.len() > 1 {
            self.prompt_threads
        } else {
            self.gen_threads
        }));
        if tokens.len() == 1 {
            let pause = power.knobs().decode_pause;
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
        let cancel = self.cancel.clone();
        let token = self.request_cancel.clone();
        let cancelled = move || {
            cancel.load(Ordering::Relaxed) || token.as_ref().is_some_and(CancelToken::is_cancelled)
        };
        for chunk in tokens.chunks(self.batch_size) {
            let mut seqs = [SeqBatch {
                cache: &mut self.cache,
                tokens: chunk,
                want_logits: true,
            }];
            let model = &self.model;
            model.forward(&mut seqs, &mut self.scratch, &self.pool, &cancelled)?;
            self.history.extend_from_slice(chunk);
        }
        self.logits.clear();
        self.logits.extend_from_slice(self.scratch.logits());
        Ok(())
    }

    /// The logits after evaluating `prompt_ids` from an empty context (for tests and tools).
    pub fn logits_for(&mut self, prompt_ids: &[TokenId]) -> Result<Vec<f32>> {
        if prompt_ids.is_empty() {
            return Err(Error::InvalidArgument("the prompt has no tokens".into()));
        }
        self.cancel.store(false, Ordering::SeqCst);
        self.reset();
        if prompt_ids.len() > self.cache.capacity() {
            return Err(Error::ContextOverflow {
                prompt: prompt_ids.len(),
                requested: 0,
                context: self.cache.capacity(),
            });
        }
        self.eval(prompt_ids)?;
        Ok(self.logits.clone())
    }

    /// Generates from any [`Prompt`]: [`Session::generate`] for text, [`Session::chat`] for
    /// messages, [`Session::generate_from_tokens`] for token ids.
    pub fn run(
        &mut self,
        prompt: &Prompt,
        params: &GenerateParams,
        on_token: impl FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<Generation> {
        match prompt {
            Prompt::Text(text) => self.generate(text, params, on_token),
            Prompt::Messages(messages) => self.chat(messages, params, on_token),
            Prompt::Tokens(ids) => self.generate_from_tokens(ids, params, on_token),
        }
    }

    /// Generates a reply to `prompt`, calling `on_token` for every token (return false to stop).
    ///
    /// A [`CancelHandle::cancel`] at any moment after the call starts (also while the prompt is
    /// tokenized) ends it with [`Error::Cancelled`].
    pub fn generate(
        &mut self,
        prompt: &str,
        params: &GenerateParams,
        on_token: impl FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<Generation> {
        self.begin();
        let ids = {
            let cancelled = self.cancelled_fn(params);
            self.model.tokenizer().encode_cancellable(
                prompt,
                params.add_special,
                params.parse_special,
                &cancelled,
            )
        };
        self.finish_call(ids, params, on_token)
    }

    /// Generates the assistant's reply to `messages` with the model's chat template.
    ///
    /// The template's markup becomes control tokens; text inside the messages does not, unless
    /// [`GenerateParams::parse_special_in_messages`] is set. A [`CancelHandle::cancel`] at any
    /// moment after the call starts (also while the template renders) ends it with
    /// [`Error::Cancelled`].
    pub fn chat(
        &mut self,
        messages: &[ChatMessage],
        params: &GenerateParams,
        on_token: impl FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<Generation> {
        self.begin();
        let ids = {
            let cancelled = self.cancelled_fn(params);
            chat_tokens(&self.model, messages, params, &cancelled)
        };
        self.protect = match &ids {
            Ok(ids) if params.overflow == super::Overflow::TruncateMiddle => {
                super::prompt::system_prefix_len(&self.model, messages, ids, params)
            }
            _ => 1,
        };
        self.finish_call(ids, params, on_token)
    }

    /// Generates from prompt token ids.
    pub fn generate_from_tokens(
        &mut self,
        prompt_ids: &[TokenId],
        params: &GenerateParams,
        on_token: impl FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<Generation> {
        self.begin();
        self.run_call(prompt_ids, params, on_token)
    }

    /// Starts a call: an earlier [`CancelHandle::cancel`] no longer counts, a later one does.
    fn begin(&mut self) {
        self.cancel.store(false, Ordering::SeqCst);
    }

    /// Whether the running call was cancelled, by the session's handle or by `params.cancel`.
    fn cancelled_fn(&self, params: &GenerateParams) -> impl Fn() -> bool {
        let cancel = self.cancel.clone();
        let token = params.cancel.clone();
        move || {
            cancel.load(Ordering::Relaxed) || token.as_ref().is_some_and(CancelToken::is_cancelled)
        }
    }

    fn finish_call(
        &mut self,
        ids: Result<Vec<TokenId>>,
        params: &GenerateParams,
        on_token: impl FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<Generation> {
        match ids {
            Ok(ids) => self.run_call(&ids, params, on_token),
            Err(e) => {
                if e.kind() == crate::ErrorKind::Cancelled {
                    self.model.metrics().record_error(&e);
                }
                Err(e)
            }
        }
    }

    fn run_call(
        &mut self,
        prompt_ids: &[TokenId],
        params: &GenerateParams,
        on_token: impl FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<Generation> {
        self.request_cancel = params.cancel.clone();
        let result = match &params.cancel {
            Some(t) if t.is_cancelled() => Err(Error::Cancelled),
            _ if self.cancel.load(Ordering::SeqCst) => Err(Error::Cancelled),
            _ => self.run_generation(prompt_ids, params, on_token),
        };
        self.request_cancel = None;
        let metrics = self.model.metrics();
        match &result {
            Ok(g) => metrics.record(g),
            Err(e) => metrics.record_error(e),
        }
        result
    }

    fn run_generation(
        &mut self,
        prompt_ids: &[TokenId],
        params: &GenerateParams,
        mut on_token: impl FnMut(&TokenEvent<'_>) -> bool,
    ) -> Result<Generation> {
        let start = Instant::now();
        Sampler::new(params.sampling.clone())?;
        if prompt_ids.is_empty() {
            return Err(Error::InvalidArgument(
                "the prompt has no tokens (empty text for a model that adds no BOS)".into(),
            ));
        }
        let n_ctx = self.cache.capacity();
        let protect = std::mem::replace(&mut self.protect, 1);
        let mut fitted = prompt_ids.to_vec();
        let mut dropped: Vec<super::Dropped> = super::overflow::fit_prompt(
            &mut fitted,
            params.max_tokens,
            n_ctx,
            protect,
            params.overflow,
            self.model.tokenizer(),
        )?
        .into_iter()
        .collect();
        let prompt_ids = &fitted[..];
        let vocab = self.model.hparams().n_vocab;
        if let Some(&bad) = prompt_ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }

        // The output's checks (a constraint compiled, its first mask started) come before the
        // prompt is read.
        let model = self.model.clone();
        let mut out = super::output::Output::new(model.tokenizer(), params)?;

        // Reuse the cached prefix shared with the previous conversation (at least one prompt token
        // is always evaluated, to get fresh logits).
        let common = self
            .history
            .iter()
            .zip(prompt_ids)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt_ids.len() - 1);
        self.cache.truncate(common);
        self.history.truncate(common);
        let t_prompt = Instant::now();
        let result = self.eval(&prompt_ids[common..]);
        if let Err(e) = result {
            // A pass that did not complete leaves the cache at the last completed chunk.
            self.history.truncate(self.cache.len());
            return Err(e);
        }
        let prompt_ms = t_prompt.elapsed().as_secs_f64() * 1e3;

        let mut ttft_ms = 0.0;
        let t_gen = Instant::now();
        while !out.is_full() {
            let next = out.step(&mut self.logits, &self.history, &mut on_token)?;
            if ttft_ms == 0.0 {
                ttft_ms = start.elapsed().as_secs_f64() * 1e3;
            }
            let Some(id) = next else { break };
            if self.history.len() >= n_ctx {
                // Full: only a shift goes on (fit_prompt let nothing else get here).
                let super::Overflow::Shift { keep } = params.overflow else {
                    return Err(Error::ContextOverflow {
                        prompt: prompt_ids.len(),
                        requested: params.max_tokens,
                        context: n_ctx,
                    });
                };
                let (mut kept, d) = super::overflow::shift(&self.history, keep);
                dropped.push(d);
                kept.push(id);
                self.cache.clear();
                self.history.clear();
                self.eval(&kept).inspect_err(|_| {
                    self.history.truncate(self.cache.len());
                })?;
                continue;
            }
            self.eval(&[id]).inspect_err(|_| {
                self.history.truncate(self.cache.len());
            })?;
        }
        out.finish(&mut on_token);
        let gen_ms = t_gen.elapsed().as_secs_f64() * 1e3;
        let n_eval = prompt_ids.len() - common;
        Ok(Generation {
            prompt_ids: prompt_ids.to_vec(),
            timings: Timings {
                prompt_tokens: prompt_ids.len(),
                cached_tokens: common,
                prompt_ms,
                prompt_tok_s: rate(n_eval, prompt_ms),
                generated_tokens: out.generated.len(),
                gen_ms,
                // The first token comes from the prompt's logits; the rest each cost a pass.
                gen_tok_s: rate(out.generated.len().saturating_sub(1), gen_ms),
                ttft_ms,
                queue_ms: 0.0,
            },
            generated_ids: std::mem::take(&mut out.generated),
            text: std::mem::take(&mut out.text),
            stop_reason: out.stop_reason,
            logprobs: std::mem::take(&mut out.logprobs),
            dropped,
        })
    }
}

fn rate(n: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        n as f64 * 1e3 / ms
    } else {
        0.0
    }
}
