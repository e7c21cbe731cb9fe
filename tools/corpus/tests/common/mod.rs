//! What the emulated-GPU tests share: loading a model with GPU params, sessions and greedy
//! generation as they use them, the logits' distance, and an Engine batching two prompts.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use woolly_core::engine::{Engine, EngineParams, Request};
use woolly_core::generate::{GenerateParams, SamplingParams, Session, SessionParams};
use woolly_core::model::{Model, ModelParams};
use woolly_core::policy::placement::{GpuLayers, GpuParams};
use woolly_corpus::Parts;

/// The contexts of the models and sessions these tests run.
pub const CONTEXT: usize = 128;

/// The prompts they generate from.
pub const PROMPTS: [&str; 2] = ["hello world", "the quick brown fox jumps over"];

/// `p` written under the test's temporary directory as `{name}.gguf`.
pub fn write(name: &str, p: Parts) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.gguf"));
    std::fs::write(&path, p.to_bytes()).unwrap();
    path
}

/// GPU params offloading `layers` (split by layer across the devices, the default).
pub fn on(layers: GpuLayers) -> GpuParams {
    GpuParams {
        layers,
        ..Default::default()
    }
}

/// The model at `path` with `gpu`.
pub fn load(path: &Path, gpu: GpuParams) -> Arc<Model> {
    let params = ModelParams {
        context_size: CONTEXT,
        gpu,
        ..Default::default()
    };
    Model::load(Some(path), &params).unwrap()
}

/// A one-thread session of `m`.
pub fn session(m: &Arc<Model>) -> Session {
    Session::new(
        m.clone(),
        &SessionParams {
            context_size: CONTEXT,
            threads: 1,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Greedy generation of `n` tokens, past end of sequence too.
pub fn greedy(n: usize) -> GenerateParams {
    GenerateParams {
        max_tokens: n,
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
        ..Default::default()
    }
}

/// The largest difference of `a` from `b`, relative to `b`'s largest magnitude.
pub fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / scale)
        .fold(0.0, f32::max)
}

/// Each of [`PROMPTS`]' greedy tokens through an Engine batching both.
pub fn engine_tokens(m: &Arc<Model>) -> Vec<Vec<u32>> {
    let engine = Engine::new(
        m.clone(),
        EngineParams {
            threads: 1,
            context_size: CONTEXT,
            max_batch_size: 2,
            max_concurrent: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let hs: Vec<_> = PROMPTS
        .iter()
        .map(|p| engine.submit(Request::text(*p, greedy(8))).unwrap())
        .collect();
    hs.into_iter()
        .map(|h| h.wait().unwrap().generated_ids)
        .collect()
}
