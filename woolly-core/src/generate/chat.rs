//! Chat templates: messages in, prompt text out.
//!
//! A model's own `tokenizer.chat_template` is rendered with a real Jinja engine (minijinja, with
//! Python-compatible string methods). Files without one get their architecture's built-in format:
//! gemma, llama-3 or chatml.

use minijinja::{context, Environment, Error as JinjaError, ErrorKind as JinjaErrorKind};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant` (file templates may accept others, such as `tool`).
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// The formats Woolly knows without a template in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BuiltinTemplate {
    /// `<start_of_turn>user ... <end_of_turn>`; system text goes into the first user turn.
    Gemma,
    /// `<|start_header_id|>role<|end_header_id|>\n\n ... <|eot_id|>`.
    Llama3,
    /// `<|im_start|>role\n ... <|im_end|>\n`.
    ChatMl,
}

/// How a model turns messages into a prompt.
#[derive(Debug, Clone)]
pub enum ChatTemplate {
    /// The Jinja source from the model file.
    Jinja(String),
    Builtin(BuiltinTemplate),
}

impl ChatTemplate {
    /// A short name for reports: `jinja` or the built-in's name.
    pub fn name(&self) -> &'static str {
        match self {
            ChatTemplate::Jinja(_) => "jinja",
            ChatTemplate::Builtin(BuiltinTemplate::Gemma) => "gemma",
            ChatTemplate::Builtin(BuiltinTemplate::Llama3) => "llama-3",
            ChatTemplate::Builtin(BuiltinTemplate::ChatMl) => "chatml",
        }
    }

    /// Renders `messages` into prompt text. With `add_generation_prompt` the text ends where the
    /// assistant's reply begins. `bos` and `eos` are the tokens' texts, for templates that use them.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos: &str,
        eos: &str,
    ) -> Result<String> {
        if messages.is_empty() {
            return Err(Error::InvalidArgument(
                "a chat needs at least one message".into(),
            ));
        }
        for (i, m) in messages.iter().enumerate() {
            if m.role.trim().is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "message {i} has an empty role"
                )));
            }
        }
        match self {
            ChatTemplate::Jinja(src) => {
                render_jinja(src, messages, add_generation_prompt, bos, eos)
            }
            ChatTemplate::Builtin(b) => render_builtin(*b, messages, add_generation_prompt),
        }
    }
}

/// Instructions a chat template may run per render. Real templates use tens to hundreds per
/// message, so this allows conversations of thousands of messages, and stops a runaway loop in
/// about 0.1 s.
const TEMPLATE_FUEL: u64 = 5_000_000;
/// Nesting of macro calls and blocks a template may reach.
const TEMPLATE_RECURSION: usize = 100;
/// Longest prompt text a template may produce.
const TEMPLATE_MAX_OUTPUT: usize = 64 << 20;

fn raise_exception(msg: String) -> std::result::Result<String, JinjaError> {
    Err(JinjaError::new(JinjaErrorKind::InvalidOperation, msg))
}

fn render_jinja(
    src: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    bos: &str,
    eos: &str,
) -> Result<String> {
    let mut env = Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", raise_exception);
    // HF templates are written for `trim_blocks` and `lstrip_blocks`.
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // The template comes from the model file, which Woolly does not trust: bound its work.
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_recursion_limit(TEMPLATE_RECURSION);
    let tmpl = env.template_from_str(src).map_err(|e| {
        Error::InvalidModel(format!("the model's chat template does not parse: {e}"))
    })?;
    let mut out = CappedWriter(Vec::new());
    tmpl.render_captured_to(
        context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos,
            eos_token => eos,
        },
        &mut out,
    )
    .map(|_| ())
    .map_err(|e| {
        let runaway = matches!(e.kind(), JinjaErrorKind::OutOfFuel | JinjaErrorKind::WriteFailure)
            || e.detail().is_some_and(|d| d.contains("recursion limit"));
        if runaway {
            // Out of fuel, too deep or too long whatever the messages: the file's fault.
            Error::InvalidModel(format!(
                "the model's chat template ran past its limits: {e} (at most {TEMPLATE_FUEL} steps, {TEMPLATE_RECURSION} levels, {} MiB of text)",
                TEMPLATE_MAX_OUTPUT >> 20
            ))
        } else {
            // `raise_exception` from the template, or a type error on these messages.
            Error::InvalidArgument(format!("the chat template refused the messages: {e}"))
        }
    })?;
    String::from_utf8(out.0)
        .map_err(|_| Error::InvalidModel("the model's chat template produced invalid UTF-8".into()))
}

/// Collects a template's output, failing once it passes [`TEMPLATE_MAX_OUTPUT`].
struct CappedWriter(Vec<u8>);

impl std::io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > TEMPLATE_MAX_OUTPUT {
            return Err(std::io::Error::other(format!(
                "the output passed {} MiB",
                TEMPLATE_MAX_OUTPUT >> 20
            )));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn check_role(b: BuiltinTemplate, i: usize, role: &str) -> Result<()> {
    match role {
        "system" | "user" | "assistant" => Ok(()),
        "model" if b == BuiltinTemplate::Gemma => Ok(()),
        other => Err(Error::InvalidArgument(format!(
            "message {i} has role `{other}`; this template accepts system, user and assistant"
        ))),
    }
}

fn render_builtin(
    b: BuiltinTemplate,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
) -> Result<String> {
    let mut out = String::new();
    match b {
        BuiltinTemplate::Gemma => {
            let mut system = String::new();
            for (i, m) in messages.iter().enumerate() {
                check_role(b, i, &m.role)?;
                let role = match m.role.as_str() {
                    "assistant" | "model" => "model",
                    "system" => {
                        system = m.content.trim().to_string();
                        continue;
                    }
                    r => r,
                };
                out.push_str("<start_of_turn>");
                out.push_str(role);
                out.push('\n');
                if !system.is_empty() && role != "model" {
                    out.push_str(&system);
                    out.push_str("\n\n");
                    system.clear();
                }
                out.push_str(m.content.trim());
                out.push_str("<end_of_turn>\n");
            }
            if add_generation_prompt {
                out.push_str("<start_of_turn>model\n");
            }
        }
        BuiltinTemplate::Llama3 => {
            for (i, m) in messages.iter().enumerate() {
                check_role(b, i, &m.role)?;
                out.push_str("<|start_header_id|>");
                out.push_str(&m.role);
                out.push_str("<|end_header_id|>\n\n");
                out.push_str(m.content.trim());
                out.push_str("<|eot_id|>");
            }
            if add_generation_prompt {
                out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
            }
        }
        BuiltinTemplate::ChatMl => {
            for (i, m) in messages.iter().enumerate() {
                check_role(b, i, &m.role)?;
                out.push_str("<|im_start|>");
                out.push_str(&m.role);
                out.push('\n');
                out.push_str(&m.content);
                out.push_str("<|im_end|>\n");
            }
            if add_generation_prompt {
                out.push_str("<|im_start|>assistant\n");
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs() -> Vec<ChatMessage> {
        vec![
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Hi"),
            ChatMessage::new("assistant", "Hello!"),
            ChatMessage::new("user", "Write a haiku about the sea."),
        ]
    }

    #[test]
    fn gemma_builtin() {
        let t = ChatTemplate::Builtin(BuiltinTemplate::Gemma);
        let one = t
            .render(
                &[ChatMessage::new("user", "Write a haiku about the sea.")],
                true,
                "<bos>",
                "<eos>",
            )
            .unwrap();
        // Exactly the prompt of the reference `chat_haiku` generation.
        assert_eq!(
            one,
            "<start_of_turn>user\nWrite a haiku about the sea.<end_of_turn>\n<start_of_turn>model\n"
        );
        let all = t.render(&msgs(), true, "<bos>", "<eos>").unwrap();
        assert_eq!(
            all,
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n\
             <start_of_turn>user\nWrite a haiku about the sea.<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn chatml_and_llama3_builtins() {
        let m = [ChatMessage::new("user", "Hi")];
        assert_eq!(
            ChatTemplate::Builtin(BuiltinTemplate::ChatMl)
                .render(&m, true, "", "")
                .unwrap(),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert_eq!(
            ChatTemplate::Builtin(BuiltinTemplate::Llama3)
                .render(&m, false, "", "")
                .unwrap(),
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        );
    }

    #[test]
    fn jinja_template_with_python_methods() {
        let src = "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system') if false }}{% endif %}\
                   [{{ m.role | upper }}] {{ m.content.strip() }}\n{% endfor %}{% if add_generation_prompt %}[ASSISTANT]{% endif %}";
        let t = ChatTemplate::Jinja(src.into());
        let out = t
            .render(&[ChatMessage::new("user", "  hi  ")], true, "<s>", "</s>")
            .unwrap();
        assert_eq!(out, "<s>[USER] hi\n[ASSISTANT]");
    }

    #[test]
    fn template_errors_are_clear() {
        let t = ChatTemplate::Jinja("{{ raise_exception('roles must alternate') }}".into());
        let e = t.render(&msgs(), true, "", "").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("roles must alternate"));
        let bad = ChatTemplate::Jinja("{% for %}".into());
        assert_eq!(
            bad.render(&msgs(), true, "", "").unwrap_err().kind(),
            crate::ErrorKind::InvalidModel
        );
        let g = ChatTemplate::Builtin(BuiltinTemplate::Gemma);
        assert!(g.render(&[], true, "", "").is_err());
        assert!(g
            .render(&[ChatMessage::new("wizard", "x")], true, "", "")
            .is_err());
        assert!(g
            .render(&[ChatMessage::new(" ", "x")], true, "", "")
            .is_err());
    }
}
