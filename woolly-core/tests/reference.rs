//! Woolly against llama.cpp's reference outputs (../shared/reference): the default model and the
//! three tiny models, greedy token for token up to the first near-tie, and first-step logits.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use woolly_core::generate::{GenerateParams, SamplingParams, Session, SessionParams, StopReason};
use woolly_core::model::{Model, ModelParams};
use woolly_core::testing;

/// Steps whose best-minus-second logit margin is below this may flip between implementations.
const NEAR_TIE: f64 = 0.1;
/// First-step logits of the tiny models must agree this closely (the reference README's bound).
const LOGIT_TOL: f64 = 2e-2;
/// Gemma 3's first-step logits are ill-conditioned: llama.cpp 0.3.36 itself, built with
/// GGML_NATIVE on the AVX-512 CPUs of two machines here, misses the reference's top-5 by up to
/// 0.49 and moves by up to 0.5 between n_batch 1 and 512 (large residual outliers through 8-bit activation quantization
/// with one scale per block, and an f16 KV cache). Woolly lands 0.04 to 0.50 away. The bound is
/// that measured spread, an order of magnitude under what a wrong formula gives (logits here
/// are 15 to 30); greedy tokens are still checked exactly up to the first near-tie.
const GEMMA_LOGIT_TOL: f64 = 0.6;

fn default_model() -> Arc<Model> {
    static M: OnceLock<Arc<Model>> = OnceLock::new();
    M.get_or_init(|| Model::load(Some(&testing::default_model()), &ModelParams::default()).unwrap())
        .clone()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Checks one reference case: prompt tokenization, first-step top-5 logits, and greedy tokens up
/// to the first near-tie.
fn check_case(model: &Arc<Model>, case: &Path, threads: usize, logit_tol: f64) {
    let r = testing::read_json(case);
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    let prompt_ids = ids(&r["prompt_ids"]);
    let want = ids(&r["generated_ids"]);
    let margins: Vec<f64> = r["top2_margins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_f64().unwrap())
        .collect();

    let prompt = r["prompt"].as_str().unwrap();
    assert_eq!(
        model.tokenize(prompt, true, true).unwrap(),
        prompt_ids,
        "{name}: prompt tokenization"
    );

    let mut s = Session::new(
        model.clone(),
        &SessionParams {
            threads,
            ..Default::default()
        },
    )
    .unwrap();
    let logits = s.logits_for(&prompt_ids).unwrap();
    for t in r["first_step_top5"].as_array().unwrap() {
        let id = t["id"].as_u64().unwrap() as usize;
        let want_logit = t["logit"].as_f64().unwrap();
        let got = logits[id] as f64;
        assert!(
            (got - want_logit).abs() <= logit_tol,
            "{name}: logit of token {id} is {got}, llama.cpp has {want_logit}"
        );
    }

    let params = GenerateParams {
        max_tokens: want.len(),
        sampling: SamplingParams::greedy(),
        ..Default::default()
    };
    // A fresh session, as a user's first generation runs: the whole prompt is computed in
    // batches (not taken from the cache that `logits_for` left).
    let mut fresh = Session::new(
        model.clone(),
        &SessionParams {
            threads,
            ..Default::default()
        },
    )
    .unwrap();
    let g = fresh
        .generate_from_tokens(&prompt_ids, &params, |_| true)
        .unwrap();
    assert_eq!(g.timings.cached_tokens, 0);
    let first_tie = margins
        .iter()
        .position(|&m| m < NEAR_TIE)
        .unwrap_or(margins.len());
    let n = first_tie.min(want.len());
    assert!(
        g.generated_ids.len() >= n,
        "{name}: stopped after {} tokens ({:?}), expected at least {n}",
        g.generated_ids.len(),
        g.stop_reason
    );
    assert_eq!(
        &g.generated_ids[..n],
        &want[..n],
        "{name}: greedy tokens differ before the first near-tie at step {first_tie}"
    );
    if n == want.len() && want.len() < 48 {
        // The reference stopped early at an end-of-generation token: so must we.
        assert_eq!(g.stop_reason, StopReason::EndOfGeneration, "{name}");
    }
}

fn gemma_case(name: &str) {
    let p = testing::reference_dir()
        .join("gemma3-270m/greedy")
        .join(format!("{name}.json"));
    check_case(&default_model(), &p, 2, GEMMA_LOGIT_TOL);
}

#[test]
fn gemma_capital() {
    gemma_case("capital");
}

#[test]
fn gemma_chat_haiku() {
    gemma_case("chat_haiku");
}

#[test]
fn gemma_code_fib() {
    gemma_case("code_fib");
}

#[test]
fn gemma_count() {
    gemma_case("count");
}

#[test]
fn gemma_story() {
    gemma_case("story");
}

/// 831 prompt tokens: past the 512-token sliding window of the local layers.
#[test]
fn gemma_long_inventory() {
    gemma_case("long_inventory");
}

#[test]
fn gemma_chat_template_reproduces_the_reference_prompt() {
    let r = testing::reference_json("gemma3-270m/greedy/chat_haiku.json");
    let m = default_model();
    let prompt = m
        .apply_chat_template(&[woolly_core::chat::ChatMessage::new(
            "user",
            "Write a haiku about the sea.",
        )])
        .unwrap();
    assert_eq!(prompt, r["prompt"].as_str().unwrap());
}

fn tiny_cases(model_file: &str) {
    let model = Model::load(
        Some(&testing::tiny_model(model_file)),
        &ModelParams::default(),
    )
    .unwrap();
    let stem = model_file.trim_end_matches(".gguf");
    for p in ["p1", "p2"] {
        let case = testing::tiny_model(&format!("{stem}.{p}.json"));
        check_case(&model, &case, 2, LOGIT_TOL);
    }
}

#[test]
fn tiny_llama_spm_q4_k_m() {
    tiny_cases("tiny-llama-spm-q4_k_m.gguf");
}

#[test]
fn tiny_llama_bpe_q4_0() {
    tiny_cases("tiny-llama-bpe-q4_0.gguf");
}

#[test]
fn tiny_qwen2_mixed() {
    tiny_cases("tiny-qwen2-mixed.gguf");
}

/// Every output element is reduced in the same order whatever the thread count, so logits are
/// bit-identical and so are the tokens.
#[test]
fn same_answer_with_one_and_two_threads() {
    let m = default_model();
    let prompt = m.tokenize("The quick brown fox", true, true).unwrap();
    let run = |threads| {
        let mut s = Session::new(
            m.clone(),
            &SessionParams {
                threads,
                ..Default::default()
            },
        )
        .unwrap();
        let logits = s.logits_for(&prompt).unwrap();
        let params = GenerateParams {
            max_tokens: 12,
            sampling: SamplingParams {
                temperature: 0.9,
                seed: Some(7),
                ..Default::default()
            },
            ..Default::default()
        };
        let g = s.generate_from_tokens(&prompt, &params, |_| true).unwrap();
        (logits, g.generated_ids)
    };
    let (l1, t1) = run(1);
    let (l2, t2) = run(2);
    assert!(l1 == l2, "logits differ between 1 and 2 threads");
    assert_eq!(t1, t2);
}
