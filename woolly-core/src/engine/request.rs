//! The request types: what a caller submits ([`Request`]), what [`Engine::prepare`] makes of
//! it ([`Prepared`]), what waits in the queue ([`Waiting`]), and what comes back (the
//! [`Event`]s of a [`RequestHandle`], each request known by its id).
//!
//! [`Engine::prepare`]: super::Engine::prepare

use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::chat::ChatMessage;
pub use crate::generate::Prompt;
use crate::generate::{CancelToken, GenerateParams, Generation};
use crate::tokenizer::TokenId;
use crate::{Error, Result};

/// How urgent a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Background work (summaries, indexing).
    Low = 0,
    #[default]
    Normal = 1,
    /// What the user waits for.
    High = 2,
    /// Ahead of everything.
    Critical = 3,
}

impl Priority {
    /// The name front ends use: `low`, `normal`, `high`, `critical`.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }

    /// The priority called `name`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for another name.
    pub fn from_name(name: &str) -> Result<Priority> {
        [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Critical,
        ]
        .into_iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "priority must be low, normal, high or critical, not {name:?}"
            ))
        })
    }
}

/// One request to the engine.
#[derive(Debug, Clone)]
pub struct Request {
    pub prompt: Prompt,
    pub params: GenerateParams,
    pub priority: Priority,
    /// Someone waits for the first token (autocomplete, a chat reply): ahead of others of the
    /// same priority, and urgent (see [the engine's documentation](super)).
    pub latency_sensitive: bool,
    /// The request fails with [`Error::DeadlineExceeded`] if it has not finished by then.
    pub deadline: Option<Instant>,
}

impl Request {
    /// A Normal-priority request for `text` with `params`.
    pub fn text(text: impl Into<String>, params: GenerateParams) -> Request {
        Request {
            prompt: Prompt::Text(text.into()),
            params,
            priority: Priority::Normal,
            latency_sensitive: false,
            deadline: None,
        }
    }

    /// A Normal-priority chat request.
    pub fn chat(messages: Vec<ChatMessage>, params: GenerateParams) -> Request {
        Request {
            prompt: Prompt::Messages(messages),
            ..Request::text("", params)
        }
    }

    /// This request with `priority`.
    pub fn with_priority(mut self, priority: Priority) -> Request {
        self.priority = priority;
        self
    }

    /// This request, latency-sensitive.
    pub fn latency_sensitive(mut self) -> Request {
        self.latency_sensitive = true;
        self
    }

    /// This request with a deadline `after` from now.
    pub fn with_timeout(mut self, after: Duration) -> Request {
        self.deadline = Some(Instant::now() + after);
        self
    }
}

/// What a request reports, in order: tokens, then exactly one `Done` or `Error`.
#[derive(Debug)]
pub enum Event {
    /// A generated token and the text it made final (may be empty).
    Token {
        id: TokenId,
        text: String,
        index: usize,
        /// Its log probabilities, when the request asked for them.
        logprob: Option<crate::generate::TokenLogprob>,
    },
    /// The request finished; `timings.queue_ms` says how long it waited to start.
    Done(Generation),
    /// The request failed, was cancelled, or its deadline passed.
    Error(Error),
}

/// Receives a request's events on the engine's worker thread (keep it quick).
pub type EventSink = Box<dyn FnMut(Event) + Send>;

/// A request checked and tokenized by [`Engine::prepare`], for [`Engine::enqueue`].
///
/// [`Engine::prepare`]: super::Engine::prepare
/// [`Engine::enqueue`]: super::Engine::enqueue
pub struct Prepared {
    pub(super) id: u64,
    pub(super) prompt_ids: Vec<TokenId>,
    pub(super) params: GenerateParams,
    pub(super) priority: Priority,
    pub(super) latency_sensitive: bool,
    pub(super) deadline: Option<Instant>,
    /// The output, built (its constraint compiled, the first mask started) off the worker.
    pub(super) out:
        Option<crate::generate::output::Output<crate::generate::output::ModelTokenizer>>,
    /// What a cut in the prompt's middle dropped to fit the context.
    pub(super) dropped: Option<crate::generate::Dropped>,
}

impl Prepared {
    /// The id the request will have (unique within its engine).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The prompt's tokens.
    pub fn prompt_ids(&self) -> &[TokenId] {
        &self.prompt_ids
    }

    /// Whether the request is urgent (High or Critical, or latency-sensitive): it preempts a
    /// step of less urgent work, and reads its prompt in a step of its own.
    pub(super) fn urgent(&self) -> bool {
        self.priority >= Priority::High || self.latency_sensitive
    }
}

/// A request in the queue: as prepared, with what delivers its answer.
pub(super) struct Waiting {
    pub(super) req: Prepared,
    pub(super) cancel: CancelToken,
    pub(super) sink: EventSink,
    pub(super) submitted: Instant,
}

/// A submitted request: its events, and cancellation.
pub struct RequestHandle {
    pub(super) id: u64,
    pub(super) events: mpsc::Receiver<Event>,
    pub(super) cancel: CancelToken,
    /// The engine's thread, where waiting for an event would wait forever.
    pub(super) engine_thread: std::thread::ThreadId,
}

impl RequestHandle {
    /// The request's id (unique within its engine).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Cancels the request (from any thread): it ends with [`Error::Cancelled`] within a step,
    /// and its slot goes to the next request.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A token that cancels this request, for another thread.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Whether this thread is the engine's own (a sink runs there): waiting there would never
    /// end, as the engine cannot run the request while it waits.
    fn on_engine_thread(&self) -> bool {
        std::thread::current().id() == self.engine_thread
    }

    /// The next event, waiting for it; `None` after the final one, and at once (without
    /// waiting) on the engine's own thread, that is in a sink.
    pub fn recv(&self) -> Option<Event> {
        if self.on_engine_thread() {
            return self.events.try_recv().ok();
        }
        self.events.recv().ok()
    }

    /// The next event if it comes within `timeout` (on the engine's own thread: only one that
    /// has come already).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        if self.on_engine_thread() {
            return self.events.try_recv().ok();
        }
        self.events.recv_timeout(timeout).ok()
    }

    /// Waits for the end, passing each token to `on_token`.
    ///
    /// # Errors
    /// The request's error; [`Error::Busy`] at once when called on the engine's own thread (in
    /// a sink), where the request could never run (the request is then cancelled).
    pub fn wait_with(self, mut on_token: impl FnMut(TokenId, &str)) -> Result<Generation> {
        if self.on_engine_thread() {
            self.cancel.cancel();
            return Err(Error::Busy(
                "waiting for an engine request on that engine's own thread (in an event sink) \
                 would never end; submit without waiting there"
                    .into(),
            ));
        }
        while let Some(ev) = self.recv() {
            match ev {
                Event::Token { id, text, .. } => on_token(id, &text),
                Event::Done(g) => return Ok(g),
                Event::Error(e) => return Err(e),
            }
        }
        Err(Error::Internal(
            "the engine dropped a request without an answer".into(),
        ))
    }

    /// Waits for the end.
    ///
    /// # Errors
    /// The request's error.
    pub fn wait(self) -> Result<Generation> {
        self.wait_with(|_, _| {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_order_and_names() {
        assert!(Priority::Critical > Priority::High && Priority::Low < Priority::Normal);
        for p in [
            Priority::Low,
            Priority::Normal,
            Priority::High,
            Priority::Critical,
        ] {
            assert_eq!(Priority::from_name(p.name()).unwrap(), p);
        }
        assert!(Priority::from_name("urgent").is_err());
    }
}
