//! The OpenAI-shaped surface on the default model: chat and completion requests into plans,
//! responses and stream chunks, response formats, tool calls in each family's form, log
//! probabilities, the engine, and OpenAI-style errors.

use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Value};
use woolly_core::engine::{Engine, EngineParams};
use woolly_core::generate::{Session, SessionParams};
use woolly_core::model::{Model, ModelParams};
use woolly_core::openai::tools::{Choice, ToolFormat, ToolPlan};
use woolly_core::openai::{self, ChatCompletionRequest, CompletionRequest};
use woolly_core::testing;
use woolly_core::ErrorKind;

fn model() -> Arc<Model> {
    static M: OnceLock<Arc<Model>> = OnceLock::new();
    M.get_or_init(|| Model::load(Some(&testing::default_model()), &ModelParams::default()).unwrap())
        .clone()
}

fn session() -> Session {
    Session::new(
        model(),
        &SessionParams {
            context_size: 2048,
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap()
}

fn chat(body: Value) -> Value {
    let req = ChatCompletionRequest::from_json(body.to_string().as_bytes()).unwrap();
    let plan = req.plan(&model(), "gemma-3-270m", 2048).unwrap();
    openai::run_session(&mut session(), &plan, |_| true).unwrap()
}

fn chat_err(body: Value) -> woolly_core::Error {
    let req = match ChatCompletionRequest::from_json(body.to_string().as_bytes()) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let plan = match req.plan(&model(), "m", 2048) {
        Ok(p) => p,
        Err(e) => return e,
    };
    openai::run_session(&mut session(), &plan, |_| true).unwrap_err()
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather", "description": "The current weather in a city",
        "parameters": {"type": "object", "additionalProperties": false, "required": ["city"],
            "properties": {"city": {"type": "string", "maxLength": 30},
                           "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}}})
}

#[test]
fn a_chat_completion_has_openai_shape() {
    let r = chat(
        json!({"messages": [{"role": "user", "content": "Say hello."}],
                        "max_tokens": 12, "temperature": 0}),
    );
    assert_eq!(r["object"], "chat.completion");
    assert!(r["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(r["model"], "gemma-3-270m");
    let c = &r["choices"][0];
    assert_eq!(c["message"]["role"], "assistant");
    assert!(!c["message"]["content"].as_str().unwrap().is_empty());
    assert!(["stop", "length"].contains(&c["finish_reason"].as_str().unwrap()));
    let u = &r["usage"];
    assert!(u["prompt_tokens"].as_u64().unwrap() > 3);
    assert!((1..=12).contains(&u["completion_tokens"].as_u64().unwrap()));
    assert_eq!(
        u["total_tokens"].as_u64(),
        Some(u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap())
    );
    // Content given as text parts means the same.
    let parts = chat(
        json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "Say "}, {"type": "text", "text": "hello."}]}],
                            "max_tokens": 12, "temperature": 0}),
    );
    assert_eq!(
        parts["choices"][0]["message"]["content"],
        c["message"]["content"]
    );
}

#[test]
fn response_formats_give_json_that_validates() {
    let schema = json!({"type": "object", "additionalProperties": false, "required": ["city", "population"],
        "properties": {"city": {"type": "string", "maxLength": 20}, "population": {"type": "integer", "minimum": 0}}});
    let r = chat(
        json!({"messages": [{"role": "user", "content": "The largest city in Japan, as JSON."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": true}},
        "temperature": 0}),
    );
    let text = r["choices"][0]["message"]["content"].as_str().unwrap();
    let v: Value = serde_json::from_str(text).unwrap();
    assert!(
        jsonschema::validator_for(&schema).unwrap().is_valid(&v),
        "{text}"
    );
    assert_eq!(r["choices"][0]["finish_reason"], "stop");
    // Any object: whatever completes parses (a small model may also ramble to max_tokens).
    let mut completed = 0;
    for seed in 1..=4 {
        let r = chat(
            json!({"messages": [{"role": "user", "content": "What is 2+2? Reply only with {\"answer\": <the number>}."}],
            "response_format": {"type": "json_object"}, "temperature": 0.7, "seed": seed, "max_tokens": 300}),
        );
        let text = r["choices"][0]["message"]["content"].as_str().unwrap();
        if r["choices"][0]["finish_reason"] == "stop" {
            completed += 1;
            assert!(
                serde_json::from_str::<Value>(text).unwrap().is_object(),
                "{text}"
            );
        }
    }
    assert!(completed > 0);
}

#[test]
fn required_and_named_tool_calls_parse_and_validate() {
    let params = weather_tool()["function"]["parameters"].clone();
    let validator = jsonschema::validator_for(&params).unwrap();
    for choice in [
        json!("required"),
        json!({"type": "function", "function": {"name": "get_weather"}}),
    ] {
        for temperature in [0.0, 0.9] {
            let r = chat(
                json!({"messages": [{"role": "user", "content": "What's the weather in Oslo?"}],
                "tools": [weather_tool(), {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}],
                "tool_choice": choice, "temperature": temperature, "seed": 3}),
            );
            let c = &r["choices"][0];
            assert_eq!(c["finish_reason"], "tool_calls", "{r}");
            let calls = c["message"]["tool_calls"].as_array().unwrap();
            assert_eq!(calls.len(), 1);
            assert_eq!(calls[0]["type"], "function");
            assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
            let name = calls[0]["function"]["name"].as_str().unwrap();
            if choice.is_object() {
                assert_eq!(name, "get_weather");
            }
            if name == "get_weather" {
                let args: Value =
                    serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap())
                        .unwrap();
                assert!(validator.is_valid(&args), "{args}");
            }
        }
    }
}

#[test]
fn auto_tool_choice_and_tool_results_round_trip() {
    // Auto: a reply is text or a call, never half of one.
    let r = chat(
        json!({"messages": [{"role": "user", "content": "What's the weather in Paris? Use the tool."}],
        "tools": [weather_tool()], "temperature": 0, "max_tokens": 120}),
    );
    let c = &r["choices"][0];
    match c["finish_reason"].as_str().unwrap() {
        "tool_calls" => {
            let args: Value = serde_json::from_str(
                c["message"]["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
            assert!(args["city"].is_string());
        }
        _ => assert!(
            !c["message"]["content"]
                .as_str()
                .unwrap()
                .trim_start()
                .starts_with('{'),
            "{r}"
        ),
    }
    // The call and its result go back as messages; the model answers in text.
    let r = chat(json!({"messages": [
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temperature\": 21, \"sky\": \"sunny\"}"}],
        "tools": [weather_tool()], "tool_choice": "none", "temperature": 0, "max_tokens": 40}));
    let text = r["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        !text.is_empty() && r["choices"][0]["message"].get("tool_calls").is_none(),
        "{r}"
    );
}

#[test]
fn each_family_form_parses() {
    let tools: Vec<woolly_core::openai::request::Tool> =
        serde_json::from_value(json!([weather_tool()])).unwrap();
    let plan = |format| ToolPlan {
        format,
        tools: tools.clone(),
        choice: Choice::Auto,
    };
    let (content, calls) = plan(ToolFormat::Hermes).parse("Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>");
    assert_eq!(content.as_deref(), Some("Let me check."));
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].function.name, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].function.arguments).unwrap(),
        json!({"city": "Oslo"})
    );
    let (content, calls) = plan(ToolFormat::Llama3)
        .parse("<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}");
    assert!(content.is_none());
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].function.arguments).unwrap(),
        json!({"city": "Rome"})
    );
    let (content, calls) = plan(ToolFormat::Generic)
        .parse(" {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lima\"}}");
    assert!(content.is_none() && calls.len() == 1);
    // Not a call: an unknown tool, or text.
    let (content, calls) =
        plan(ToolFormat::Generic).parse("{\"name\": \"rm_rf\", \"arguments\": {}}");
    assert!(calls.is_empty() && content.is_some());
    // Each family's constraint compiles for the model's vocabulary, required and auto.
    for format in [ToolFormat::Hermes, ToolFormat::Llama3, ToolFormat::Generic] {
        for choice in [
            Choice::Auto,
            Choice::Required,
            Choice::Named("get_weather".into()),
        ] {
            let p = ToolPlan {
                format,
                tools: tools.clone(),
                choice,
            };
            p.constraint(None)
                .unwrap()
                .unwrap()
                .check(model().tokenizer())
                .unwrap();
        }
    }
}

#[test]
fn logprobs_and_streaming_match_the_plain_response() {
    let body = json!({"messages": [{"role": "user", "content": "Count to five."}], "max_tokens": 16,
                      "temperature": 0, "logprobs": true, "top_logprobs": 3});
    let full = chat(body.clone());
    let lp = full["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap();
    assert_eq!(
        lp.len() as u64,
        full["usage"]["completion_tokens"].as_u64().unwrap()
    );
    for t in lp {
        assert!(t["logprob"].as_f64().unwrap() <= 0.0);
        assert_eq!(t["top_logprobs"].as_array().unwrap().len(), 3);
        assert_eq!(
            t["top_logprobs"][0]["token"], t["token"],
            "greedy takes the best"
        );
        assert!(t["bytes"].is_array());
    }
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let req = ChatCompletionRequest::from_json(streamed.to_string().as_bytes()).unwrap();
    let plan = req.plan(&model(), "m", 2048).unwrap();
    let mut chunks = Vec::new();
    assert_eq!(
        openai::run_session(&mut session(), &plan, |c| {
            chunks.push(c);
            true
        })
        .unwrap(),
        Value::Null
    );
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        text,
        full["choices"][0]["message"]["content"].as_str().unwrap()
    );
    let n_lp: usize = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["logprobs"]["content"].as_array())
        .map(Vec::len)
        .sum();
    assert_eq!(n_lp, lp.len());
    let last = &chunks[chunks.len() - 2];
    assert_eq!(
        last["choices"][0]["finish_reason"],
        full["choices"][0]["finish_reason"]
    );
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], full["usage"]);
}

#[test]
fn completions_with_logprobs_and_echo() {
    let req = CompletionRequest::from_json(
        json!({"prompt": "The capital of France is", "max_tokens": 5,
        "temperature": 0, "logprobs": 2, "echo": true})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let plan = req.plan(&model(), "m", 2048).unwrap();
    let r = openai::run_session(&mut session(), &plan, |_| true).unwrap();
    assert_eq!(r["object"], "text_completion");
    let c = &r["choices"][0];
    assert!(c["text"]
        .as_str()
        .unwrap()
        .starts_with("The capital of France is"));
    let lp = &c["logprobs"];
    assert_eq!(
        lp["tokens"].as_array().unwrap().len(),
        lp["token_logprobs"].as_array().unwrap().len()
    );
    assert!(lp["top_logprobs"][0].as_object().unwrap().len() <= 2);
}

#[test]
fn the_engine_runs_plans_and_streams_chunks() {
    let engine = Engine::new(
        model(),
        EngineParams {
            threads: 2,
            context_size: 2048,
            ..Default::default()
        },
    )
    .unwrap();
    let body = json!({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 10,
                      "temperature": 0, "stream": true, "priority": "high"});
    let req = ChatCompletionRequest::from_json(body.to_string().as_bytes()).unwrap();
    let plan = req
        .plan(engine.model(), "m", engine.context_size())
        .unwrap();
    let (request, mut responder) = plan.into_engine();
    let (tx, rx) = std::sync::mpsc::channel();
    let done = Arc::new(Mutex::new(false));
    engine
        .submit_with(
            request,
            Box::new(move |ev| {
                let end = !matches!(ev, woolly_core::engine::Event::Token { .. });
                let _ = tx.send((responder.event(ev), end));
            }),
        )
        .unwrap();
    let mut chunks = Vec::new();
    loop {
        let (r, end) = rx.recv().unwrap();
        chunks.extend(r.unwrap());
        if end {
            *done.lock().unwrap() = true;
            break;
        }
    }
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    let alone = chat(
        json!({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 10, "temperature": 0}),
    );
    assert_eq!(
        text,
        alone["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert!(chunks.last().unwrap()["choices"][0]["finish_reason"].is_string());
}

#[test]
fn bad_requests_get_clear_errors() {
    let cases = [
        json!({"messages": []}),
        json!({"messages": [{"role": "user", "content": "x"}], "n": 2}),
        json!({"messages": [{"role": "user", "content": "x"}], "temperature": 5}),
        json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}),
        json!({"messages": [{"role": "user", "content": "x"}], "tools": [weather_tool()], "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
        json!({"messages": [{"role": "user", "content": "x"}], "tools": [weather_tool()], "tool_choice": "sometimes"}),
        json!({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 3}),
        json!({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 30}),
        json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
        json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema", "json_schema": {"schema": {"not": {}}}}}),
        json!({"messages": [{"role": "user", "content": "x"}], "grammar": "root ::= (", "regex": "a"}),
        json!({"messages": [{"role": "user", "content": "x"}], "priority": "urgent"}),
        json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
        json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 100000}),
        json!({"messages": "not a list"}),
        json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
    ];
    for body in cases {
        let e = chat_err(body.clone());
        let status = openai::http_status(e.kind());
        assert_eq!(status, 400, "{body}: {e}");
        let b = openai::error_body(&e);
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert!(!b["error"]["message"].as_str().unwrap().is_empty());
    }
    let e = chat_err(json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 100000}));
    assert_eq!(e.kind(), ErrorKind::ContextOverflow);
    assert_eq!(
        openai::error_body(&e)["error"]["code"],
        "context_length_exceeded"
    );
    assert_eq!(openai::http_status(ErrorKind::Busy), 429);
}

/// Tools and earlier calls in a template of Qwen 2.5's form (the Hermes family): the tools'
/// signatures, the call written back in `<tool_call>` tags and the result in
/// `<tool_response>`, as the template itself spells them.
#[test]
fn a_hermes_template_gets_tools_calls_and_results() {
    use woolly_core::chat::ChatTemplate;
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/qwen25_tools.jinja"
    ))
    .unwrap();
    let tools: Vec<woolly_core::openai::request::Tool> =
        serde_json::from_value(json!([weather_tool()])).unwrap();
    let plan = ToolPlan {
        format: ToolFormat::Hermes,
        tools,
        choice: Choice::Auto,
    };
    let messages: Vec<woolly_core::openai::Message> = serde_json::from_value(json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"}]))
    .unwrap();
    let chat = plan.messages(&messages).unwrap();
    let text = ChatTemplate::Jinja(src)
        .render_with_tools(&chat, plan.template_tools().as_ref(), true, "", "", &|| {
            false
        })
        .unwrap();
    assert!(
        text.contains("<tools>\n{") && text.contains("\"name\":\"get_weather\""),
        "{text}"
    );
    assert!(text.contains("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call>"), "{text}");
    assert!(
        text.contains("<|im_start|>user\n<tool_response>\nsunny, 21 C\n</tool_response><|im_end|>"),
        "{text}"
    );
    assert!(text.ends_with("<|im_start|>assistant\n"), "{text}");
}

/// Each family's call form, required, generated on the default model under its constraint
/// and parsed back: one call to the named tool with arguments valid for its schema.
#[test]
fn each_family_form_generates_a_valid_call() {
    let tools: Vec<woolly_core::openai::request::Tool> =
        serde_json::from_value(json!([weather_tool()])).unwrap();
    let validator = jsonschema::validator_for(&weather_tool()["function"]["parameters"]).unwrap();
    let mut s = session();
    for format in [ToolFormat::Hermes, ToolFormat::Llama3, ToolFormat::Generic] {
        let plan = ToolPlan {
            format,
            tools: tools.clone(),
            choice: Choice::Required,
        };
        let params = woolly_core::generate::GenerateParams {
            max_tokens: 200,
            sampling: woolly_core::generate::SamplingParams::greedy(),
            constraint: plan.constraint(None).unwrap(),
            ..Default::default()
        };
        let g = s
            .chat(
                &[woolly_core::chat::ChatMessage::new(
                    "user",
                    "Call get_weather for Oslo.",
                )],
                &params,
                |_| true,
            )
            .unwrap();
        let (_, calls) = plan.parse(&g.text);
        assert_eq!(calls.len(), 1, "{format:?}: {:?}", g.text);
        assert_eq!(calls[0].function.name, "get_weather");
        let args: Value = serde_json::from_str(&calls[0].function.arguments).unwrap();
        assert!(validator.is_valid(&args), "{format:?}: {args}");
    }
}
