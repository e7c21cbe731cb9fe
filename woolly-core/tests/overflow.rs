//! Context overflow is never silent, on the default model: an error with the counts by
//! default; a cut in the prompt's middle that keeps BOS and a chat's system prompt and reports
//! what it dropped (the reply then equals a cold run on the kept prompt); a rolling window that
//! keeps generating past the context; the engine's cut; absurd settings refused.

use std::sync::{Arc, OnceLock};

use woolly_core::chat::ChatMessage;
use woolly_core::engine::{Engine, EngineParams, Event, Request};
use woolly_core::generate::{GenerateParams, Overflow, SamplingParams, Session, SessionParams};
use woolly_core::model::{Model, ModelParams};
use woolly_core::testing;
use woolly_core::{Error, ErrorKind};

fn model() -> Arc<Model> {
    static M: OnceLock<Arc<Model>> = OnceLock::new();
    M.get_or_init(|| Model::load(Some(&testing::default_model()), &ModelParams::default()).unwrap())
        .clone()
}

fn session(ctx: usize) -> Session {
    Session::new(
        model(),
        &SessionParams {
            context_size: ctx,
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap()
}

fn params(max_tokens: usize, overflow: Overflow) -> GenerateParams {
    GenerateParams {
        max_tokens,
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
        overflow,
        ..Default::default()
    }
}

fn long_text() -> String {
    (0..120)
        .map(|i| format!("Item {i} is on the list. "))
        .collect()
}

#[test]
fn the_default_is_an_error_with_the_counts() {
    let mut s = session(256);
    let e = s
        .generate(&long_text(), &params(16, Overflow::Error), |_| {
            panic!("nothing may be generated")
        })
        .unwrap_err();
    match e {
        Error::ContextOverflow {
            prompt,
            requested,
            context,
        } => {
            assert!(prompt > 256);
            assert_eq!((requested, context), (16, 256));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn truncate_middle_keeps_the_start_and_the_end() {
    let tok = model();
    let tok = tok.tokenizer();
    let text = long_text();
    let full = tok.encode(&text, true, true).unwrap();
    let mut s = session(256);
    let g = s
        .generate(&text, &params(16, Overflow::TruncateMiddle), |_| true)
        .unwrap();
    assert_eq!(g.dropped.len(), 1);
    let d = g.dropped[0];
    assert_eq!((d.at, d.during), (1, "prompt"));
    assert!(d.count >= full.len() + 16 - 256, "{d:?}");
    assert_eq!(g.prompt_ids.len(), full.len() - d.count);
    assert!(g.prompt_ids.len() + 16 <= 256);
    assert_eq!(g.prompt_ids[0], full[0], "BOS stays");
    assert_eq!(
        g.prompt_ids[1..],
        full[1 + d.count..],
        "the end stays, whole"
    );
    assert_eq!(g.generated_ids.len(), 16);
    // The reply is what a cold run on the kept prompt gives.
    let mut cold = session(256);
    let c = cold
        .generate_from_tokens(&g.prompt_ids, &params(16, Overflow::Error), |_| true)
        .unwrap();
    assert_eq!(c.generated_ids, g.generated_ids);
}

#[test]
fn truncate_middle_never_cuts_the_system_prompt() {
    let system =
        "You are a careful assistant. Always answer in one short sentence and never use lists.";
    let messages = [
        ChatMessage::new("system", system),
        ChatMessage::new("user", long_text()),
        ChatMessage::new("user", "What was the last item?"),
    ];
    let mut s = session(256);
    let g = s.chat(&messages[..], &params(8, Overflow::TruncateMiddle), |_| {
        true
    });
    // gemma's template wants alternating roles: put both user texts in one turn.
    let g = match g {
        Ok(g) => g,
        Err(_) => {
            let merged = vec![
                ChatMessage::new("system", system),
                ChatMessage::new("user", format!("{} What was the last item?", long_text())),
            ];
            s.chat(&merged, &params(8, Overflow::TruncateMiddle), |_| true)
                .unwrap()
        }
    };
    let tok = model();
    let text = tok.tokenizer().decode(&g.prompt_ids, true).unwrap();
    assert!(
        text.contains(system),
        "the system prompt is whole: {text:?}"
    );
    assert!(
        text.contains("What was the last item?"),
        "the end stays: {text:?}"
    );
    assert_eq!(g.dropped.len(), 1);
    assert!(
        g.dropped[0].at > 1,
        "the cut starts after the system prompt: {:?}",
        g.dropped[0]
    );
    assert!(g.prompt_ids.len() + 8 <= 256);
}

#[test]
fn shift_keeps_generating_past_the_context() {
    let mut s = session(256);
    let g = s
        .generate(
            "Once upon a time,",
            &params(500, Overflow::Shift { keep: 16 }),
            |_| true,
        )
        .unwrap();
    assert_eq!(
        g.generated_ids.len(),
        500,
        "a rolling window generates all that was asked"
    );
    assert!(g.dropped.len() >= 2, "{:?}", g.dropped);
    assert!(g
        .dropped
        .iter()
        .all(|d| d.during == "shift" && d.at == 16 && d.count > 0));
    let total: usize = g.dropped.iter().map(|d| d.count).sum();
    assert!(
        g.prompt_ids.len() + 500 - total <= 256,
        "what stays always fits"
    );
    // Half the context or more kept leaves no room to shift into.
    let e = s
        .generate("x", &params(500, Overflow::Shift { keep: 128 }), |_| true)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        Overflow::from_name("shift", 4).unwrap(),
        Overflow::Shift { keep: 4 }
    );
    assert!(Overflow::from_name("silently", 0).is_err());
}

#[test]
fn the_engine_cuts_the_middle_and_refuses_a_shift() {
    let engine = Engine::new(
        model(),
        EngineParams {
            threads: 2,
            context_size: 256,
            ..Default::default()
        },
    )
    .unwrap();
    let h = engine
        .submit(Request::text(
            long_text(),
            params(16, Overflow::TruncateMiddle),
        ))
        .unwrap();
    let g = loop {
        match h.recv().unwrap() {
            Event::Done(g) => break g,
            Event::Error(e) => panic!("{e}"),
            Event::Token { .. } => {}
        }
    };
    assert_eq!(g.dropped.len(), 1);
    assert_eq!(g.generated_ids.len(), 16);
    let mut cold = session(256);
    let c = cold
        .generate_from_tokens(&g.prompt_ids, &params(16, Overflow::Error), |_| true)
        .unwrap();
    assert_eq!(c.generated_ids, g.generated_ids);
    let Err(e) = engine.submit(Request::text("x", params(500, Overflow::Shift { keep: 8 }))) else {
        panic!("the engine accepted a shift")
    };
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let Err(e) = engine.submit(Request::text(long_text(), params(16, Overflow::Error))) else {
        panic!("an overflowing prompt was accepted")
    };
    assert_eq!(e.kind(), ErrorKind::ContextOverflow);
}

/// The OpenAI-shaped surface takes the strategy as an extension field.
#[test]
fn an_openai_request_chooses_its_overflow() {
    use serde_json::json;
    use woolly_core::openai::{self, ChatCompletionRequest};
    let body = |overflow: &str| {
        json!({"messages": [{"role": "user", "content": long_text()}], "max_tokens": 8,
                                       "temperature": 0, "overflow": overflow})
        .to_string()
    };
    let e = ChatCompletionRequest::from_json(body("error").as_bytes())
        .unwrap()
        .plan(&model(), "m", 256)
        .and_then(|p| openai::run_session(&mut session(256), &p, |_| true));
    assert_eq!(e.unwrap_err().kind(), ErrorKind::ContextOverflow);
    let p = ChatCompletionRequest::from_json(body("truncate-middle").as_bytes())
        .unwrap()
        .plan(&model(), "m", 256)
        .unwrap();
    let r = openai::run_session(&mut session(256), &p, |_| true).unwrap();
    assert_eq!(r["usage"]["completion_tokens"], 8);
    assert!(r["usage"]["prompt_tokens"].as_u64().unwrap() <= 248);
    assert!(
        ChatCompletionRequest::from_json(body("sometimes").as_bytes())
            .unwrap()
            .plan(&model(), "m", 256)
            .is_err()
    );
}
