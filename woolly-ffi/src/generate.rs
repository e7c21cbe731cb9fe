//! Generation: what to generate (`woolly_generate_params`, with its constraint and log
//! probabilities), how it ended (`woolly_stop_reason`, `woolly_result`), each token's log
//! probabilities (`woolly_token_logprobs`, `woolly_current_logprobs`), and `woolly_generate` on
//! the sessions a model keeps for it.

use std::cell::Cell;
use std::ffi::{c_char, c_void};

use woolly_core::generate::{
    ChatMessage, Constraint, GenerateParams, Generation, Prompt, SamplingParams, Session,
    StopReason, TokenLogprob, TopLogprob,
};

use crate::boundary::{
    fail, guard, optional_str, required, required_array, required_str, text_ptr, Failure,
};
use crate::model::woolly_model;
use crate::status::woolly_status;
use crate::status::woolly_status::WOOLLY_ERR_INVALID_ARGUMENT;
use crate::status::WOOLLY_SEED_RANDOM;

/// Receives each piece of generated text (`piece[0..len]`, UTF-8, not NUL-terminated; a piece
/// may be empty while a character or a possible stop string is incomplete, and `piece` then
/// points to a valid empty string, never NULL) with the token id. `piece` is valid only during
/// the call. When the params asked for `logprobs`, [`woolly_current_logprobs`] gives this
/// token's log probabilities during the call.
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
    /// What the output must match, as the JSON every front end spells a constraint with (one
    /// NUL-terminated UTF-8 string): `{"json_schema": {...}}` (a JSON Schema), `"json_object"`
    /// (any JSON object), `{"gbnf": "root ::= ..."}` (a grammar in llama.cpp's GBNF),
    /// `{"lark": "start: ..."}`, `{"regex": "[0-9]+"}` (the whole output matches it) or
    /// `{"choice": ["yes", "no"]}` (exactly one of them). Generation ends when the output is
    /// complete. NULL (the default): no constraint. JSON that is not one of these, an
    /// unsupported schema keyword or a malformed grammar or expression is
    /// `WOOLLY_ERR_INVALID_ARGUMENT` (with a message) before anything is generated. Read during
    /// the call only. (Added in ABI 5.)
    pub constraint_json: *const c_char,
    /// -1 (the default): no log probabilities; 0 to 20: each generated token's log probability
    /// and this many of the most likely alternatives, read with [`woolly_current_logprobs`]
    /// in the token callback (or from `woolly_event.logprobs`). Other values:
    /// `WOOLLY_ERR_INVALID_ARGUMENT`. (Added in ABI 5.)
    pub logprobs: i32,
}

/// Defaults: 256 tokens, temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalty, a
/// random seed, no stop strings, no constraint (`constraint_json` NULL), no log probabilities
/// (`logprobs` -1).
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
        constraint_json: std::ptr::null(),
        logprobs: -1,
    }
}

/// The constraint `constraint_json` spells (NULL: none).
fn constraint(p: *const c_char) -> Result<Option<Constraint>, Failure> {
    let Some(text) = optional_str(p, "constraint_json")? else {
        return Ok(None);
    };
    serde_json::from_str(text).map(Some).map_err(|e| {
        Failure(
            WOOLLY_ERR_INVALID_ARGUMENT,
            format!(
                "constraint_json is not a constraint ({e}); expected {{\"json_schema\": {{...}}}}, \
                 \"json_object\", {{\"gbnf\": \"...\"}}, {{\"lark\": \"...\"}}, \
                 {{\"regex\": \"...\"}} or {{\"choice\": [\"...\"]}}"
            ),
        )
    })
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
    let logprobs = match p.logprobs {
        -1 => None,
        n if n >= 0 => Some(n as usize),
        n => {
            return fail(
                WOOLLY_ERR_INVALID_ARGUMENT,
                format!("logprobs = {n}: -1 turns them off, 0 to 20 asks for them"),
            )
        }
    };
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
        constraint: constraint(p.constraint_json)?,
        logprobs,
        ..Default::default()
    })
}

/// One token and its log probability. (Added in ABI 5.)
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct woolly_logprob {
    pub id: i32,
    /// Natural logarithm of the token's probability in the model's distribution (a softmax of
    /// the raw logits, before sampling filters, penalties or a constraint).
    pub logprob: f32,
    /// The token's bytes, `bytes_len` of them, not NUL-terminated and not always valid UTF-8 on
    /// their own (a character may span tokens); a valid empty string, never NULL, when empty.
    pub bytes: *const c_char,
    pub bytes_len: usize,
}

/// The log probabilities of one generated token: the token chosen, and the `n_top_logprobs`
/// most likely tokens of that step, best first (as many as the params' `logprobs` asked for).
/// (Added in ABI 5.)
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct woolly_token_logprobs {
    pub chosen: woolly_logprob,
    /// NULL when `n_top_logprobs` is 0.
    pub top_logprobs: *const woolly_logprob,
    pub n_top_logprobs: usize,
}

thread_local! {
    /// The log probabilities of the token whose callback runs on this thread now.
    static CURRENT: Cell<*const woolly_token_logprobs> = const { Cell::new(std::ptr::null()) };
}

fn logprob(t: &TopLogprob) -> woolly_logprob {
    woolly_logprob {
        id: t.id as i32,
        logprob: t.logprob,
        bytes: if t.bytes.is_empty() {
            c"".as_ptr()
        } else {
            t.bytes.as_ptr() as *const c_char
        },
        bytes_len: t.bytes.len(),
    }
}

/// Runs `f` (which calls the host's callback) with `lp` as C sees it: the pointer `f` gets
/// (NULL without `lp`), and [`woolly_current_logprobs`] on this thread, both valid until `f`
/// returns.
pub(crate) fn with_logprobs<R>(
    lp: Option<&TokenLogprob>,
    f: impl FnOnce(*const woolly_token_logprobs) -> R,
) -> R {
    let top: Vec<woolly_logprob> =
        lp.map_or_else(Vec::new, |lp| lp.top.iter().map(logprob).collect());
    let view = lp.map(|lp| woolly_token_logprobs {
        chosen: logprob(&lp.chosen),
        top_logprobs: if top.is_empty() {
            std::ptr::null()
        } else {
            top.as_ptr()
        },
        n_top_logprobs: top.len(),
    });
    let ptr = view
        .as_ref()
        .map_or(std::ptr::null(), |v| v as *const woolly_token_logprobs);
    /// Puts back what was current before (a callback may run a generation of its own).
    struct Restore(*const woolly_token_logprobs);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(ptr)));
    f(ptr)
}

/// The log probabilities of the token being delivered, called from inside a token callback
/// (`woolly_token_callback`, also `woolly_engine_generate`'s) or an engine's TOKEN event: the
/// chosen token and its most likely alternatives. NULL when the generation did not ask for
/// them (`logprobs` -1) or outside such a callback. Owned by Woolly and valid only until the
/// callback returns (copy what you keep); only on the thread that runs the callback.
#[no_mangle]
pub extern "C" fn woolly_current_logprobs() -> *const woolly_token_logprobs {
    CURRENT.with(|c| c.get())
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
        Some(f) => with_logprobs(ev.logprob, |_| {
            f(text_ptr(ev.text), ev.text.len(), ev.id as i32, user_data)
        }),
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
