//! What a generation gives back: each step as the token callback sees it ([`TokenEvent`]),
//! and at the end the [`Generation`] with its [`Timings`] and [`StopReason`].

use serde::Serialize;

use super::logprobs::TokenLogprob;
use super::overflow::Dropped;
use crate::tokenizer::TokenId;

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
    /// Each generated token's log probabilities, when [`GenerateParams::logprobs`] asked for
    /// them (else empty).
    ///
    /// [`GenerateParams::logprobs`]: super::GenerateParams::logprobs
    pub logprobs: Vec<TokenLogprob>,
    /// Tokens dropped to fit the context (by [`GenerateParams::overflow`]), in order; empty
    /// when everything fit.
    ///
    /// [`GenerateParams::overflow`]: super::GenerateParams::overflow
    pub dropped: Vec<Dropped>,
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
    /// The token's log probabilities, when the generation asked for them.
    pub logprob: Option<&'a TokenLogprob>,
}
