//! One OpenAI-shaped request and response for every front end (Python's
//! `create_chat_completion`, Node's, C's JSON call, `woolly serve`), so that none rebuilds it.
//!
//! A [`ChatCompletionRequest`] or [`CompletionRequest`] (deserialized from the JSON clients
//! send) becomes a [`Plan`]: the prompt's tokens, the [`GenerateParams`] (sampling, stop,
//! seed, `max_tokens`, a constraint from `response_format` or the tools, log probabilities)
//! and the engine's priority and deadline. The plan runs on a [`Session`] ([`run_session`]) or
//! an [`Engine`] ([`Plan::into_engine`]); its [`Responder`] turns what the generation reports
//! into the response object, or into stream chunks (`chat.completion.chunk`,
//! `text_completion`), with `usage` and `finish_reason`. Errors have OpenAI's shape too
//! ([`error_body`], [`http_status`]).

pub mod request;
pub mod tools;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

pub use request::{ChatCompletionRequest, CompletionRequest, Message, ToolCall};
pub use tools::{ToolFormat, ToolPlan};

use crate::engine::{Event, Priority, Request};
use crate::generate::{
    chat_tokens_with_tools, Constraint, GenerateParams, Generation, Prompt, SamplingParams,
    Session, StopReason, TokenLogprob,
};
use crate::model::Model;
use crate::tokenizer::TokenId;
use crate::{Error, ErrorKind, Result};

/// Most stop strings a request may give.
pub const MAX_STOP: usize = 16;

/// The text of message `i` (text parts joined; other parts are an error).
fn content_text(m: &Message, i: usize) -> Result<String> {
    match &m.content {
        None => Ok(String::new()),
        Some(request::Content::Text(t)) => Ok(t.clone()),
        Some(request::Content::Parts(parts)) => {
            let mut out = String::new();
            for p in parts {
                match (p.kind.as_str(), &p.text) {
                    ("text", Some(t)) => out.push_str(t),
                    (kind, _) => {
                        return Err(Error::Unsupported(format!(
                            "messages[{i}]: content parts of type `{kind}` (only text)"
                        )))
                    }
                }
            }
            Ok(out)
        }
    }
}

/// Which endpoint a plan answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Completion,
}

/// A request made ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: Kind,
    /// The prompt's tokens.
    pub prompt_ids: Vec<TokenId>,
    pub params: GenerateParams,
    pub priority: Priority,
    pub latency_sensitive: bool,
    /// From the plan's making.
    pub deadline: Option<Instant>,
    pub stream: bool,
    pub include_usage: bool,
    /// Report log probabilities (chat: `logprobs`; completion: `logprobs` given).
    pub logprobs: bool,
    pub tools: Option<ToolPlan>,
    /// The model name the response reports.
    pub model_name: String,
    /// `chatcmpl-…` or `cmpl-…`.
    pub id: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// A completion's `echo`: the prompt's text before the reply.
    pub echo: Option<String>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The sampling and limits both requests share, onto `params`.
fn common_params(
    c: &request::CommonParams,
    prompt_len: usize,
    context: usize,
    params: &mut GenerateParams,
) -> Result<()> {
    if c.n.is_some_and(|n| n != 1) {
        return Err(Error::InvalidArgument(
            "n must be 1 (one choice per request)".into(),
        ));
    }
    let mut s = SamplingParams::default();
    if let Some(t) = c.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(Error::InvalidArgument(format!(
                "temperature {t} is not within 0..2"
            )));
        }
        s.temperature = t;
    }
    if let Some(p) = c.top_p {
        s.top_p = p;
    }
    if let Some(k) = c.top_k {
        s.top_k = k;
    }
    if let Some(m) = c.min_p {
        s.min_p = m;
    }
    if let Some(r) = c.repeat_penalty {
        s.repetition_penalty = r;
    }
    if let Some(f) = c.frequency_penalty {
        s.frequency_penalty = f;
    }
    if let Some(p) = c.presence_penalty {
        s.presence_penalty = p;
    }
    s.seed = c.seed;
    s.validate()?;
    if let Some(o) = &c.overflow {
        params.overflow = crate::generate::Overflow::from_name(o, c.overflow_keep.unwrap_or(0))?;
    }
    params.sampling = s;
    params.stop = match &c.stop {
        None => Vec::new(),
        Some(request::Stop::One(s)) => vec![s.clone()],
        Some(request::Stop::Many(v)) => v.clone(),
    };
    if params.stop.len() > MAX_STOP {
        return Err(Error::InvalidArgument(format!(
            "{} stop strings; at most {MAX_STOP}",
            params.stop.len()
        )));
    }
    let room = context.saturating_sub(prompt_len);
    params.max_tokens = match c.max_completion_tokens.or(c.max_tokens) {
        Some(0) => {
            return Err(Error::InvalidArgument(
                "max_tokens must be at least 1".into(),
            ))
        }
        Some(n) => n,
        // OpenAI's default: as much as the context leaves.
        None => room.max(1),
    };
    Ok(())
}

fn priority(c: &request::CommonParams) -> Result<Priority> {
    match c.priority.as_deref() {
        None => Ok(Priority::Normal),
        Some(p) => Priority::from_name(p),
    }
}

/// The constraint `shape` asks for (at most one of its fields).
fn shape_constraint(shape: &request::OutputShape) -> Result<Option<Constraint>> {
    let format = match &shape.response_format {
        None | Some(request::ResponseFormat::Text) => None,
        Some(request::ResponseFormat::JsonObject) => Some(Constraint::JsonObject),
        Some(request::ResponseFormat::JsonSchema { json_schema }) => {
            let schema = json_schema.schema.clone().ok_or_else(|| {
                Error::InvalidArgument("response_format json_schema has no `schema`".into())
            })?;
            Some(Constraint::JsonSchema(schema))
        }
    };
    let all: Vec<Constraint> = [
        format,
        shape.grammar.clone().map(Constraint::Gbnf),
        shape.regex.clone().map(Constraint::Regex),
        shape.choices.clone().map(Constraint::Choice),
    ]
    .into_iter()
    .flatten()
    .collect();
    if all.len() > 1 {
        return Err(Error::InvalidArgument(
            "give at most one of response_format (json), grammar, regex and choices".into(),
        ));
    }
    Ok(all.into_iter().next())
}

/// What both plans share once their prompt and params are made.
struct PlanParts {
    kind: Kind,
    prompt_ids: Vec<TokenId>,
    params: GenerateParams,
    logprobs: bool,
    tools: Option<ToolPlan>,
    echo: Option<String>,
}

impl PlanParts {
    fn plan(
        self,
        model: &Model,
        c: &request::CommonParams,
        requested_name: Option<&str>,
        model_name: &str,
        made: Instant,
    ) -> Result<Plan> {
        if let Some(con) = &self.params.constraint {
            con.check(model.tokenizer())?;
        }
        let prefix = match self.kind {
            Kind::Chat => "chatcmpl",
            Kind::Completion => "cmpl",
        };
        Ok(Plan {
            kind: self.kind,
            prompt_ids: self.prompt_ids,
            params: self.params,
            priority: priority(c)?,
            latency_sensitive: c.latency_sensitive.unwrap_or(false),
            deadline: c.deadline_ms.map(|ms| made + Duration::from_millis(ms)),
            stream: c.stream.unwrap_or(false),
            include_usage: c.stream_options.as_ref().is_some_and(|o| o.include_usage),
            logprobs: self.logprobs,
            tools: self.tools,
            model_name: requested_name.unwrap_or(model_name).to_string(),
            id: format!("{prefix}-{:016x}", crate::generate::sampler::random_seed()),
            created: now_secs(),
            echo: self.echo,
        })
    }
}

/// The name a response reports when the request names none: the model file's name without
/// its extension.
pub fn default_model_name(model: &Model) -> String {
    model
        .file()
        .path()
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
}

/// Parses `body` (a request to `kind`'s endpoint) and plans it on `model` with a context of
/// `context` tokens; responses name the model `model_name` (default: the file's name) unless
/// the body names one.
pub fn plan_json(
    kind: Kind,
    body: &[u8],
    model: &Model,
    model_name: Option<&str>,
    context: usize,
) -> Result<Plan> {
    let name = model_name.map_or_else(|| default_model_name(model), str::to_string);
    match kind {
        Kind::Chat => ChatCompletionRequest::from_json(body)?.plan(model, &name, context),
        Kind::Completion => CompletionRequest::from_json(body)?.plan(model, &name, context),
    }
}

impl ChatCompletionRequest {
    /// Parses a request body.
    pub fn from_json(body: &[u8]) -> Result<ChatCompletionRequest> {
        serde_json::from_slice(body)
            .map_err(|e| Error::InvalidArgument(format!("the request body: {e}")))
    }

    /// The plan for this request on `model`, with a context of `context` tokens.
    pub fn plan(&self, model: &Model, model_name: &str, context: usize) -> Result<Plan> {
        let made = Instant::now();
        if self.messages.is_empty() {
            return Err(Error::InvalidArgument(
                "messages must hold at least one message".into(),
            ));
        }
        let tools = ToolPlan::new(
            model,
            self.tools.clone().unwrap_or_default(),
            self.tool_choice.as_ref(),
        )?;
        let messages = tools.messages(&self.messages)?;
        let template_tools = if tools.choice == tools::Choice::None {
            None
        } else {
            tools.template_tools()
        };
        let mut params = GenerateParams::default();
        let prompt_ids =
            chat_tokens_with_tools(model, &messages, template_tools.as_ref(), &params, &|| {
                false
            })?;
        common_params(&self.common, prompt_ids.len(), context, &mut params)?;
        let text = shape_constraint(&self.shape)?;
        params.constraint = tools.constraint(text.as_ref())?;
        let logprobs = self.logprobs.unwrap_or(false);
        if self.top_logprobs.is_some() && !logprobs {
            return Err(Error::InvalidArgument(
                "top_logprobs needs logprobs: true".into(),
            ));
        }
        params.logprobs = logprobs.then(|| self.top_logprobs.unwrap_or(0));
        PlanParts {
            kind: Kind::Chat,
            prompt_ids,
            params,
            logprobs,
            tools: tools.active().then_some(tools),
            echo: None,
        }
        .plan(model, &self.common, self.model.as_deref(), model_name, made)
    }
}

impl CompletionRequest {
    /// Parses a request body.
    pub fn from_json(body: &[u8]) -> Result<CompletionRequest> {
        serde_json::from_slice(body)
            .map_err(|e| Error::InvalidArgument(format!("the request body: {e}")))
    }

    /// The plan for this request on `model`, with a context of `context` tokens.
    pub fn plan(&self, model: &Model, model_name: &str, context: usize) -> Result<Plan> {
        let made = Instant::now();
        let prompt = match &self.prompt {
            request::PromptInput::Text(t) => t.clone(),
            request::PromptInput::Texts(v) if v.len() == 1 => v[0].clone(),
            request::PromptInput::Texts(_) => {
                return Err(Error::InvalidArgument(
                    "prompt must be one string (one completion per request)".into(),
                ))
            }
        };
        let mut params = GenerateParams::default();
        let prompt_ids = model.tokenizer().encode(&prompt, true, true)?;
        common_params(&self.common, prompt_ids.len(), context, &mut params)?;
        params.constraint = shape_constraint(&self.shape)?;
        params.logprobs = self.logprobs;
        PlanParts {
            kind: Kind::Completion,
            prompt_ids,
            params,
            logprobs: self.logprobs.is_some(),
            tools: None,
            echo: self.echo.unwrap_or(false).then_some(prompt),
        }
        .plan(model, &self.common, self.model.as_deref(), model_name, made)
    }
}

impl Plan {
    /// The engine request and the responder for its events.
    pub fn into_engine(self) -> (Request, Responder) {
        let request = Request {
            prompt: Prompt::Tokens(self.prompt_ids.clone()),
            params: self.params.clone(),
            priority: self.priority,
            latency_sensitive: self.latency_sensitive,
            deadline: self.deadline,
        };
        (request, Responder::new(self))
    }

    /// The responder, for a plan run on a session.
    pub fn responder(&self) -> Responder {
        Responder::new(self.clone())
    }
}

/// Turns a generation's events into the response, or into stream chunks.
#[derive(Debug)]
pub struct Responder {
    plan: Plan,
    /// Chunks sent so far (the first carries the assistant's role).
    started: bool,
    /// Under tools, the text is held back until the end (it may be a call).
    hold: bool,
    /// Log probabilities of tokens whose text is held back by stop strings.
    pending_logprobs: Vec<TokenLogprob>,
}

fn finish_reason(r: StopReason) -> &'static str {
    match r {
        StopReason::MaxTokens => "length",
        StopReason::EndOfGeneration | StopReason::StopString | StopReason::Callback => "stop",
    }
}

fn chat_logprobs(lps: &[TokenLogprob]) -> Value {
    let entry = |t: &crate::generate::TopLogprob| json!({"token": t.token, "logprob": t.logprob, "bytes": t.bytes});
    json!({"content": lps.iter().map(|lp| {
        let mut e = entry(&lp.chosen);
        e["top_logprobs"] = Value::Array(lp.top.iter().map(entry).collect());
        e
    }).collect::<Vec<_>>(), "refusal": null})
}

fn completion_logprobs(lps: &[TokenLogprob]) -> Value {
    let mut offset = 0usize;
    let mut offsets = Vec::with_capacity(lps.len());
    for lp in lps {
        offsets.push(offset);
        offset += lp.chosen.token.len();
    }
    json!({
        "tokens": lps.iter().map(|l| l.chosen.token.clone()).collect::<Vec<_>>(),
        "token_logprobs": lps.iter().map(|l| l.chosen.logprob).collect::<Vec<_>>(),
        "top_logprobs": lps.iter().map(|l| l.top.iter().map(|t| (t.token.clone(), json!(t.logprob))).collect::<serde_json::Map<_, _>>()).collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}

impl Responder {
    fn new(plan: Plan) -> Responder {
        let hold = plan.tools.is_some();
        Responder {
            plan,
            started: false,
            hold,
            pending_logprobs: Vec::new(),
        }
    }

    /// The plan this responder answers.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (self.plan.kind, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion, _) => "text_completion",
        }
    }

    fn chunk(&self, choice: Value) -> Value {
        json!({
            "id": self.plan.id,
            "object": self.object(true),
            "created": self.plan.created,
            "model": self.plan.model_name,
            "system_fingerprint": null,
            "choices": [choice],
        })
    }

    fn usage(g: &Generation) -> Value {
        let p = g.timings.prompt_tokens;
        let c = g.generated_ids.len();
        json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
               "prompt_tokens_details": {"cached_tokens": g.timings.cached_tokens}})
    }

    /// The stream chunks for one generated token (empty when nothing is to be sent yet).
    pub fn token(&mut self, text: &str, logprob: Option<&TokenLogprob>) -> Vec<Value> {
        if !self.plan.stream {
            return Vec::new();
        }
        let mut out = Vec::new();
        if self.plan.kind == Kind::Chat && !self.started {
            self.started = true;
            out.push(self.chunk(
                json!({"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "logprobs": null, "finish_reason": null}),
            ));
        }
        if let Some(lp) = logprob.filter(|_| self.plan.logprobs) {
            self.pending_logprobs.push(lp.clone());
        }
        if self.hold || (text.is_empty() && self.pending_logprobs.is_empty()) {
            return out;
        }
        let lps = std::mem::take(&mut self.pending_logprobs);
        let choice = match self.plan.kind {
            Kind::Chat => json!({"index": 0, "delta": {"content": text},
                "logprobs": if self.plan.logprobs { chat_logprobs(&lps) } else { Value::Null },
                "finish_reason": null}),
            Kind::Completion => json!({"index": 0, "text": text,
                "logprobs": if self.plan.logprobs { completion_logprobs(&lps) } else { Value::Null },
                "finish_reason": null}),
        };
        out.push(self.chunk(choice));
        out
    }

    /// The response object (not streaming), or the closing stream chunks (streaming).
    pub fn finish(&mut self, g: &Generation) -> Vec<Value> {
        let (content, calls) = match &self.plan.tools {
            Some(t) => t.parse(&g.text),
            None => (Some(g.text.clone()), Vec::new()),
        };
        let reason = if calls.is_empty() {
            finish_reason(g.stop_reason)
        } else {
            "tool_calls"
        };
        let calls_json: Vec<Value> = calls
            .iter()
            .map(|c| serde_json::to_value(c).expect("a call serializes"))
            .collect();
        if !self.plan.stream {
            let choice = match self.plan.kind {
                Kind::Chat => {
                    let mut message =
                        json!({"role": "assistant", "content": content, "refusal": null});
                    if !calls.is_empty() {
                        message["tool_calls"] = Value::Array(calls_json);
                    }
                    json!({"index": 0, "message": message,
                           "logprobs": if self.plan.logprobs { chat_logprobs(&g.logprobs) } else { Value::Null },
                           "finish_reason": reason})
                }
                Kind::Completion => {
                    let text = match &self.plan.echo {
                        Some(p) => format!("{p}{}", g.text),
                        None => g.text.clone(),
                    };
                    json!({"index": 0, "text": text,
                           "logprobs": if self.plan.logprobs { completion_logprobs(&g.logprobs) } else { Value::Null },
                           "finish_reason": reason})
                }
            };
            return vec![json!({
                "id": self.plan.id,
                "object": self.object(false),
                "created": self.plan.created,
                "model": self.plan.model_name,
                "system_fingerprint": null,
                "choices": [choice],
                "usage": Self::usage(g),
            })];
        }
        let mut out = Vec::new();
        if self.plan.kind == Kind::Chat && !self.started {
            self.started = true;
            out.push(self.chunk(
                json!({"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "logprobs": null, "finish_reason": null}),
            ));
        }
        if self.hold {
            let lps = std::mem::take(&mut self.pending_logprobs);
            let mut delta = json!({});
            if let Some(c) = &content {
                delta["content"] = json!(c);
            }
            if !calls.is_empty() {
                delta["tool_calls"] = Value::Array(
                    calls_json
                        .into_iter()
                        .enumerate()
                        .map(|(i, mut c)| {
                            c["index"] = json!(i);
                            c
                        })
                        .collect(),
                );
            }
            out.push(self.chunk(json!({"index": 0, "delta": delta,
                "logprobs": if self.plan.logprobs { chat_logprobs(&lps) } else { Value::Null },
                "finish_reason": null})));
        }
        let last = match self.plan.kind {
            Kind::Chat => {
                json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": reason})
            }
            Kind::Completion => {
                json!({"index": 0, "text": "", "logprobs": null, "finish_reason": reason})
            }
        };
        out.push(self.chunk(last));
        if self.plan.include_usage {
            let mut u = self.chunk(Value::Null);
            u["choices"] = json!([]);
            u["usage"] = Self::usage(g);
            out.push(u);
        }
        out
    }

    /// What an engine event becomes: chunks, the response, or the error.
    pub fn event(&mut self, ev: Event) -> Result<Vec<Value>> {
        match ev {
            Event::Token { text, logprob, .. } => Ok(self.token(&text, logprob.as_ref())),
            Event::Done(g) => Ok(self.finish(&g)),
            Event::Error(e) => Err(e),
        }
    }
}

/// Runs `plan` on `session`: each stream chunk goes to `on_chunk` (return false to stop, which
/// ends the reply as it stands); returns the response object (not streaming) or `Null`.
pub fn run_session(
    session: &mut Session,
    plan: &Plan,
    mut on_chunk: impl FnMut(Value) -> bool,
) -> Result<Value> {
    let mut r = plan.responder();
    // Once the callback says stop, it gets nothing more.
    let mut go = true;
    let g = session.generate_from_tokens(&plan.prompt_ids, &plan.params, |ev| {
        for c in r.token(ev.text, ev.logprob) {
            if go {
                go = on_chunk(c);
            }
        }
        go
    })?;
    let mut out = r.finish(&g);
    if plan.stream {
        for c in out {
            if go {
                go = on_chunk(c);
            }
        }
        Ok(Value::Null)
    } else {
        Ok(out.pop().unwrap_or(Value::Null))
    }
}

/// The HTTP status for an error of `kind`, as OpenAI's API answers.
pub fn http_status(kind: ErrorKind) -> u16 {
    match kind {
        ErrorKind::InvalidArgument | ErrorKind::Tokenizer | ErrorKind::ContextOverflow => 400,
        ErrorKind::Unsupported => 400,
        ErrorKind::ModelNotFound => 404,
        ErrorKind::Busy => 429,
        ErrorKind::Cancelled => 499,
        ErrorKind::DeadlineExceeded => 504,
        ErrorKind::InsufficientMemory | ErrorKind::OutOfDeviceMemory => 503,
        _ => 500,
    }
}

/// OpenAI's error body for `e`: `{"error": {"message", "type", "param", "code"}}`.
pub fn error_body(e: &Error) -> Value {
    let kind = e.kind();
    let ty = match http_status(kind) {
        400 | 404 => "invalid_request_error",
        429 => "rate_limit_error",
        _ => "server_error",
    };
    let code = match kind {
        ErrorKind::ContextOverflow => "context_length_exceeded".to_string(),
        k => k
            .code()
            .trim_start_matches("WOOLLY_ERR_")
            .to_ascii_lowercase(),
    };
    json!({"error": {"message": e.to_string(), "type": ty, "param": null, "code": code}})
}
