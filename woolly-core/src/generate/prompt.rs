//! What a generation continues: one prompt type for sessions, the engine and every front end
//! (C's prompt string or messages, Python's `prompt=` or `messages=`, Node's the same).

use super::session::{GenerateParams, Generation, Session, TokenEvent};
use crate::chat::ChatMessage;
use crate::tokenizer::TokenId;
use crate::Result;

/// What a generation asks the model to continue.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Text (tokenized with the params' `add_special` and `parse_special`).
    Text(String),
    /// A conversation, rendered with the model's chat template.
    Messages(Vec<ChatMessage>),
    /// Token ids.
    Tokens(Vec<TokenId>),
}

impl From<&str> for Prompt {
    fn from(text: &str) -> Prompt {
        Prompt::Text(text.to_string())
    }
}

impl From<String> for Prompt {
    fn from(text: String) -> Prompt {
        Prompt::Text(text)
    }
}

impl From<Vec<ChatMessage>> for Prompt {
    fn from(messages: Vec<ChatMessage>) -> Prompt {
        Prompt::Messages(messages)
    }
}

impl Session {
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
}
