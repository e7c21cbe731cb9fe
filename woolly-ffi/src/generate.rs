//! Generation: what to generate (`woolly_generate_params`), how it ended (`woolly_stop_reason`,
//! `woolly_result`), and `woolly_generate` on the sessions a model keeps for it.

use std::ffi::{c_char, c_void};

use woolly_core::generate::{
    ChatMessage, GenerateParams, Generation, Prompt, SamplingParams, Session, StopReason,
};

use crate::boundary::{guard, required, required_array, required_str, text_ptr, Failure};
use crate::model::woolly_model;
use crate::status::woolly_status;
use crate::status::WOOLLY_SEED_RANDOM;

/// Receives each piece of generated text (`piece[0..len]`, UTF-8, not NUL-terminated; a piece
/// may be empty while a character or a possible stop string is incomplete, and `piece` then
/// points to a valid empty string, never NULL) with the token id. `piece` is valid only during
/// the call.
/// Return false to stop generating. Called on the thread that called the generate function.
pub type woolly_token_callback = Option<
    extern "C" fn(piece: *const c_char, len: usize, id: i32, user_data: *mut c_void) -> bool,
>;

/// What to generate. Start from [`woolly_generate_default_params`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct woolly_generate_params {
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// 0 is greedy.
    pub temperature: f32,
    /// 0 keeps every token.
    pub top_k: u32,
    /// 1 turns nucleus sampling off.
    pub top_p: f32,
    /// 0 turns min-p off.
    pub min_p: f32,
    /// 1 turns the repetition penalty off.
    pub repeat_penalty: f32,
    /// Subtracted from a recent token's logit once per occurrence (0: off).
    pub frequency_penalty: f32,
    /// Subtracted from the logit of every recent token (0: off).
    pub presence_penalty: f32,
    /// How many of the latest tokens the penalties look at.
    pub penalty_last_n: u32,
    /// The same seed, prompt and settings give the same text; [`WOOLLY_SEED_RANDOM`] draws one.
    pub seed: u64,
    /// `n_stop` stop strings (NUL-terminated UTF-8); generation ends before the first one.
    pub stop: *const *const c_char,
    pub n_stop: usize,
    /// Keep going past end-of-generation tokens.
    pub ignore_eos: bool,
    /// Treat the prompt as one user message and apply the model's chat template.
    pub chat: bool,
    /// In a chat (`chat`, [`woolly_session_chat`]), also turn special-token text inside the
    /// messages, such as `<end_of_turn>`, into control tokens. False by default: message text is
    /// tokenized as text, so untrusted content cannot forge a turn; the chat template's own
    /// markup is always parsed. (Added in ABI 3.)
    pub parse_special_in_messages: bool,
}

/// Defaults: 256 tokens, temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalty, a
/// random seed, no stop strings.
#[no_mangle]
pub extern "C" fn woolly_generate_default_params() -> woolly_generate_params {
    let s = SamplingParams::default();
    woolly_generate_params {
        max_tokens: 256,
        temperature: s.temperature,
        top_k: s.top_k as u32,
        top_p: s.top_p,
        min_p: s.min_p,
        repeat_penalty: s.repetition_penalty,
        frequency_penalty: s.frequency_penalty,
        presence_penalty: s.presence_penalty,
        penalty_last_n: s.penalty_last_n as u32,
        seed: WOOLLY_SEED_RANDOM,
        stop: std::ptr::null(),
        n_stop: 0,
        ignore_eos: false,
        chat: false,
        parse_special_in_messages: false,
    }
}

pub(crate) fn generate_params(p: &woolly_generate_params) -> Result<GenerateParams, Failure> {
    let ptrs = required_array(
        p.stop,
        p.n_stop,
        "stop is NULL while n_stop > 0",
        1024,
        "stop strings",
    )?;
    let mut stop = Vec::with_capacity(ptrs.len());
    for (i, &s) in ptrs.iter().enumerate() {
        stop.push(required_str(s, &format!("stop[{i}]"))?.to_string());
    }
    Ok(GenerateParams {
        max_tokens: p.max_tokens as usize,
        sampling: SamplingParams {
            temperature: p.temperature,
            top_k: p.top_k as usize,
            top_p: p.top_p,
            min_p: p.min_p,
            repetition_penalty: p.repeat_penalty,
            frequency_penalty: p.frequency_penalty,
            presence_penalty: p.presence_penalty,
            penalty_last_n: p.penalty_last_n as usize,
            seed: (p.seed != WOOLLY_SEED_RANDOM).then_some(p.seed),
            ..Default::default()
        },
        stop,
        ignore_eos: p.ignore_eos,
        parse_special_in_messages: p.parse_special_in_messages,
        ..Default::default()
    })
}

/// How a generation ended.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_stop_reason {
    /// No generation has finished on this session yet (or the last one failed).
    WOOLLY_STOP_NONE = 0,
    /// `max_tokens` were generated.
    WOOLLY_STOP_MAX_TOKENS = 1,
    /// The model produced an end-of-generation token.
    WOOLLY_STOP_END_OF_GENERATION = 2,
    /// The text reached one of the stop strings.
    WOOLLY_STOP_STOP_STRING = 3,
    /// The token callback returned false.
    WOOLLY_STOP_CALLBACK = 4,
}

/// What the last successful generation on a session did (see [`woolly_session_last_result`]).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct woolly_result {
    pub stop_reason: woolly_stop_reason,
    /// Tokens of the prompt, and how many of them came from the session's cache.
    pub prompt_tokens: u32,
    pub cached_tokens: u32,
    /// Tokens generated.
    pub generated_tokens: u32,
    /// Milliseconds spent on the prompt and on generation, and from the call to the first token.
    pub prompt_ms: f64,
    pub generation_ms: f64,
    pub ttft_ms: f64,
    /// Prompt and generation speed, tokens per second.
    pub prompt_tok_s: f64,
    pub generation_tok_s: f64,
    /// Milliseconds an engine request waited before it started (0 for sessions).
    pub queue_ms: f64,
}

impl woolly_result {
    pub(crate) fn none() -> woolly_result {
        woolly_result {
            stop_reason: woolly_stop_reason::WOOLLY_STOP_NONE,
            prompt_tokens: 0,
            cached_tokens: 0,
            generated_tokens: 0,
            prompt_ms: 0.0,
            generation_ms: 0.0,
            ttft_ms: 0.0,
            prompt_tok_s: 0.0,
            generation_tok_s: 0.0,
            queue_ms: 0.0,
        }
    }

    pub(crate) fn from(g: &Generation) -> woolly_result {
        let t = &g.timings;
        woolly_result {
            stop_reason: match g.stop_reason {
                StopReason::MaxTokens => woolly_stop_reason::WOOLLY_STOP_MAX_TOKENS,
                StopReason::EndOfGeneration => woolly_stop_reason::WOOLLY_STOP_END_OF_GENERATION,
                StopReason::StopString => woolly_stop_reason::WOOLLY_STOP_STOP_STRING,
                StopReason::Callback => woolly_stop_reason::WOOLLY_STOP_CALLBACK,
            },
            prompt_tokens: t.prompt_tokens as u32,
            cached_tokens: t.cached_tokens as u32,
            generated_tokens: t.generated_tokens as u32,
            prompt_ms: t.prompt_ms,
            generation_ms: t.gen_ms,
            ttft_ms: t.ttft_ms,
            prompt_tok_s: t.prompt_tok_s,
            generation_tok_s: t.gen_tok_s,
            queue_ms: t.queue_ms,
        }
    }
}

/// Runs one generation on `session` and streams it to `on_token`.
pub(crate) fn run(
    session: &mut Session,
    prompt: Prompt,
    params: &woolly_generate_params,
    on_token: woolly_token_callback,
    user_data: *mut c_void,
) -> Result<Generation, Failure> {
    let gp = generate_params(params)?;
    let mut cb = |ev: &woolly_core::generate::TokenEvent<'_>| match on_token {
        Some(f) => f(text_ptr(ev.text), ev.text.len(), ev.id as i32, user_data),
        None => true,
    };
    let prompt = match prompt {
        Prompt::Text(p) if params.chat => Prompt::Messages(vec![ChatMessage::new("user", p)]),
        p => p,
    };
    Ok(session.run(&prompt, &gp, &mut cb)?)
}

/// Generates a reply to the UTF-8 `prompt` on a session the model keeps for these calls
/// (threads as the model was loaded with; concurrent calls each get their own), calling `on_token` (may be NULL) for each piece. Blocks until done. To cancel,
/// return false from `on_token`; to cancel also during the prompt, use a session and
/// [`woolly_abort`].
///
/// # Safety
/// `model` is a live handle; `prompt` a NUL-terminated string; the pointers inside `params`
/// valid as documented there.
#[no_mangle]
pub unsafe extern "C" fn woolly_generate(
    model: *const woolly_model,
    prompt: *const c_char,
    params: woolly_generate_params,
    on_token: woolly_token_callback,
    user_data: *mut c_void,
) -> woolly_status {
    guard(|| {
        let m = required(model, "model")?;
        let prompt = required_str(prompt, "prompt")?;
        let mut session = m.generate_pool()?.acquire()?;
        run(
            &mut session,
            Prompt::Text(prompt.to_string()),
            &params,
            on_token,
            user_data,
        )
        .map(|_| ())
    })
}
