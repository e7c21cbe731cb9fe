//! What a session is opened with ([`SessionParams`]) and what one generation asks for
//! ([`GenerateParams`], with its [`CancelToken`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::constraint::Constraint;
use super::overflow::Overflow;
use super::sampler::SamplingParams;
use crate::model::KvPrecision;
use crate::policy::ThreadPolicy;

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
    /// warning in the log); `Session::threads` reports what runs.
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
    /// generation starts (it then fails at once), unlike `Session::cancel_handle`, which stops
    /// whatever runs at that moment.
    pub cancel: Option<CancelToken>,
    /// What the output must match (a JSON schema, a grammar, a regular expression, a choice);
    /// generation ends when the output is complete. Checked before the prompt is read.
    pub constraint: Option<Constraint>,
    /// Report each generated token's log probability and this many of the most likely
    /// alternatives (0..=20); `None` reports nothing.
    pub logprobs: Option<usize>,
    /// When the prompt and `max_tokens` exceed the context: an error (the default), a cut in
    /// the prompt's middle, or a rolling window (see [`Overflow`]); what was dropped is in
    /// [`Generation::dropped`](super::Generation::dropped).
    pub overflow: Overflow,
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
            constraint: None,
            logprobs: None,
            overflow: Overflow::Error,
        }
    }
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
