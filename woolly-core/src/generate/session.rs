//! A session: one conversation's KV cache and the generation loop over it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::sampler::{Sampler, SamplingParams};
use crate::chat::{ChatMessage, ChatTemplate};
use crate::kernels::cpu::ThreadPool;
use crate::model::{KvCache, KvPrecision, Model, Scratch, SeqBatch};
use crate::policy::ThreadPolicy;
use crate::tokenizer::TokenId;
use crate::{Error, Result};

/// How to open a session. Params compare equal when sessions opened with them behave alike
/// (front ends key their session pools by them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionParams {
    /// Context size in tokens (0 = the smaller of 4096 and the model's trained context, less
    /// when the memory budget has no room for that much KV cache).
    pub context_size: usize,
    /// How the KV cache stores keys and values (f16 by default, as llama.cpp does).
    pub kv_precision: KvPrecision,
    /// Threads for everything, the caller's included (0 = Woolly's policy per phase, see
    /// [`crate::policy::threads`]: one per physical core for the prompt, capped for generation).
    /// An explicit count above the CPUs available to the process is capped there (with a
    /// warning in the log); [`Session::threads`] reports what runs.
    pub threads: usize,
    /// Inside an application with a UI: leave a core to it (never fewer than one thread).
    pub interactive: bool,
    /// Background work: the worker threads run at a lower priority (nice 10).
    pub background: bool,
    /// Pin worker threads to distinct physical cores (Linux). Off by default: on a desktop,
    /// other programs compete for the cores and the scheduler places threads better.
    pub pin_threads: bool,
    /// Tokens of a prompt processed per forward pass; cancellation is checked between layers.
    pub batch_size: usize,
}

impl Default for SessionParams {
    fn default() -> Self {
        SessionParams {
            context_size: 0,
            kv_precision: KvPrecision::F16,
            threads: 0,
            interactive: false,
            background: false,
            pin_threads: false,
            batch_size: 512,
        }
    }
}

impl SessionParams {
    /// The thread policy `interactive` and `background` spell.
    pub fn thread_policy(&self) -> ThreadPolicy {
        match (self.interactive, self.background) {
            (_, true) => ThreadPolicy::Background,
            (true, false) => ThreadPolicy::Interactive,
            (false, false) => ThreadPolicy::Auto,
        }
    }

    /// Sets `interactive` and `background` as `policy` says.
    pub fn set_thread_policy(&mut self, policy: ThreadPolicy) {
        (self.interactive, self.background) = policy.flags();
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateParams {
    /// Most tokens to generate.
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Generation stops when the text contains one of these; the stop string is not returned.
    pub stop: Vec<String>,
    /// Keep going past end-of-generation tokens.
    pub ignore_eos: bool,
    /// Add BOS (as the model asks) to the prompt.
    pub add_special: bool,
    /// Parse special-token text such as `<start_of_turn>` in a text prompt. (Chat templates'
    /// own markup is always parsed; for the messages' text see `parse_special_in_messages`.)
    pub parse_special: bool,
    /// In a chat, also turn special-token text inside the messages (their roles and content)
    /// into control tokens. Off by default: a message that spells `<end_of_turn>` or
    /// `<|im_start|>` is tokenized as that text, so untrusted content cannot forge a turn; only
    /// the chat template's own markup becomes control tokens.
    pub parse_special_in_messages: bool,
    /// A token that cancels this generation only, whenever it is cancelled: also before the
    /// generation starts (it then fails at once), unlike [`Session::cancel_handle`], which stops
    /// whatever runs at that moment.
    pub cancel: Option<CancelToken>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams {
            max_tokens: 256,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            ignore_eos: false,
            add_special: true,
            parse_special: true,
            parse_special_in_messages: false,
            cancel: None,
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `max_tokens` were generated.
    MaxTokens,
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// The text reached one of the stop strings.
    StopString,
    /// The token callback returned false.
    Callback,
}

/// Timings of one generation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub prompt_tokens: usize,
    /// Prompt tokens taken from the cache of the previous generation instead of computed.
    pub cached_tokens: usize,
    pub prompt_ms: f64,
    pub prompt_tok_s: f64,
    pub generated_tokens: usize,
    pub gen_ms: f64,
    pub gen_tok_s: f64,
    /// From the call (or the submission to an engine) to the first generated token.
    pub ttft_ms: f64,
    /// Time an engine's request waited in the queue before it started (0 for a session).
    pub queue_ms: f64,
}

/// The result of a generation.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    pub prompt_ids: Vec<TokenId>,
    pub generated_ids: Vec<TokenId>,
    pub text: String,
    pub stop_reason: StopReason,
    pub timings: Timings,
}

/// One step of a generation, as the token callback sees it.
#[derive(Debug)]
pub struct TokenEvent<'a> {
    pub id: TokenId,
    /// Text that became final with this token (may be empty: a UTF-8 character or a possible stop
    /// string can be waiting for the next tokens).
    pub text: &'a str,
    /// Index of this token among the generated ones.
    pub index: usize,
}

/// Cancels one request's generation from any thread (see [`GenerateParams::cancel`]).
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not cancelled yet.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancels the generation that carries this token (now, or as soon as it starts).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

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
        self.logits.extend_from_slice(&self.scratch.logits);
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
        if prompt_ids.len().saturating_add(params.max_tokens) > n_ctx {
            return Err(Error::ContextOverflow {
                prompt: prompt_ids.len(),
                requested: params.max_tokens,
                context: n_ctx,
            });
        }
        let vocab = self.model.hparams().n_vocab;
        if let Some(&bad) = prompt_ids.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }

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

        let model = self.model.clone();
        let mut out = super::output::Output::new(model.tokenizer(), params)?;
        let mut ttft_ms = 0.0;
        let t_gen = Instant::now();
        while !out.is_full() {
            let next = out.step(&mut self.logits, &self.history, &mut on_token)?;
            if ttft_ms == 0.0 {
                ttft_ms = start.elapsed().as_secs_f64() * 1e3;
            }
            let Some(id) = next else { break };
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
        })
    }
}

/// The prompt text for `messages` with the model's chat template, without the BOS text a
/// template writes itself when the tokenizer adds BOS (`add_special`): it would come twice.
///
/// This is the text as the template wrote it: tokenizing it with `parse_special` also turns
/// special-token text inside the messages into control tokens. [`chat_tokens`] does not.
pub fn chat_prompt(model: &Model, messages: &[ChatMessage], add_special: bool) -> Result<String> {
    let prompt = model.apply_chat_template(messages)?;
    Ok(strip_bos(model, prompt, add_special))
}

fn strip_bos(model: &Model, mut prompt: String, add_special: bool) -> String {
    if let Some(bos) = model.tokenizer().bos() {
        if let Ok(b) = model.tokenizer().piece(bos, true) {
            let b = String::from_utf8_lossy(&b).into_owned();
            if !b.is_empty() && prompt.starts_with(&b) && add_special {
                prompt.drain(..b.len());
            }
        }
    }
    prompt
}

/// The prompt tokens for `messages`: the model's chat template rendered and tokenized, its own
/// markup parsed for special tokens, the messages' text not (unless
/// [`GenerateParams::parse_special_in_messages`]). BOS as `params.add_special` says. Returns
/// [`Error::Cancelled`] soon after `cancelled` turns true, also in the middle of the render or
/// of the tokenization.
///
/// How the messages' text is kept apart: before the render, a Unicode noncharacter that occurs
/// nowhere else (not in the template, the messages or the vocabulary) is put before every place
/// in the messages where a control token's text begins; after the render, the tokenizer removes
/// these marks and lets no control token begin where one stood. Messages without control-token
/// text are passed unchanged, and the marks sit before the tokens' texts, so templates that
/// trim, split, search or compare the messages work as before; only a template that slices or
/// measures a message spelling a control token sees its marks.
pub fn chat_tokens(
    model: &Model,
    messages: &[ChatMessage],
    params: &GenerateParams,
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<TokenId>> {
    let tok = model.tokenizer();
    if params.parse_special_in_messages {
        let prompt = model.apply_chat_template_cancellable(messages, cancelled)?;
        let prompt = strip_bos(model, prompt, params.add_special);
        return tok.encode_cancellable(&prompt, params.add_special, true, cancelled);
    }
    let source = match model.chat_template() {
        ChatTemplate::Jinja(s) => s.as_str(),
        ChatTemplate::Builtin(_) => "",
    };
    let texts = messages
        .iter()
        .flat_map(|m| [m.role.as_str(), m.content.as_str()])
        .chain([source]);
    let mark = tok.special_mark(texts).ok_or_else(|| {
        Error::InvalidArgument(
            "the messages use every Unicode noncharacter; set parse_special_in_messages".into(),
        )
    })?;
    let marked: Vec<ChatMessage> = messages
        .iter()
        .map(|m| ChatMessage {
            role: tok.mark_special(&m.role, mark),
            content: tok.mark_special(&m.content, mark),
        })
        .collect();
    let prompt = model.apply_chat_template_cancellable(&marked, cancelled)?;
    let prompt = strip_bos(model, prompt, params.add_special);
    tok.encode_marked(&prompt, params.add_special, mark, cancelled)
}

fn rate(n: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        n as f64 * 1e3 / ms
    } else {
        0.0
    }
}
