//! What a generation continues: one prompt type for sessions, the engine and every front end
//! (C's prompt string or messages, Python's `prompt=` or `messages=`, Node's the same), and
//! the prompt text and tokens of a conversation under the model's chat template.

use super::params::GenerateParams;
use crate::chat::{ChatMessage, ChatTemplate};
use crate::model::Model;
use crate::tokenizer::TokenId;
use crate::{Error, Result};

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
    chat_tokens_with_tools(model, messages, None, params, cancelled)
}

/// [`chat_tokens`] with `tools` (OpenAI's list of `{"type": "function", "function": {...}}`)
/// given to the template as its `tools` variable; their text is kept apart from control
/// tokens as the messages' is.
pub fn chat_tokens_with_tools(
    model: &Model,
    messages: &[ChatMessage],
    tools: Option<&serde_json::Value>,
    params: &GenerateParams,
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<TokenId>> {
    let tok = model.tokenizer();
    if params.parse_special_in_messages {
        let prompt = model.apply_chat_template_with_tools(messages, tools, cancelled)?;
        let prompt = strip_bos(model, prompt, params.add_special);
        return tok.encode_cancellable(&prompt, params.add_special, true, cancelled);
    }
    let source = match model.chat_template() {
        ChatTemplate::Jinja(s) => s.as_str(),
        ChatTemplate::Builtin(_) => "",
    };
    let extra: String = messages
        .iter()
        .filter_map(|m| m.tool_calls.as_ref())
        .chain(tools)
        .map(|v| v.to_string())
        .collect();
    let texts = messages
        .iter()
        .flat_map(|m| [m.role.as_str(), m.content.as_str()])
        .chain([source, extra.as_str()]);
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
            tool_calls: m.tool_calls.as_ref().map(|v| mark_value(tok, v, mark)),
            tool_call_id: m.tool_call_id.as_ref().map(|t| tok.mark_special(t, mark)),
            name: m.name.as_ref().map(|t| tok.mark_special(t, mark)),
        })
        .collect();
    let tools = tools.map(|v| mark_value(tok, v, mark));
    let prompt = model.apply_chat_template_with_tools(&marked, tools.as_ref(), cancelled)?;
    let prompt = strip_bos(model, prompt, params.add_special);
    tok.encode_marked(&prompt, params.add_special, mark, cancelled)
}

/// `value` with every string in it (keys too) marked as [`Tokenizer::mark_special`] marks text.
///
/// [`Tokenizer::mark_special`]: crate::tokenizer::Tokenizer::mark_special
fn mark_value(
    tok: &crate::tokenizer::Tokenizer,
    value: &serde_json::Value,
    mark: char,
) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => Value::String(tok.mark_special(s, mark)),
        Value::Array(a) => Value::Array(a.iter().map(|v| mark_value(tok, v, mark)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (tok.mark_special(k, mark), mark_value(tok, v, mark)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// How many of `ids` (the tokens of `messages`) a cut in the middle keeps: BOS, and a leading
/// system message's tokens: those `ids` shares with the system message and an empty next
/// message rendered alone (templates such as gemma's write the system prompt inside the first
/// user turn, so the system message alone would render nothing of it).
pub(crate) fn system_prefix_len(
    model: &Model,
    messages: &[ChatMessage],
    ids: &[TokenId],
    params: &GenerateParams,
) -> usize {
    let Some(first) = messages.first().filter(|m| m.role == "system") else {
        return 1;
    };
    let next_role = messages.get(1).map_or("user", |m| m.role.as_str());
    let probe = [first.clone(), ChatMessage::new(next_role, "")];
    match chat_tokens(model, &probe, params, &|| false) {
        Ok(alone) => alone
            .iter()
            .zip(ids)
            .take_while(|(a, b)| a == b)
            .count()
            .max(1),
        Err(_) => 1,
    }
}
