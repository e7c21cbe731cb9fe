//! Generation: sampling, and the session that ties a model, its KV cache and the sampler together.
//!
//! - `params`: what a session is opened with and what a generation asks for;
//! - `prompt`: what a generation continues (text, messages, tokens) and chat prompts;
//! - `sampler`: choosing the next token; `constraint`: output that must match a schema or a
//!   grammar; `logprobs`: the probabilities of the chosen token and its alternatives;
//!   `output`: what happens to each generated token;
//! - `generation`: what a generation gives back; `figures`: its figures for the metrics;
//! - `session`: one conversation's KV cache and the generation loop; `pool`: idle sessions
//!   kept for reuse.

pub mod constraint;
mod figures;
mod generation;
pub mod logprobs;
pub(crate) mod output;
pub mod overflow;
mod params;
mod pool;
pub(crate) mod prompt;
pub mod sampler;
mod session;

// The types of the session's own parameters, where its callers look for them.
pub use crate::chat::ChatMessage;
pub use crate::model::KvPrecision;
pub use constraint::Constraint;
pub use generation::{Generation, StopReason, Timings, TokenEvent};
pub use logprobs::{TokenLogprob, TopLogprob};
pub use overflow::{Dropped, Overflow};
pub use params::{CancelToken, GenerateParams, SessionParams};
pub use pool::{PooledSession, SessionPool};
pub use prompt::{chat_prompt, chat_tokens, chat_tokens_with_tools, Prompt};
pub use sampler::{Sampler, SamplingParams};
pub use session::{CancelHandle, Session};
