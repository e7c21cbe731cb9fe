//! Constrained decoding on the default model: JSON schemas (checked with a JSON Schema
//! validator), GBNF grammars, regular expressions and choices, greedy and sampled, in a session
//! and in the engine; log probabilities.

use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};
use woolly_core::chat::ChatMessage;
use woolly_core::generate::{
    Constraint, GenerateParams, Generation, SamplingParams, Session, SessionParams, StopReason,
};
use woolly_core::model::{Model, ModelParams};
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
            context_size: 1024,
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Schemas and a prompt for each: nested objects, bounded arrays, enums, required and optional
/// fields, numbers with ranges, strings with patterns and formats, `anyOf`, `oneOf`, `allOf`,
/// local `$ref`, `const`, nullable types.
fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "Describe a person who lives in Paris.",
            json!({
            "type": "object", "additionalProperties": false, "required": ["name", "address"],
            "properties": {
                "name": {"type": "string", "maxLength": 40},
                "address": {"type": "object", "additionalProperties": false,
                    "required": ["city", "zip"],
                    "properties": {"city": {"type": "string", "maxLength": 30},
                                   "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}}}}),
        ),
        (
            "List some fruits.",
            json!({"type": "array", "minItems": 2, "maxItems": 4,
            "items": {"type": "string", "maxLength": 16}}),
        ),
        (
            "What colour is the sky?",
            json!({"type": "string", "enum": ["red", "green", "blue"]}),
        ),
        (
            "Give a user name, and a nickname if you like.",
            json!({
            "type": "object", "additionalProperties": false, "required": ["name"],
            "properties": {"name": {"type": "string", "maxLength": 30},
                           "nickname": {"type": "string", "maxLength": 30}}}),
        ),
        (
            "Rate this film from 1 to 10.",
            json!({"type": "integer", "minimum": 1, "maximum": 10}),
        ),
        (
            "How likely is rain tomorrow, as a probability?",
            json!({"type": "number", "minimum": 0, "maximum": 1}),
        ),
        (
            "Invent a product code.",
            json!({"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"}),
        ),
        (
            "How many legs does a spider have?",
            json!({"anyOf": [
            {"type": "integer", "minimum": 0, "maximum": 100},
            {"type": "string", "maxLength": 10}]}),
        ),
        (
            "Give two points on a plane.",
            json!({
            "$defs": {"point": {"type": "object", "additionalProperties": false,
                "required": ["x", "y"],
                "properties": {"x": {"type": "integer", "minimum": -100, "maximum": 100},
                               "y": {"type": "integer", "minimum": -100, "maximum": 100}}}},
            "type": "object", "additionalProperties": false, "required": ["a", "b"],
            "properties": {"a": {"$ref": "#/$defs/point"}, "b": {"$ref": "#/$defs/point"}}}),
        ),
        ("Is water wet?", json!({"type": "boolean"})),
        ("Say anything.", json!({"const": "fixed"})),
        (
            "Write a to-do list with up to three items.",
            json!({
            "type": "array", "maxItems": 3, "items": {"type": "object",
                "additionalProperties": false, "required": ["id", "task", "done"],
                "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 99},
                               "task": {"type": "string", "maxLength": 30},
                               "done": {"type": "boolean"}}}}),
        ),
        (
            "Write a small matrix of numbers.",
            json!({"type": "array", "minItems": 1, "maxItems": 3,
            "items": {"type": "array", "minItems": 1, "maxItems": 3,
                      "items": {"type": "integer", "minimum": -9, "maximum": 9}}}),
        ),
        (
            "Name a city.",
            json!({"type": "string", "minLength": 3, "maxLength": 12}),
        ),
        (
            "When did the first person walk on the moon?",
            json!({"type": "string", "format": "date"}),
        ),
        (
            "What is your middle name, if any?",
            json!({"type": ["string", "null"], "maxLength": 20}),
        ),
        (
            "Describe a shape.",
            json!({"oneOf": [
            {"type": "object", "additionalProperties": false, "required": ["circle"],
             "properties": {"circle": {"type": "number", "exclusiveMinimum": 0, "maximum": 100}}},
            {"type": "object", "additionalProperties": false, "required": ["square"],
             "properties": {"square": {"type": "integer", "minimum": 1, "maximum": 100}}}]}),
        ),
        (
            "Describe a book.",
            json!({"allOf": [
            {"type": "object", "required": ["title"],
             "properties": {"title": {"type": "string", "maxLength": 40}}},
            {"type": "object", "required": ["year"],
             "properties": {"year": {"type": "integer", "minimum": 1450, "maximum": 2030}}}],
            "properties": {"title": true, "year": true}, "additionalProperties": false}),
        ),
        (
            "Pick a temperature in Celsius for a pleasant day.",
            json!({"type": "number",
            "exclusiveMinimum": -10, "exclusiveMaximum": 40}),
        ),
        (
            "Call the weather tool for Oslo.",
            json!({
            "type": "object", "additionalProperties": false, "required": ["name", "arguments"],
            "properties": {"name": {"enum": ["get_weather", "get_time"]},
                "arguments": {"type": "object", "additionalProperties": false,
                    "required": ["city"], "properties": {
                        "city": {"type": "string", "maxLength": 20},
                        "unit": {"enum": ["celsius", "fahrenheit"]}}}}}),
        ),
        (
            "Describe a company with its departments and staff.",
            json!({
            "type": "object", "additionalProperties": false, "required": ["company"],
            "properties": {"company": {"type": "object", "additionalProperties": false,
                "required": ["name", "departments"], "properties": {
                    "name": {"type": "string", "maxLength": 20},
                    "departments": {"type": "array", "minItems": 1, "maxItems": 2, "items": {
                        "type": "object", "additionalProperties": false,
                        "required": ["name", "staff"], "properties": {
                            "name": {"type": "string", "maxLength": 20},
                            "staff": {"type": "integer", "minimum": 0, "maximum": 1000}}}}}}}}),
        ),
        (
            "Give an email address for support.",
            json!({"type": "string", "format": "email",
            "maxLength": 40}),
        ),
        (
            "A yes or no answer, and why.",
            json!({
            "type": "object", "additionalProperties": false, "required": ["answer"],
            "properties": {"answer": {"type": "string", "enum": ["yes", "no"]},
                           "reason": {"type": "string", "maxLength": 60},
                           "confidence": {"type": "number", "minimum": 0, "maximum": 1}}}),
        ),
    ]
}

fn generate(s: &mut Session, prompt: &str, c: Constraint, sampling: SamplingParams) -> Generation {
    s.chat(
        &[ChatMessage::new("user", prompt)],
        &GenerateParams {
            max_tokens: 400,
            sampling,
            constraint: Some(c),
            ..Default::default()
        },
        |_| true,
    )
    .unwrap()
}

/// Every output parses and validates (checked by the `jsonschema` crate), greedy and sampled.
#[test]
fn json_schema_outputs_always_validate() {
    let mut s = session();
    let all = schemas();
    assert!(all.len() >= 20);
    let mut failures = Vec::new();
    for (i, (prompt, schema)) in all.iter().enumerate() {
        let validator = jsonschema::validator_for(schema).unwrap();
        for sampling in [
            SamplingParams::greedy(),
            SamplingParams {
                temperature: 0.9,
                seed: Some(100 + i as u64),
                ..Default::default()
            },
        ] {
            let g = generate(
                &mut s,
                prompt,
                Constraint::JsonSchema(schema.clone()),
                sampling,
            );
            let ok = g.stop_reason == StopReason::EndOfGeneration
                && serde_json::from_str::<Value>(&g.text).is_ok_and(|v| validator.is_valid(&v));
            if !ok {
                failures.push(format!("schema {i} ({:?}): {:?}", g.stop_reason, g.text));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A schema keyword the decoder cannot enforce is an error before generation (nothing is
/// generated, the session stays usable).
#[test]
fn unsupported_schemas_are_errors_before_generation() {
    let mut s = session();
    for schema in [
        json!({"type": "array", "uniqueItems": true}),
        json!({"type": "array", "contains": {"type": "integer"}}),
        json!({"if": {"type": "string"}, "then": {"maxLength": 3}}),
        json!({"not": {"type": "string"}}),
        json!({"type": "string", "format": "no-such-format"}),
        json!({"$ref": "https://example.com/schema.json"}),
        json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}),
        json!({"type": "strin"}),
        json!(42),
    ] {
        let e = s
            .chat(
                &[ChatMessage::new("user", "hi")],
                &GenerateParams {
                    constraint: Some(Constraint::JsonSchema(schema.clone())),
                    ..Default::default()
                },
                |_| panic!("no token may be generated for {schema}"),
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{schema}: {e}");
        assert!(Constraint::JsonSchema(schema)
            .check(model().tokenizer())
            .is_err());
    }
    let g = generate(
        &mut s,
        "Is water wet?",
        Constraint::JsonSchema(json!({"type": "boolean"})),
        SamplingParams::greedy(),
    );
    assert!(g.text == "true" || g.text == "false", "{:?}", g.text);
}

/// A GBNF grammar in llama.cpp's syntax (its own `json.gbnf`-style rules), a regular
/// expression and a choice each shape the output exactly.
#[test]
fn grammars_regexes_and_choices_shape_the_output() {
    let mut s = session();
    let gbnf = r#"
# A list of one to three lower-case words, llama.cpp style.
root   ::= "Words: " word ("," ws word){0,2} "."
word   ::= [a-z]{1,10}
ws     ::= " "?
"#;
    for sampling in [
        SamplingParams::greedy(),
        SamplingParams {
            temperature: 1.0,
            seed: Some(7),
            ..Default::default()
        },
    ] {
        let g = generate(
            &mut s,
            "Name some animals.",
            Constraint::Gbnf(gbnf.into()),
            sampling.clone(),
        );
        assert_eq!(g.stop_reason, StopReason::EndOfGeneration, "{:?}", g.text);
        let body = g
            .text
            .strip_prefix("Words: ")
            .and_then(|t| t.strip_suffix('.'))
            .unwrap_or_else(|| panic!("{:?}", g.text));
        let words: Vec<&str> = body.split(',').map(str::trim_start).collect();
        assert!((1..=3).contains(&words.len()), "{:?}", g.text);
        assert!(
            words
                .iter()
                .all(|w| (1..=10).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase())),
            "{:?}",
            g.text
        );

        let g = generate(
            &mut s,
            "Give a US phone number.",
            Constraint::Regex(r"\(\d{3}\) \d{3}-\d{4}".into()),
            sampling.clone(),
        );
        let b = g.text.as_bytes();
        assert!(
            b.len() == 14 && b[0] == b'(' && b[4] == b')' && b[5] == b' ' && b[9] == b'-',
            "{:?}",
            g.text
        );
        assert!(
            g.text.chars().filter(char::is_ascii_digit).count() == 10,
            "{:?}",
            g.text
        );

        let choices = vec![
            "positive".to_string(),
            "negative".to_string(),
            "neutral".to_string(),
        ];
        let g = generate(
            &mut s,
            "Sentiment of: I love this!",
            Constraint::Choice(choices.clone()),
            sampling,
        );
        assert!(choices.contains(&g.text), "{:?}", g.text);
        assert_eq!(g.stop_reason, StopReason::EndOfGeneration);
    }
    // Any JSON object.
    let g = generate(
        &mut s,
        "Answer in JSON with the key \"answer\": what is 2+2?",
        Constraint::JsonObject,
        SamplingParams::greedy(),
    );
    assert!(
        serde_json::from_str::<Value>(&g.text).unwrap().is_object(),
        "{:?}",
        g.text
    );
    // Malformed grammars and expressions: errors before generation.
    for bad in [
        Constraint::Gbnf("root ::= (\"a\"\n".into()),
        Constraint::Gbnf("start ::= \"a\"\n".into()),
        Constraint::Regex("(unclosed".into()),
        Constraint::Lark("start: nothing_defined".into()),
        Constraint::Choice(vec![]),
    ] {
        let e = s
            .generate(
                "x",
                &GenerateParams {
                    constraint: Some(bad.clone()),
                    ..Default::default()
                },
                |_| panic!("generated for {bad:?}"),
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad:?}: {e}");
    }
}

/// The engine decodes constrained requests in one batch with unconstrained ones, each to its
/// own constraint, and greedy output equals the session's.
#[test]
fn engine_batches_constrained_requests() {
    use woolly_core::engine::{Engine, EngineParams, Event, Request};
    let engine = Engine::new(
        model(),
        EngineParams {
            threads: 2,
            context_size: 1024,
            ..Default::default()
        },
    )
    .unwrap();
    let all = schemas();
    let picks = [0usize, 4, 8, 11];
    let mut rxs = Vec::new();
    for &i in &picks {
        let (prompt, schema) = &all[i];
        let params = GenerateParams {
            max_tokens: 400,
            sampling: SamplingParams::greedy(),
            constraint: Some(Constraint::JsonSchema(schema.clone())),
            ..Default::default()
        };
        rxs.push(
            engine
                .submit(Request::chat(
                    vec![ChatMessage::new("user", *prompt)],
                    params,
                ))
                .unwrap(),
        );
    }
    let free = engine
        .submit(Request::chat(
            vec![ChatMessage::new("user", "Tell me a story.")],
            GenerateParams {
                max_tokens: 40,
                sampling: SamplingParams::greedy(),
                ..Default::default()
            },
        ))
        .unwrap();
    let mut s = session();
    for (rx, &i) in rxs.into_iter().zip(&picks) {
        let g = loop {
            match rx.recv().unwrap() {
                Event::Done(g) => break g,
                Event::Error(e) => panic!("{e}"),
                Event::Token { .. } => {}
            }
        };
        let (prompt, schema) = &all[i];
        let v: Value =
            serde_json::from_str(&g.text).unwrap_or_else(|e| panic!("{e}: {:?}", g.text));
        assert!(
            jsonschema::validator_for(schema).unwrap().is_valid(&v),
            "{:?}",
            g.text
        );
        let alone = generate(
            &mut s,
            prompt,
            Constraint::JsonSchema(schema.clone()),
            SamplingParams::greedy(),
        );
        assert_eq!(g.generated_ids, alone.generated_ids, "schema {i}");
    }
    loop {
        match free.recv().unwrap() {
            Event::Done(g) => {
                assert_eq!(g.generated_ids.len(), 40);
                break;
            }
            Event::Error(e) => panic!("{e}"),
            Event::Token { .. } => {}
        }
    }
    // An unsupported schema is refused at submission.
    let Err(e) = engine.submit(Request::text(
        "x",
        GenerateParams {
            constraint: Some(Constraint::JsonSchema(json!({"not": {}}))),
            ..Default::default()
        },
    )) else {
        panic!("an unsupported schema was accepted")
    };
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

/// Log probabilities: the chosen token's, and the top alternatives best first, from the
/// model's distribution; the greedy choice is the best alternative; at most 20.
#[test]
fn logprobs_report_the_distribution() {
    let mut s = session();
    let mut streamed = Vec::new();
    let g = s
        .generate(
            "The capital of France is",
            &GenerateParams {
                max_tokens: 8,
                sampling: SamplingParams::greedy(),
                logprobs: Some(5),
                ..Default::default()
            },
            |ev| {
                streamed.push(ev.logprob.cloned().expect("each token carries its logprob"));
                true
            },
        )
        .unwrap();
    assert_eq!(g.logprobs.len(), g.generated_ids.len());
    assert_eq!(streamed, g.logprobs);
    let logits = s.logits_for(&g.prompt_ids).unwrap();
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let z: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    for (lp, &id) in g.logprobs.iter().zip(&g.generated_ids) {
        assert_eq!(lp.chosen.id, id);
        assert_eq!(lp.top.len(), 5);
        assert_eq!(lp.top[0].id, id, "greedy picks the most likely token");
        assert!(lp.top.windows(2).all(|w| w[0].logprob >= w[1].logprob));
        assert!(lp.chosen.logprob <= 0.0 && lp.top.iter().all(|t| t.logprob <= 0.0));
        assert_eq!(
            lp.chosen.bytes,
            model().tokenizer().token_bytes(id).unwrap()
        );
    }
    // The first step's figures are the softmax of the prompt's logits.
    let first = &g.logprobs[0];
    let expect = f64::from(logits[first.chosen.id as usize] - max) - z.ln();
    assert!(
        (f64::from(first.chosen.logprob) - expect).abs() < 1e-4,
        "{} vs {expect}",
        first.chosen.logprob
    );
    let e = s
        .generate(
            "x",
            &GenerateParams {
                logprobs: Some(21),
                ..Default::default()
            },
            |_| true,
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

/// A grammar as users bring them from llama.cpp (JSON in its GBNF, with multi-line rules,
/// comments, escapes in classes, bounded repetition and an empty alternative) accepts JSON
/// objects and nothing else, checked on texts with `Constraint::accepts`.
#[test]
fn a_llama_cpp_json_grammar_gives_json() {
    let gbnf = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/gbnf/json.gbnf"
    ))
    .unwrap();
    let c = Constraint::Gbnf(gbnf);
    let tok = model();
    let tok = tok.tokenizer();
    for ok in [
        r#"{"a": [1, 2.5, -3e7, "x\n\u00e9"], "b": {"c": null, "d": true}}"#,
        "{}",
        "{\n  \"k\": []\n}",
    ] {
        assert!(c.accepts(tok, ok).unwrap(), "{ok}");
    }
    for bad in [
        r#"{"a": }"#,
        "[1, 2]",
        r#"{"a": 1} trailing"#,
        r#"{"a": 01}"#,
        r#"{"a": "\q"}"#,
        "{\n\n}",
    ] {
        assert!(!c.accepts(tok, bad).unwrap(), "{bad}");
    }
}
