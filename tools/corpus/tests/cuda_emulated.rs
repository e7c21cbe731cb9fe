//! The CUDA backend end to end on the emulated device (`woolly_core::backend::cuda::emulator`:
//! the kernels' own source built for the host): synthetic llama and gemma3 models with every
//! layer and the output on the "GPU", and with the pass split between the CPU's first layers and
//! the GPU's last ones, compute the CPU's logits and greedy tokens, alone and batched by an
//! Engine. This checks everything the backend launches (buffers, sizes, offsets, the device KV
//! cache across steps and sequences, sliding windows, QK-norm, the hand-over from the CPU's
//! layers) on machines without a GPU; `make gpu-check` does the same on a real one, with speed.

use std::path::PathBuf;
use std::sync::Arc;

use woolly_core::backend::cuda::emulator;
use woolly_core::engine::{Engine, EngineParams, Request};
use woolly_core::generate::{GenerateParams, SamplingParams, Session, SessionParams};
use woolly_core::model::{Model, ModelParams};
use woolly_core::policy::placement::{GpuLayers, GpuParams};
use woolly_corpus::{synthetic_gemma3, synthetic_llama, with_layers, Parts};

fn write(name: &str, p: Parts) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("emulated-{name}.gguf"));
    std::fs::write(&path, p.to_bytes()).unwrap();
    path
}

fn load(path: &std::path::Path, layers: GpuLayers) -> Arc<Model> {
    let params = ModelParams {
        context_size: 128,
        gpu: GpuParams {
            layers,
            ..Default::default()
        },
        ..Default::default()
    };
    Model::load(Some(path), &params).unwrap()
}

fn session(m: &Arc<Model>) -> Session {
    Session::new(
        m.clone(),
        &SessionParams {
            context_size: 128,
            threads: 1,
            ..Default::default()
        },
    )
    .unwrap()
}

fn greedy(n: usize) -> GenerateParams {
    GenerateParams {
        max_tokens: n,
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
        ..Default::default()
    }
}

fn max_rel(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / scale)
        .fold(0.0, f32::max)
}

const PROMPTS: [&str; 2] = ["hello world", "the quick brown fox jumps over"];

/// Each prompt's greedy tokens through an Engine batching both.
fn engine_tokens(m: &Arc<Model>) -> Vec<Vec<u32>> {
    let engine = Engine::new(
        m.clone(),
        EngineParams {
            threads: 1,
            context_size: 128,
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

#[test]
fn models_on_the_emulated_gpu_compute_the_cpus_logits_and_tokens() {
    emulator::install(&woolly_core::testing::host_kernels_library())
        .expect("load the host kernels");
    let prompt_ids: Vec<u32> = (1..24).map(|i| (i * 7 % 200 + 3) as u32).collect();
    // Each model all on the device, and split with 1 or 2 of 3 layers on it.
    for (name, parts, layers, split) in [
        ("llama-1", synthetic_llama(), 1u32, None),
        ("llama-3", with_layers(synthetic_llama(), 3), 3, Some(1)),
        ("gemma3-3", with_layers(synthetic_gemma3(), 3), 3, Some(2)),
    ] {
        let path = write(name, parts);
        let cpu = load(&path, GpuLayers::Count(0));
        assert!(!cpu.placement().uses_gpu());
        let want_logits = session(&cpu).logits_for(&prompt_ids).unwrap();
        let want: Vec<Vec<u32>> = PROMPTS
            .iter()
            .map(|p| {
                session(&cpu)
                    .generate(p, &greedy(8), |_| true)
                    .unwrap()
                    .generated_ids
            })
            .collect();
        assert_eq!(
            engine_tokens(&cpu),
            want,
            "{name}: the CPU's engine and sessions"
        );
        let mut counts = vec![GpuLayers::Auto];
        counts.extend(split.map(GpuLayers::Count));
        for gl in counts {
            let gpu = load(&path, gl);
            let p = gpu.placement();
            assert!(p.uses_gpu(), "{name} {gl:?}: {}", p.reason);
            let on = match gl {
                GpuLayers::Count(k) => k,
                _ => layers as usize,
            };
            assert_eq!(p.gpu_layers(), on, "{name} {gl:?}: {}", p.reason);
            assert!(gpu.device_weight_bytes() > 0);
            let got = session(&gpu).logits_for(&prompt_ids).unwrap();
            let err = max_rel(&got, &want_logits);
            println!("{name}: {on} of {layers} layers on the device, logits within {err:e}");
            // The CPU rounds the query to f16 and accumulates values in f16 (as llama.cpp
            // does); the kernels keep both in f32.
            assert!(err < 3e-3, "{name} {gl:?}: logits differ by {err}");
            for (p, w) in PROMPTS.iter().zip(&want) {
                let g = session(&gpu).generate(p, &greedy(8), |_| true).unwrap();
                assert_eq!(&g.generated_ids, w, "{name} {gl:?}: {p}");
            }
            assert_eq!(
                engine_tokens(&gpu),
                want,
                "{name} {gl:?}: batched by an engine"
            );
        }
    }
}
