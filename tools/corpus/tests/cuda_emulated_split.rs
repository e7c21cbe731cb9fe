//! One model split across several emulated GPUs (the planner's layer split, pipeline
//! parallel): each device runs its contiguous layers with its own KV cache, the activations
//! pass from one device to the next through the host, and the output projection runs on the
//! last. The logits and greedy tokens equal the CPU's, alone and batched by an Engine, with
//! every layer on the devices and with the first on the CPU. A process installs the emulated
//! devices once, so this file is its own test binary, apart from `cuda_emulated.rs`.

mod common;

use common::{engine_tokens, greedy, load, max_rel, on, session, write, PROMPTS};
use woolly_core::backend::cuda::emulator;
use woolly_core::policy::placement::GpuLayers;
use woolly_corpus::{synthetic_gemma3, synthetic_llama, with_layers};

#[test]
fn a_model_split_across_three_emulated_gpus_computes_the_cpus_logits_and_tokens() {
    // Three devices of equal memory: the output and four layers split among them in proportion
    // to their bytes, so the activations cross two device boundaries or more.
    emulator::install_devices(
        &woolly_core::testing::host_kernels_library(),
        &[4 << 30, 4 << 30, 4 << 30],
    )
    .expect("load the host kernels");
    let prompt_ids: Vec<u32> = (1..24).map(|i| (i * 7 % 200 + 3) as u32).collect();
    // Both on the devices, and llama also with its first layer on the CPU.
    for (name, parts, counts) in [
        (
            "llama-4",
            with_layers(synthetic_llama(), 4),
            &[(GpuLayers::Auto, 4usize), (GpuLayers::Count(3), 3)][..],
        ),
        (
            "gemma3-4",
            with_layers(synthetic_gemma3(), 4),
            &[(GpuLayers::Auto, 4)][..],
        ),
    ] {
        let path = write(&format!("split-{name}"), parts);
        let cpu = load(&path, on(GpuLayers::Count(0)));
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
        for &(gl, on_devices) in counts {
            let gpu = load(&path, on(gl));
            let p = gpu.placement();
            assert_eq!(p.gpu_layers(), on_devices, "{name} {gl:?}: {}", p.reason);
            let mut used: std::collections::BTreeSet<usize> =
                p.layers.iter().flatten().copied().collect();
            assert!(
                used.len() >= 2,
                "{name} {gl:?}: the layers should span several devices: {:?} ({})",
                p.layers,
                p.reason
            );
            used.extend(p.output);
            assert_eq!(
                p.devices.len(),
                used.len(),
                "{name} {gl:?}: {:?}",
                p.devices
            );
            // Each device's layers are contiguous, in device order.
            let mut seen = Vec::new();
            for d in p.layers.iter().flatten() {
                if seen.last() != Some(d) {
                    assert!(!seen.contains(d), "{name}: {:?} not contiguous", p.layers);
                    seen.push(*d);
                }
            }
            let got = session(&gpu).logits_for(&prompt_ids).unwrap();
            let err = max_rel(&got, &want_logits);
            println!(
                "{name} {gl:?}: layers on {:?}, output on {:?}, logits within {err:e}",
                p.layers, p.output
            );
            assert!(err < 3e-3, "{name} {gl:?}: logits differ by {err}");
            for (prompt, w) in PROMPTS.iter().zip(&want) {
                let g = session(&gpu)
                    .generate(prompt, &greedy(8), |_| true)
                    .unwrap();
                assert_eq!(&g.generated_ids, w, "{name} {gl:?}: {prompt}");
            }
            assert_eq!(
                engine_tokens(&gpu),
                want,
                "{name} {gl:?}: batched by an engine"
            );
        }
    }
}
