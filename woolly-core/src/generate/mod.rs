//! Generation: the KV cache, sampling, chat templates and the session that ties them together.

pub mod chat;
pub mod jinja;
pub mod kv_cache;
pub(crate) mod output;
mod pool;
pub mod sampler;
mod session;

pub use chat::{BuiltinTemplate, ChatMessage, ChatTemplate};
pub use kv_cache::{KvCache, KvPrecision};
pub use pool::{PooledSession, SessionPool};
pub use sampler::{Sampler, SamplingParams};
pub use session::{
    chat_prompt, chat_tokens, CancelHandle, CancelToken, GenerateParams, Generation, Session,
    SessionParams, StopReason, Timings, TokenEvent,
};
