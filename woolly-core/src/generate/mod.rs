//! Generation: sampling, and the session that ties a model, its KV cache and the sampler together.

mod figures;
pub(crate) mod output;
mod pool;
mod prompt;
pub mod sampler;
mod session;

// The types of the session's own parameters, where its callers look for them.
pub use crate::chat::ChatMessage;
pub use crate::model::KvPrecision;
pub use pool::{PooledSession, SessionPool};
pub use prompt::Prompt;
pub use sampler::{Sampler, SamplingParams};
pub use session::{
    chat_prompt, chat_tokens, CancelHandle, CancelToken, GenerateParams, Generation, Session,
    SessionParams, StopReason, Timings, TokenEvent,
};
