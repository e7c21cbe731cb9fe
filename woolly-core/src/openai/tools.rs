//! Tool calls: the tools put into the model's own chat template (its `tools` variable), the
//! call's form for the families Woolly runs, the arguments constrained by each tool's
//! parameter schema, and the calls parsed back out of the output.
//!
//! The forms:
//! - **Hermes** (qwen2 and every template that writes `<tool_call>`): each call is
//!   `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`.
//! - **Llama 3** (templates with `<|python_tag|>` or llama-3 headers and tools): the reply is
//!   one JSON object `{"name": ..., "parameters": {...}}`.
//! - **Generic**, for templates without a place for tools (gemma 3): Woolly adds a system
//!   message that lists the tools and asks for a reply of only `{"name": ..., "arguments":
//!   {...}}` to call one; earlier calls are written back in that form and tool results go
//!   back as user messages (`Result of <name>: <content>`).

use serde_json::{json, Value};

use super::request::{Message, Tool, ToolCall, ToolChoice};
use crate::chat::{ChatMessage, ChatTemplate};
use crate::generate::Constraint;
use crate::model::Model;
use crate::{Error, Result};

/// How a model's template writes tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    Hermes,
    Llama3,
    Generic,
}

impl ToolFormat {
    /// The form `model`'s chat template uses.
    pub fn of(model: &Model) -> ToolFormat {
        let ChatTemplate::Jinja(src) = model.chat_template() else {
            return ToolFormat::Generic;
        };
        if !src.contains("tools") {
            ToolFormat::Generic
        } else if src.contains("<tool_call>") {
            ToolFormat::Hermes
        } else if src.contains("<|python_tag|>") || src.contains("<|start_header_id|>") {
            ToolFormat::Llama3
        } else {
            ToolFormat::Generic
        }
    }

    /// The key of the arguments in a call's JSON.
    fn arguments_key(self) -> &'static str {
        match self {
            ToolFormat::Llama3 => "parameters",
            _ => "arguments",
        }
    }
}

/// What `tool_choice` asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    None,
    Auto,
    Required,
    Named(String),
}

/// A request's tools, resolved.
#[derive(Debug, Clone)]
pub struct ToolPlan {
    pub format: ToolFormat,
    pub tools: Vec<Tool>,
    pub choice: Choice,
}

impl ToolPlan {
    /// Checks the tools and the choice (OpenAI's default: `auto` with tools, else `none`).
    pub fn new(model: &Model, tools: Vec<Tool>, choice: Option<&ToolChoice>) -> Result<ToolPlan> {
        for (i, t) in tools.iter().enumerate() {
            if t.kind != "function" {
                return Err(Error::InvalidArgument(format!(
                    "tools[{i}]: type `{}` is not supported (only `function`)",
                    t.kind
                )));
            }
            if t.function.name.is_empty() {
                return Err(Error::InvalidArgument(format!("tools[{i}] has no name")));
            }
            if let Some(p) = &t.function.parameters {
                if !p.is_object() {
                    return Err(Error::InvalidArgument(format!(
                        "tools[{i}] ({}): parameters must be a JSON Schema object",
                        t.function.name
                    )));
                }
            }
        }
        let choice = match choice {
            None if tools.is_empty() => Choice::None,
            None => Choice::Auto,
            Some(ToolChoice::Mode(m)) => match m.as_str() {
                "none" => Choice::None,
                "auto" => Choice::Auto,
                "required" => Choice::Required,
                other => {
                    return Err(Error::InvalidArgument(format!(
                        "tool_choice `{other}` is not none, auto, required or a named function"
                    )))
                }
            },
            Some(ToolChoice::Named { function, .. }) => {
                if !tools.iter().any(|t| t.function.name == function.name) {
                    return Err(Error::InvalidArgument(format!(
                        "tool_choice names `{}`, which is not among the tools",
                        function.name
                    )));
                }
                Choice::Named(function.name.clone())
            }
        };
        if tools.is_empty() && matches!(choice, Choice::Required | Choice::Named(_)) {
            return Err(Error::InvalidArgument(
                "tool_choice asks for a tool call but no tools were given".into(),
            ));
        }
        Ok(ToolPlan {
            format: ToolFormat::of(model),
            tools,
            choice,
        })
    }

    /// Whether the output may hold tool calls (and is parsed for them).
    pub fn active(&self) -> bool {
        self.choice != Choice::None && !self.tools.is_empty()
    }

    /// The tools as the template's `tools` variable (OpenAI's list), for templates that have
    /// a place for them.
    pub fn template_tools(&self) -> Option<Value> {
        (self.format != ToolFormat::Generic && !self.tools.is_empty()).then(|| {
            Value::Array(
                self.tools
                    .iter()
                    .map(|t| {
                        json!({"type": "function", "function": {
                            "name": t.function.name,
                            "description": t.function.description.clone().unwrap_or_default(),
                            "parameters": params_schema(t),
                        }})
                    })
                    .collect(),
            )
        })
    }

    /// The conversation as the template gets it.
    pub fn messages(&self, messages: &[Message]) -> Result<Vec<ChatMessage>> {
        let mut out: Vec<ChatMessage> = Vec::with_capacity(messages.len() + 1);
        let generic = self.format == ToolFormat::Generic;
        if generic && self.choice != Choice::None && !self.tools.is_empty() {
            out.push(ChatMessage::new("system", self.instructions()));
        }
        for (i, m) in messages.iter().enumerate() {
            let content = super::content_text(m, i)?;
            match (m.role.as_str(), generic) {
                ("tool", true) => {
                    let who = m
                        .name
                        .clone()
                        .or_else(|| self.call_name(messages, m.tool_call_id.as_deref()))
                        .unwrap_or_else(|| "the tool".into());
                    let text = format!("Result of {who}: {content}");
                    // Consecutive results share one user turn.
                    match out.last_mut() {
                        Some(last)
                            if last.role == "user" && last.content.starts_with("Result of ") =>
                        {
                            last.content.push('\n');
                            last.content.push_str(&text);
                        }
                        _ => out.push(ChatMessage::new("user", text)),
                    }
                }
                ("system", true) if out.first().is_some_and(|f| f.role == "system") && i == 0 => {
                    // The caller's system prompt goes before the tools' description.
                    let first = &mut out[0];
                    first.content = format!("{content}\n\n{}", first.content);
                }
                (_, true) => {
                    let mut text = content;
                    for call in m.tool_calls.iter().flatten() {
                        let args: Value = serde_json::from_str(&call.function.arguments)
                            .unwrap_or(Value::String(call.function.arguments.clone()));
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(
                            &json!({"name": call.function.name, "arguments": args}).to_string(),
                        );
                    }
                    out.push(ChatMessage::new(m.role.clone(), text));
                }
                (_, false) => {
                    let mut cm = ChatMessage::new(m.role.clone(), content);
                    cm.tool_call_id = m.tool_call_id.clone();
                    cm.name = m.name.clone();
                    if let Some(calls) = &m.tool_calls {
                        cm.tool_calls = Some(Value::Array(
                            calls
                                .iter()
                                .map(|c| {
                                    let args: Value = serde_json::from_str(&c.function.arguments)
                                        .unwrap_or(Value::String(c.function.arguments.clone()));
                                    json!({"id": c.id, "type": "function", "function": {
                                        "name": c.function.name, "arguments": args}})
                                })
                                .collect(),
                        ));
                    }
                    out.push(cm);
                }
            }
        }
        Ok(out)
    }

    fn call_name(&self, messages: &[Message], id: Option<&str>) -> Option<String> {
        let id = id?;
        messages
            .iter()
            .flat_map(|m| m.tool_calls.iter().flatten())
            .find(|c| c.id == id)
            .map(|c| c.function.name.clone())
    }

    /// The generic form's system message.
    fn instructions(&self) -> String {
        let mut s = String::from("You can call these tools:\n");
        for t in &self.tools {
            s.push_str(
                &json!({"name": t.function.name,
                        "description": t.function.description.clone().unwrap_or_default(),
                        "parameters": params_schema(t)})
                .to_string(),
            );
            s.push('\n');
        }
        s.push_str(
            "To call a tool, reply with only a JSON object {\"name\": <tool name>, \"arguments\": \
             <the arguments>} and nothing else.",
        );
        match &self.choice {
            Choice::Required => s.push_str(" You must call one of the tools now."),
            Choice::Named(n) => s.push_str(&format!(" You must call `{n}` now.")),
            _ => s.push_str(" If no tool is needed, reply normally."),
        }
        s
    }

    /// The JSON Schema of one call of the tools that may be called now.
    fn call_schema(&self) -> Value {
        let key = self.format.arguments_key();
        let calls: Vec<Value> = self
            .tools
            .iter()
            .filter(|t| match &self.choice {
                Choice::Named(n) => &t.function.name == n,
                _ => true,
            })
            .map(|t| {
                json!({"type": "object", "additionalProperties": false,
                       "required": ["name", key],
                       "properties": {"name": {"const": t.function.name}, key: params_schema(t)}})
            })
            .collect();
        // The constraint's own JSON whitespace bound, also where the schema goes inside a
        // Lark grammar (`%json`).
        crate::generate::constraint::bounded_whitespace(if calls.len() == 1 {
            calls.into_iter().next().expect("one")
        } else {
            json!({"anyOf": calls})
        })
    }

    /// The constraint on the output: a call, in the family's form, where one is required; a
    /// call or text that does not start like one, under `auto`. `text` is what the text may be
    /// instead (the response format's constraint), if anything.
    pub fn constraint(&self, text: Option<&Constraint>) -> Result<Option<Constraint>> {
        if !self.active() {
            return Ok(text.cloned());
        }
        let schema = self.call_schema();
        let call = match self.format {
            ToolFormat::Hermes => format!("\"<tool_call>\\n\" %json {schema} \"\\n</tool_call>\""),
            _ => format!("%json {schema}"),
        };
        let required = matches!(self.choice, Choice::Required | Choice::Named(_));
        if required {
            return Ok(Some(match self.format {
                ToolFormat::Hermes => Constraint::Lark(format!("start: {call}\n")),
                _ => Constraint::JsonSchema(schema),
            }));
        }
        let alt = match text {
            None => match self.format {
                // Text that does not begin a call (nor with a space before one).
                ToolFormat::Hermes => "TEXT\nTEXT: /(?s:[^<\\s].*)?/".to_string(),
                _ => "TEXT\nTEXT: /(?s:[^{\\s].*)?/".to_string(),
            },
            Some(Constraint::JsonSchema(s)) => format!("%json {s}"),
            Some(Constraint::JsonObject) => "%json {\"type\": \"object\"}".to_string(),
            Some(_) => {
                return Err(Error::InvalidArgument(
                    "with tools, the reply may be constrained only by a JSON response_format"
                        .into(),
                ))
            }
        };
        Ok(Some(Constraint::Lark(format!(
            "start: call | {alt}\ncall: {call}\n"
        ))))
    }

    /// The calls in `text`, and the text left around them. No calls: `text` unchanged.
    pub fn parse(&self, text: &str) -> (Option<String>, Vec<ToolCall>) {
        if !self.active() {
            return (Some(text.to_string()), Vec::new());
        }
        let mut calls = Vec::new();
        let mut rest = String::new();
        match self.format {
            ToolFormat::Hermes => {
                let mut s = text;
                while let Some(at) = s.find("<tool_call>") {
                    rest.push_str(&s[..at]);
                    let body = &s[at + "<tool_call>".len()..];
                    let Some(end) = body.find("</tool_call>") else {
                        rest.push_str(&s[at..]);
                        s = "";
                        break;
                    };
                    match self.call_from(body[..end].trim()) {
                        Some(c) => calls.push(c),
                        None => rest.push_str(&s[at..at + "<tool_call>".len() + end + 12]),
                    }
                    s = &body[end + "</tool_call>".len()..];
                }
                rest.push_str(s);
            }
            _ => {
                let t = text.trim().trim_start_matches("<|python_tag|>").trim();
                match self.call_from(t) {
                    Some(c) => calls.push(c),
                    None => rest.push_str(text),
                }
            }
        }
        let rest = rest.trim();
        let content = (!rest.is_empty() || calls.is_empty()).then(|| {
            if calls.is_empty() {
                text.to_string()
            } else {
                rest.to_string()
            }
        });
        (content, calls)
    }

    fn call_from(&self, json_text: &str) -> Option<ToolCall> {
        let v: Value = serde_json::from_str(json_text).ok()?;
        let name = v.get("name")?.as_str()?;
        if !self.tools.iter().any(|t| t.function.name == name) {
            return None;
        }
        let args = v
            .get(self.format.arguments_key())
            .or_else(|| v.get("arguments"))
            .or_else(|| v.get("parameters"))
            .cloned()
            .unwrap_or_else(|| json!({}));
        Some(ToolCall {
            id: format!("call_{:016x}", crate::generate::sampler::random_seed()),
            kind: "function".into(),
            function: super::request::FunctionCall {
                name: name.to_string(),
                arguments: args.to_string(),
            },
        })
    }
}

/// A tool's parameter schema (no parameters: an empty object).
fn params_schema(t: &Tool) -> Value {
    t.function.parameters.clone().unwrap_or_else(
        || json!({"type": "object", "properties": {}, "additionalProperties": false}),
    )
}
