//! The request bodies of OpenAI's chat completions and completions, as clients send them,
//! with Woolly's extension fields (`priority`, `deadline_ms`, `latency_sensitive`, `top_k`,
//! `min_p`, `repeat_penalty`, `grammar`, `regex`, `choices`).

use serde::Deserialize;
use serde_json::Value;

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChatCompletionRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<Message>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<usize>,
    #[serde(flatten)]
    pub common: CommonParams,
    #[serde(flatten)]
    pub shape: OutputShape,
}

/// What the reply's text must match: at most one of these.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OutputShape {
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    /// Extension: a GBNF grammar the reply follows (llama.cpp's server spells it so).
    #[serde(default)]
    pub grammar: Option<String>,
    /// Extension: a regular expression the reply matches.
    #[serde(default)]
    pub regex: Option<String>,
    /// Extension: the reply is exactly one of these.
    #[serde(default)]
    pub choices: Option<Vec<String>>,
}

/// `POST /v1/completions`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CompletionRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub prompt: PromptInput,
    /// The number of alternatives per token to report (0..=20); absent reports none.
    #[serde(default)]
    pub logprobs: Option<usize>,
    #[serde(default)]
    pub echo: Option<bool>,
    #[serde(flatten)]
    pub common: CommonParams,
    #[serde(flatten)]
    pub shape: OutputShape,
}

/// What both requests share.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CommonParams {
    #[serde(default)]
    pub stop: Option<Stop>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub max_tokens: Option<usize>,
    #[serde(default)]
    pub max_completion_tokens: Option<usize>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub n: Option<usize>,
    #[serde(default)]
    pub user: Option<String>,
    /// Extension: `low`, `normal`, `high` or `critical` (the engine's priorities).
    #[serde(default)]
    pub priority: Option<String>,
    /// Extension: the request fails with `deadline_exceeded` when not finished this many
    /// milliseconds after it arrives.
    #[serde(default)]
    pub deadline_ms: Option<u64>,
    /// Extension: someone waits for the first token (ahead of others of the same priority).
    #[serde(default)]
    pub latency_sensitive: Option<bool>,
    #[serde(default)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub min_p: Option<f32>,
    #[serde(default)]
    pub repeat_penalty: Option<f32>,
    /// Extension: `error` (the default), `truncate-middle` or `shift` when the prompt and
    /// max_tokens exceed the context.
    #[serde(default)]
    pub overflow: Option<String>,
    /// Extension: the tokens a `shift` keeps at the start.
    #[serde(default)]
    pub overflow_keep: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// `stop`: one string or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// A completion's `prompt`: a string, or a list holding one string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PromptInput {
    Text(String),
    Texts(Vec<String>),
}

impl Default for PromptInput {
    fn default() -> Self {
        PromptInput::Text(String::new())
    }
}

/// One message of a chat request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// A message's content: text, or a list of parts of which only text parts are supported.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

/// A tool call, in a request's assistant message and in a response.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct ToolCall {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_type() -> String {
    "function".into()
}

/// The function a tool call names, with its arguments as JSON text.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

/// A tool the model may call.
#[derive(Debug, Clone, Deserialize)]
pub struct Tool {
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionDef,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// A JSON Schema for the arguments (an object); absent means no arguments.
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `tool_choice`: `none`, `auto`, `required`, or one named function.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(String),
    Named {
        #[serde(rename = "type", default = "function_type")]
        kind: String,
        function: NamedFunction,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub struct NamedFunction {
    pub name: String,
}

/// `response_format`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Debug, Clone, Deserialize)]
pub struct JsonSchemaFormat {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub schema: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}
