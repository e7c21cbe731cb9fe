//! Chat templates: messages in, prompt text out.
//!
//! A model's own `tokenizer.chat_template` is rendered with a real Jinja engine (minijinja, with
//! Python-compatible string methods). Files without one get their architecture's built-in format:
//! gemma, llama-3 or chatml.
//!
//! The file's template is untrusted code: it renders on a thread of Woolly's within bounds on its
//! source (256 KiB, 1000 operators and 64 nested brackets per tag), its steps (5 million), its
//! nesting (100) and the bytes it may build, compare and write (64 MiB plus 16 per byte of the
//! messages), and it can be cancelled; see the `jinja` module. Any template gives a prompt or an
//! error, never a crash or a hang.
//!
//! The text of the messages is not markup: `generate::chat_tokens` tokenizes it as plain text
//! even where it spells a control token, unless `parse_special_in_messages` is set.

mod jinja;
mod message;

use serde::Serialize;

pub use message::ChatMessage;

use crate::{Error, Result};

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
    ///
    /// A file's template renders within the bounds described in the `jinja` module (source size,
    /// operator chains, steps, bytes, stack), so any template gives a result or an error.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos: &str,
        eos: &str,
    ) -> Result<String> {
        self.render_cancellable(messages, add_generation_prompt, bos, eos, &|| false)
    }

    /// [`render`](Self::render) that returns [`Error::Cancelled`] soon after `cancelled` turns
    /// true (it is polled every few milliseconds while a file's template renders).
    pub fn render_cancellable(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        bos: &str,
        eos: &str,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<String> {
        self.render_with_tools(messages, None, add_generation_prompt, bos, eos, cancelled)
    }

    /// [`render_cancellable`](Self::render_cancellable) with `tools` as the template's `tools`
    /// variable. The built-in templates have no place for tools: with some, they are an error.
    pub fn render_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
        bos: &str,
        eos: &str,
        cancelled: &dyn Fn() -> bool,
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
            ChatTemplate::Jinja(src) => jinja::render(
                jinja::Job {
                    source: src.clone(),
                    messages: messages.to_vec(),
                    tools: tools.cloned(),
                    add_generation_prompt,
                    bos: bos.to_string(),
                    eos: eos.to_string(),
                },
                cancelled,
            ),
            ChatTemplate::Builtin(_) if tools.is_some() => Err(Error::Unsupported(
                "this model's built-in chat template has no place for tools".into(),
            )),
            ChatTemplate::Builtin(b) => render_builtin(*b, messages, add_generation_prompt),
        }
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

#[cfg(test)]
mod bombs {
    //! Templates built to crash, hang or exhaust the host: each must give an error, in bounded
    //! time, on a small host stack.
    use super::*;
    use crate::ErrorKind;

    fn render_on_small_stack(src: String, messages: Vec<ChatMessage>) -> Result<String> {
        // A host thread with a 512 KiB stack, as some hosts run their workers.
        std::thread::Builder::new()
            .stack_size(512 << 10)
            .spawn(move || ChatTemplate::Jinja(src).render(&messages, true, "<s>", "</s>"))
            .unwrap()
            .join()
            .unwrap()
    }

    fn user() -> Vec<ChatMessage> {
        vec![ChatMessage::new("user", "hi")]
    }

    fn limit_error(src: String) -> String {
        let t = std::time::Instant::now();
        let e = render_on_small_stack(src, user()).unwrap_err();
        eprintln!("{:?} in {:?}: {e}", e.kind(), t.elapsed());
        assert_eq!(e.kind(), ErrorKind::InvalidModel, "{e}");
        e.to_string()
    }

    #[test]
    fn long_expression_chains_are_refused() {
        for op in [" + 1", " ~ 'a'", " and x", "|trim", ".a", "[0]"] {
            let src = format!("{{{{ x{} }}}}", op.repeat(2000));
            assert!(limit_error(src).contains("operators"));
        }
        // At the source-size bound.
        let n = MAX_SOURCE_TERMS;
        assert!(limit_error(format!("{{{{ 1{} }}}}", "+1".repeat(n))).contains("KiB"));
        let src = format!("{{{{ 1{} }}}}", "+1".repeat(n / 2 - 10));
        assert!(limit_error(src).contains("operators"));
    }

    const MAX_SOURCE_TERMS: usize = super::jinja::MAX_SOURCE / 2;

    #[test]
    fn long_chains_within_the_bounds_render_on_a_small_stack() {
        // 999 operators per tag, nested 60 blocks deep: fine on Woolly's render thread.
        let chain = format!("{{{{ 'a'{} }}}}", " ~ 'a'".repeat(999));
        let mut src = String::new();
        for _ in 0..60 {
            src.push_str("{% if true %}");
        }
        src.push_str(&chain);
        for _ in 0..60 {
            src.push_str("{% endif %}");
        }
        let out = render_on_small_stack(src, user()).unwrap();
        assert_eq!(out, "a".repeat(1000));
        let filters = format!("{{{{ messages[0].content{} }}}}", "|trim".repeat(997));
        assert_eq!(render_on_small_stack(filters, user()).unwrap(), "hi");
    }

    #[test]
    fn string_bombs_hit_the_byte_budget() {
        for src in [
            // Repetition to minijinja's own limit, then doubling.
            "{% set s = 'a' * 100000000 %}{% set s = s ~ s %}{% set s = s ~ s %}{{ s|length }}",
            "{% set ns = namespace(s='a' * 1000000) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "{% set ns = namespace(s='aaaa') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
            // A loop writing a large string, to the output or into a variable.
            "{% set s = 'a' * 1000000 %}{% for i in range(100000) %}{{ s }}{% endfor %}",
            "{% set s = 'a' * 1000000 %}{% set x %}{% for i in range(100000) %}{{ s }}{% endfor %}{% endset %}",
            "{% macro m(s) %}{{ s }}{{ s }}{% endmacro %}{% set ns = namespace(s='a' * 1000) %}{% for i in range(30) %}{% set ns.s = m(ns.s) %}{% endfor %}",
            // Raw text repeated into a captured block.
            &format!("{{% set x %}}{{% for i in range(100000) %}}{}{{% endfor %}}{{% endset %}}", "x".repeat(4000)),
            // Lists grown quadratically or exponentially.
            "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [i] %}{% endfor %}",
            "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}",
            "{% set l = [1] * 100000 %}{% set m = [l] * 100000 %}{{ m }}",
            "{% set l = ['a' * 100000] * 100000 %}{{ l|join }}",
            // Filters and methods that grow text.
            "{% set s = 'a' * 100000 %}{{ s|replace('a', s) }}",
            "{% set s = 'a' * 100000 %}{{ s.replace('a', s) }}",
            "{{ 'a'|center(1000000000) }}",
            "{{ 'a'.ljust(1000000000) }}",
            "{{ ('a\n' * 1000000)|indent(1000) }}",
            "{{ '{:>1000000000}'.format('a') }}",
            // Comparing large strings again and again.
            "{% set s = 'a' * 10000000 %}{% for i in range(100000) %}{% if s == s ~ '' %}{% endif %}{% endfor %}",
            "{% set s = 'a' * 10000000 %}{% for i in range(100000) %}{% if 'b' in s %}{% endif %}{% endfor %}",
        ] {
            let e = limit_error(src.to_string());
            assert!(e.contains("limits"), "{src}: {e}");
        }
    }

    #[test]
    fn cancelling_stops_a_render_at_once() {
        // A long render within the bounds (a large message, worked over many times).
        let src = "{% for i in range(8) %}{% set x = messages[0].content|upper %}{% endfor %}ok";
        let big = vec![ChatMessage::new("user", "a".repeat(32 << 20))];
        let t = ChatTemplate::Jinja(src.into());
        let polls = std::sync::atomic::AtomicUsize::new(0);
        let started = std::time::Instant::now();
        // Cancelled from the first poll after the render started.
        let e = t
            .render_cancellable(&big, true, "", "", &|| {
                polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 0
            })
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
        eprintln!("cancelled after {:?}", started.elapsed());
        // Without cancellation, the same render completes.
        let started = std::time::Instant::now();
        assert_eq!(t.render(&big, true, "", "").unwrap(), "ok");
        eprintln!("uncancelled render: {:?}", started.elapsed());
    }
}
