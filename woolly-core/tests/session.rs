//! The library API on the default model: streaming, stop conditions, cancellation from another
//! thread (also in the middle of a long prompt), context limits, prefix reuse and bad input.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use woolly_core::generate::{
    ChatMessage, GenerateParams, SamplingParams, Session, SessionParams, StopReason,
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
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap()
}

fn greedy(n: usize) -> GenerateParams {
    GenerateParams {
        max_tokens: n,
        sampling: SamplingParams::greedy(),
        ..Default::default()
    }
}

const PROMPT: &str = "The three largest cities in Germany are";

#[test]
fn streamed_pieces_join_to_the_text() {
    let mut s = session();
    let mut pieces = String::new();
    let mut indices = Vec::new();
    let g = s
        .generate(PROMPT, &greedy(24), |ev| {
            pieces.push_str(ev.text);
            indices.push(ev.index);
            true
        })
        .unwrap();
    assert!(!g.generated_ids.is_empty());
    assert_eq!(pieces, g.text);
    assert_eq!(g.text, model().detokenize(&g.generated_ids).unwrap());
    // Every generated token was announced, in order (the final flush may repeat the last index).
    let mut dedup = indices.clone();
    dedup.dedup();
    assert_eq!(dedup, (0..g.generated_ids.len()).collect::<Vec<_>>());
    assert_eq!(g.timings.generated_tokens, g.generated_ids.len());
    assert!(g.timings.ttft_ms > 0.0 && g.timings.prompt_ms > 0.0);
}

#[test]
fn stop_string_cuts_the_text_before_it() {
    let mut s = session();
    let full = s.generate(PROMPT, &greedy(32), |_| true).unwrap();
    // A stop string taken from the middle of what greedy decoding produces.
    let words: Vec<&str> = full.text.split_whitespace().collect();
    assert!(words.len() >= 4, "{:?}", full.text);
    let stop = words[2].to_string();
    let at = full.text.find(&stop).unwrap();
    let mut streamed = String::new();
    let g = s
        .generate(
            PROMPT,
            &GenerateParams {
                stop: vec!["never appears \u{1F600}".into(), stop.clone()],
                ..greedy(32)
            },
            |ev| {
                streamed.push_str(ev.text);
                true
            },
        )
        .unwrap();
    assert_eq!(g.stop_reason, StopReason::StopString);
    assert_eq!(g.text, full.text[..at]);
    assert_eq!(streamed, g.text, "nothing of the stop string is streamed");
}

#[test]
fn callback_returning_false_stops() {
    let mut s = session();
    let mut calls = 0;
    let mut streamed = String::new();
    let g = s
        .generate(PROMPT, &greedy(40), |ev| {
            calls += 1;
            streamed.push_str(ev.text);
            calls < 3
        })
        .unwrap();
    assert_eq!(g.stop_reason, StopReason::Callback);
    assert_eq!(g.generated_ids.len(), 3);
    assert_eq!(calls, 3);
    assert_eq!(streamed, g.text);
}

#[test]
fn max_tokens_end_of_generation_and_chat() {
    let mut s = session();
    let g = s.generate(PROMPT, &greedy(5), |_| true).unwrap();
    assert_eq!(g.stop_reason, StopReason::MaxTokens);
    assert_eq!(g.generated_ids.len(), 5);

    // End-of-generation: push the model's EOS to the top; it ends the generation unless asked
    // to ignore it. (The default model is a base model: it rarely ends a turn by itself.)
    let eos = model().tokenizer().eos().unwrap();
    let biased = |ignore_eos| GenerateParams {
        sampling: SamplingParams {
            logit_bias: vec![(eos, 100.0)],
            ..SamplingParams::greedy()
        },
        ignore_eos,
        ..greedy(3)
    };
    let g = s.generate(PROMPT, &biased(false), |_| true).unwrap();
    assert_eq!(g.stop_reason, StopReason::EndOfGeneration);
    assert!(g.generated_ids.is_empty() && g.text.is_empty());
    let g = s.generate(PROMPT, &biased(true), |_| true).unwrap();
    assert_eq!(g.stop_reason, StopReason::MaxTokens);
    assert_eq!(g.generated_ids, vec![eos; 3]);

    // A chat renders the template (special tokens parsed, one BOS) and generates a reply.
    let msgs = [ChatMessage::new("user", "Write a haiku about the sea.")];
    let g = s.chat(&msgs, &greedy(4), |_| true).unwrap();
    let r = testing::reference_json("gemma3-270m/greedy/chat_haiku.json");
    let want: Vec<u32> = r["prompt_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(g.prompt_ids, want);
}

#[test]
fn seeded_sampling_repeats_and_seeds_differ() {
    let params = |seed| GenerateParams {
        max_tokens: 24,
        sampling: SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: Some(seed),
            ..Default::default()
        },
        ..Default::default()
    };
    let a = session().generate(PROMPT, &params(11), |_| true).unwrap();
    let b = session().generate(PROMPT, &params(11), |_| true).unwrap();
    let c = session().generate(PROMPT, &params(12), |_| true).unwrap();
    assert_eq!(a.generated_ids, b.generated_ids);
    assert_ne!(a.generated_ids, c.generated_ids);
}

#[test]
fn prompt_prefix_is_reused_and_gives_the_same_answer() {
    let mut s = session();
    let first = s.generate(PROMPT, &greedy(8), |_| true).unwrap();
    assert_eq!(first.timings.cached_tokens, 0);
    let again = s.generate(PROMPT, &greedy(8), |_| true).unwrap();
    assert_eq!(again.timings.cached_tokens, first.prompt_ids.len() - 1);
    assert_eq!(again.generated_ids, first.generated_ids);
    // A different prompt sharing only BOS recomputes the rest and matches a fresh session.
    let other = "Water boils at";
    let reused = s.generate(other, &greedy(8), |_| true).unwrap();
    let fresh = session().generate(other, &greedy(8), |_| true).unwrap();
    assert_eq!(reused.generated_ids, fresh.generated_ids);
}

#[test]
fn cancel_from_another_thread_during_a_long_prompt() {
    let mut s = session();
    // About 2,500 tokens: seconds of prompt processing.
    let prompt = "The quick brown fox jumps over the lazy dog. ".repeat(250);
    let ids = model().tokenize(&prompt, true, true).unwrap();
    assert!(ids.len() > 2000);
    let handle = s.cancel_handle();
    let done = Arc::new(AtomicBool::new(false));
    let canceller = {
        let done = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            // Keep asking until the generation has returned (it may not have started yet).
            while !done.load(Ordering::SeqCst) {
                handle.cancel();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut tokens = 0;
    let r = s.generate_from_tokens(&ids, &greedy(16), |_| {
        tokens += 1;
        true
    });
    done.store(true, Ordering::SeqCst);
    canceller.join().unwrap();
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    assert_eq!(tokens, 0, "cancelled before the prompt was done");

    // The session is still usable and answers as a fresh one does.
    let after = s.generate(PROMPT, &greedy(6), |_| true).unwrap();
    let fresh = session().generate(PROMPT, &greedy(6), |_| true).unwrap();
    assert_eq!(after.generated_ids, fresh.generated_ids);
}

#[test]
fn context_overflow_is_an_error_not_a_crash() {
    let mut s = Session::new(
        model(),
        &SessionParams {
            context_size: 32,
            threads: 1,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.context_size(), 32);
    let e = s.generate(PROMPT, &greedy(30), |_| true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContextOverflow);
    assert!(e.to_string().contains("32"), "{e}");
    // Within the context it works.
    let g = s.generate(PROMPT, &greedy(4), |_| true).unwrap();
    assert_eq!(g.generated_ids.len(), 4);
}

#[test]
fn bad_input_is_a_clear_error() {
    let mut s = session();
    let vocab = model().hparams().n_vocab as u32;
    let e = s
        .generate_from_tokens(&[2, vocab + 5], &greedy(4), |_| true)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = s
        .generate_from_tokens(&[], &greedy(4), |_| true)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let bad = GenerateParams {
        sampling: SamplingParams {
            temperature: f32::NAN,
            ..Default::default()
        },
        ..greedy(4)
    };
    let e = s.generate(PROMPT, &bad, |_| true).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = Session::new(
        model(),
        &SessionParams {
            context_size: usize::MAX,
            ..Default::default()
        },
    )
    .err()
    .expect("an absurd context size is refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

#[test]
fn threads_above_the_cpus_are_capped_and_generation_completes() {
    let cpus = woolly_core::platform::process::available_cpus();
    let warnings = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = warnings.clone();
    woolly_core::log::set_callback(Some(std::sync::Arc::new(move |l, m: &str| {
        if l == woolly_core::log::Level::Warn {
            sink.lock().unwrap().push(m.to_string());
        }
    })));
    let mut s = Session::new(
        model(),
        &SessionParams {
            threads: 64,
            ..Default::default()
        },
    )
    .unwrap();
    woolly_core::log::set_callback(None);
    let requested = 64;
    assert_eq!(s.threads(), (requested.min(cpus), requested.min(cpus)));
    if cpus < requested {
        let w = warnings.lock().unwrap();
        assert!(
            w.iter()
                .any(|m| m.contains("64 threads requested") && m.contains("capped")),
            "{w:?}"
        );
    }
    let g = s
        .generate(
            "Hello",
            &GenerateParams {
                max_tokens: 4,
                ignore_eos: true,
                sampling: SamplingParams::greedy(),
                ..Default::default()
            },
            |_| true,
        )
        .unwrap();
    assert_eq!(g.generated_ids.len(), 4);
    s.set_threads(1000).unwrap();
    assert_eq!(s.threads(), (1000.min(cpus), 1000.min(cpus)));
}

#[test]
fn thread_policy_and_overrides() {
    use woolly_core::platform::Hardware;
    use woolly_core::policy::{threads_for, Workload};
    let hw = Hardware::detect();
    let s = Session::new(model(), &SessionParams::default()).unwrap();
    assert_eq!(
        s.threads(),
        (
            threads_for(&hw, Workload::PromptProcessing),
            threads_for(&hw, Workload::TokenGeneration)
        )
    );
    let interactive = Session::new(
        model(),
        &SessionParams {
            interactive: true,
            ..Default::default()
        },
    )
    .unwrap();
    let n = threads_for(&hw, Workload::Interactive);
    assert!(n >= 1);
    assert_eq!(interactive.threads(), (n, n));
    let mut fixed = Session::new(
        model(),
        &SessionParams {
            threads: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let cpus = woolly_core::platform::process::available_cpus();
    assert_eq!(fixed.threads(), (3.min(cpus), 3.min(cpus)));
    fixed.set_threads(1).unwrap();
    assert_eq!(fixed.threads(), (1, 1));
    assert!(fixed.set_threads(100_000).is_err());
    // Background work at a lower priority, pinned, still answers the same.
    let mut bg = Session::new(
        model(),
        &SessionParams {
            background: true,
            pin_threads: true,
            ..Default::default()
        },
    )
    .unwrap();
    let a = bg.generate(PROMPT, &greedy(6), |_| true).unwrap();
    let b = fixed.generate(PROMPT, &greedy(6), |_| true).unwrap();
    assert_eq!(a.generated_ids, b.generated_ids);
}

#[test]
fn pool_reuses_sessions_and_serves_concurrent_requests() {
    use woolly_core::generate::SessionPool;
    let pool = SessionPool::new(model(), SessionParams::default(), 4).unwrap();
    assert_eq!(pool.idle(), 1);
    // What front ends key their pools by: same model, params and idle count.
    assert!(pool.serves(&model(), &SessionParams::default(), 4));
    assert!(!pool.serves(&model(), &SessionParams::default(), 2));
    let bigger = SessionParams {
        context_size: 1024,
        ..SessionParams::default()
    };
    assert!(!pool.serves(&model(), &bigger, 4));
    assert_eq!(pool.params(), &SessionParams::default());
    let want = {
        let mut s = pool.acquire().unwrap();
        assert_eq!(pool.idle(), 0);
        s.generate("The capital of France is", &greedy(6), |_| true)
            .unwrap()
            .generated_ids
    };
    assert_eq!(pool.idle(), 1, "the session went back to the pool");
    // Two at once: the second gets a new session; both give the same greedy tokens.
    let got: Vec<_> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                sc.spawn(|| {
                    let mut s = pool.acquire().unwrap();
                    s.generate("The capital of France is", &greedy(6), |_| true)
                        .unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for g in &got {
        assert_eq!(g.generated_ids, want);
    }
    assert_eq!(pool.idle(), 2);
    // A reused session found the prompt in its cache.
    assert!(got.iter().any(|g| g.timings.cached_tokens > 0));
    // The model counted every generation.
    assert!(pool.model().metrics().snapshot().generations >= 3);
}

#[test]
fn one_prompt_type_for_text_messages_and_tokens() {
    use woolly_core::generate::Prompt;
    let m = model();
    let text = "The capital of France is";
    let want = session().generate(text, &greedy(4), |_| true).unwrap();
    let got = session()
        .run(&Prompt::from(text), &greedy(4), |_| true)
        .unwrap();
    assert_eq!(got.generated_ids, want.generated_ids);

    let ids = m.tokenize(text, true, false).unwrap();
    let got = session()
        .run(&Prompt::Tokens(ids), &greedy(4), |_| true)
        .unwrap();
    assert_eq!(got.generated_ids, want.generated_ids);

    let messages = vec![ChatMessage::new("user", "Say hi.")];
    let want = session().chat(&messages, &greedy(4), |_| true).unwrap();
    let got = session()
        .run(&Prompt::from(messages), &greedy(4), |_| true)
        .unwrap();
    assert_eq!(got.generated_ids, want.generated_ids);
    assert_eq!(got.timings.prompt_tokens, want.timings.prompt_tokens);
}
