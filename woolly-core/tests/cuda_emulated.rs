//! The CUDA backend end to end on the emulated device (`backend::cuda::emulator`: the kernels'
//! own source built for the host): a model loaded with its layers and output on the "GPU", and
//! with the pass split between the CPU's first layers and the GPU's last ones, computes the CPU's
//! logits and greedy tokens. This checks everything the backend launches (buffers, sizes,
//! offsets, the device KV cache across steps and sequences, the hand-over from the CPU's layers)
//! on machines without a GPU; `make gpu-check` does the same on a real one, with speed.
#![cfg(feature = "cuda-emulator")]

use std::sync::Arc;

use woolly_core::backend::cuda::emulator;
use woolly_core::generate::{GenerateParams, SamplingParams, Session, SessionParams};
use woolly_core::model::{Model, ModelParams};
use woolly_core::policy::placement::{GpuLayers, GpuParams};
use woolly_core::testing;

fn load(layers: GpuLayers) -> Arc<Model> {
    let params = ModelParams {
        context_size: 128,
        gpu: GpuParams {
            layers,
            ..Default::default()
        },
        ..Default::default()
    };
    Model::load(Some(&testing::synthetic_model()), &params).unwrap()
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

#[test]
fn the_cuda_backend_on_the_emulated_device_computes_the_cpus_logits_and_tokens() {
    emulator::install(&testing::host_kernels_library()).expect("load the host kernels");
    let cpu = load(GpuLayers::Count(0));
    assert!(!cpu.placement().uses_gpu());
    let n_layers = cpu.placement().layers.len();
    let prompt_ids: Vec<u32> = (1..24).map(|i| (i * 7 % 200 + 3) as u32).collect();
    let want_logits = session(&cpu).logits_for(&prompt_ids).unwrap();
    let want = session(&cpu)
        .generate("hello world", &greedy(10), |_| true)
        .unwrap();
    for layers in [GpuLayers::Auto, GpuLayers::Count(1)] {
        let gpu = load(layers);
        let p = gpu.placement();
        assert!(p.uses_gpu(), "{}", p.reason);
        let expect_layers = if layers == GpuLayers::Auto {
            n_layers
        } else {
            1
        };
        assert_eq!(p.gpu_layers(), expect_layers, "{}", p.reason);
        assert!(gpu.device_weight_bytes() > 0);
        let got = session(&gpu).logits_for(&prompt_ids).unwrap();
        let err = max_rel(&got, &want_logits);
        println!(
            "{layers:?}: {} of {n_layers} layers on the device, logits within {err:e}",
            p.gpu_layers()
        );
        assert!(err < 1e-3, "{layers:?}: logits differ by {err}");
        let g = session(&gpu)
            .generate("hello world", &greedy(10), |_| true)
            .unwrap();
        assert_eq!(g.prompt_ids, want.prompt_ids);
        assert_eq!(g.generated_ids, want.generated_ids, "{layers:?}");
    }
}
