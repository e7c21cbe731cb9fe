//! The CUDA backend end to end on the emulated device (`woolly_core::backend::cuda::emulator`:
//! the kernels' own source built for the host): synthetic llama and gemma3 models with every
//! layer and the output on the "GPU", and with the pass split between the CPU's first layers and
//! the GPU's last ones, compute the CPU's logits and greedy tokens, alone and batched by an
//! Engine. This checks everything the backend launches (buffers, sizes, offsets, the device KV
//! cache across steps and sequences, sliding windows, QK-norm, the hand-over from the CPU's
//! layers) on machines without a GPU; `make gpu-check` does the same on a real one, with speed.

mod common;

use common::{engine_tokens, greedy, load, max_rel, on, session, write, PROMPTS};
use woolly_core::backend::cuda::emulator;
use woolly_core::policy::placement::GpuLayers;
use woolly_corpus::{synthetic_gemma3, synthetic_llama, with_layers};

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
        let path = write(&format!("emulated-{name}"), parts);
        let cpu = load(&path, on(GpuLayers::Count(0)));
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
            let gpu = load(&path, on(gl));
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
                let before = gpu.metrics().gpu_activity();
                let g = session(&gpu).generate(p, &greedy(8), |_| true).unwrap();
                assert_eq!(&g.generated_ids, w, "{name} {gl:?}: {p}");
                // The 7 decoding steps after the prompt: the first captured as a CUDA graph,
                // the others replaying it (their launches are the same; positions and the cache
                // are read from device memory).
                let after = gpu.metrics().gpu_activity();
                assert_eq!(
                    after.graph_captures - before.graph_captures,
                    1,
                    "{name} {gl:?}"
                );
                assert_eq!(
                    after.graph_replays - before.graph_replays,
                    6,
                    "{name} {gl:?}"
                );
                assert!(after.busy_seconds > before.busy_seconds);
            }
            assert_eq!(
                engine_tokens(&gpu),
                want,
                "{name} {gl:?}: batched by an engine"
            );
        }
    }
}
