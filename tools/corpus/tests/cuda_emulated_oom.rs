//! Out of device memory during generation, on an emulated GPU of 80 MiB (the emulator refuses
//! allocations past the memory it reports, as a GPU's allocator does): a synthetic model's
//! weights and scratch fit, a long context's KV cache does not. Under `on_device_oom error`
//! the session's generation and the engine request whose cache does not fit fail with
//! `OutOfDeviceMemory` while the engine's other request completes; under `cpu` (the default)
//! that sequence runs every layer on the CPU, producing the CPU model's logits and tokens, also
//! batched by an engine with a sequence that stays on the GPU, and the model counts one
//! fallback. The device memory comes back each time. A process installs the emulated devices
//! once, so this file is its own test binary.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use woolly_core::backend::cuda::emulator;
use woolly_core::engine::{Engine, EngineParams, Request};
use woolly_core::generate::{GenerateParams, SamplingParams, Session, SessionParams};
use woolly_core::gguf::Value;
use woolly_core::model::{Model, ModelParams};
use woolly_core::policy::placement::{DeviceOomPolicy, GpuLayers, GpuParams, Margin};
use woolly_core::ErrorKind;
use woolly_corpus::{synthetic_llama, with_layers};

/// The emulated device's memory: the planner's 64 MiB of scratch and the model fit.
const DEVICE_BYTES: u64 = 80 << 20;
/// A context whose device KV cache does not fit (8 + 8 values of 2 bytes per position and
/// layer: 192 MiB for 3 layers, 128 MiB for 2).
const HUGE: usize = 1 << 21;
/// A context whose cache (72 MiB for 3 layers, 48 MiB for 2) fits once, not twice.
const ONCE: usize = 3 << 18;

/// The tests share the device's memory: one at a time.
fn device() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    emulator::install_devices(
        &woolly_core::testing::host_kernels_library(),
        &[DEVICE_BYTES],
    )
    .expect("load the host kernels");
    g
}

/// The synthetic llama with 3 layers, trained (so it says) on a context of 2^21.
fn model_file() -> PathBuf {
    let mut p = with_layers(synthetic_llama(), 3);
    p.set("llama.context_length", Value::U32(HUGE as u32));
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oom-llama-3.gguf");
    std::fs::write(&path, p.to_bytes()).unwrap();
    path
}

/// The model planned for a 128-token context (whose KV cache fits), with a 1 MiB margin.
fn load(path: &Path, layers: GpuLayers, on_device_oom: DeviceOomPolicy) -> Arc<Model> {
    let params = ModelParams {
        context_size: 128,
        gpu: GpuParams {
            layers,
            margin: Margin::from_bytes(1 << 20),
            on_device_oom,
            ..Default::default()
        },
        ..Default::default()
    };
    Model::load(Some(path), &params).unwrap()
}

fn session(m: &Arc<Model>, context_size: usize) -> Session {
    Session::new(
        m.clone(),
        &SessionParams {
            context_size,
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

const PROMPTS: [&str; 2] = ["hello world", "the quick brown fox jumps over"];

/// Each prompt's greedy tokens on `m` in a session of `context_size`.
fn session_tokens(m: &Arc<Model>, context_size: usize) -> Vec<Vec<u32>> {
    PROMPTS
        .iter()
        .map(|p| {
            session(m, context_size)
                .generate(p, &greedy(8), |_| true)
                .unwrap()
                .generated_ids
        })
        .collect()
}

/// Both prompts submitted together to an engine of `context_size` (the first step waits for
/// the second, so both are admitted at once): each one's result.
fn engine_results(
    m: &Arc<Model>,
    context_size: usize,
) -> Vec<woolly_core::Result<woolly_core::generate::Generation>> {
    let engine = Engine::new(
        m.clone(),
        EngineParams {
            threads: 1,
            context_size,
            max_batch_size: 2,
            max_concurrent: 2,
            max_latency: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .unwrap();
    let hs: Vec<_> = PROMPTS
        .iter()
        .map(|p| engine.submit(Request::text(*p, greedy(8))).unwrap())
        .collect();
    hs.into_iter().map(|h| h.wait()).collect()
}

#[test]
fn the_default_policy_is_cpu_and_the_placement_says_so() {
    let _g = device();
    let path = model_file();
    let m = load(&path, GpuLayers::Auto, DeviceOomPolicy::default());
    assert_eq!(m.on_device_oom(), DeviceOomPolicy::Cpu);
    assert_eq!(m.placement().gpu_layers(), 3, "{}", m.placement().reason);
    assert_eq!(m.info().unwrap()["placement"]["on_device_oom"], "cpu");
    let e = load(&path, GpuLayers::Auto, DeviceOomPolicy::Error);
    assert_eq!(e.info().unwrap()["placement"]["on_device_oom"], "error");
    // A CPU-only load echoes the choice too.
    let c = load(&path, GpuLayers::Count(0), DeviceOomPolicy::Error);
    assert_eq!(c.placement().on_device_oom, DeviceOomPolicy::Error);
}

#[test]
fn under_error_a_session_whose_kv_cache_does_not_fit_fails_with_out_of_device_memory() {
    let _g = device();
    let path = model_file();
    let cpu = load(&path, GpuLayers::Count(0), DeviceOomPolicy::Error);
    let want = session_tokens(&cpu, 128);
    let gpu = load(&path, GpuLayers::Auto, DeviceOomPolicy::Error);
    assert_eq!(
        gpu.placement().gpu_layers(),
        3,
        "{}",
        gpu.placement().reason
    );
    let base = emulator::used_bytes(0);
    assert!(base > 0 && base < 1 << 20, "the model takes {base} bytes");

    let mut s = session(&gpu, HUGE);
    for _ in 0..2 {
        let e = s.generate(PROMPTS[0], &greedy(8), |_| true).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfDeviceMemory, "{e}");
        let msg = e.to_string();
        println!("{msg}");
        for part in ["GPU 0", "KV cache", "2097152-token", "needs 192.0 MiB"] {
            assert!(msg.contains(part), "{msg} lacks {part}");
        }
        // Nothing stays allocated, and the session can be used again (it fails again).
        assert_eq!(emulator::used_bytes(0), base);
    }
    assert_eq!(gpu.metrics().gpu_oom_fallbacks(), 0);
    // Sessions whose cache fits run on the GPU meanwhile.
    assert_eq!(session_tokens(&gpu, 128), want);
    drop(s);
    drop((gpu, cpu));
    assert_eq!(emulator::used_bytes(0), 0, "device memory left behind");
}

#[test]
fn under_cpu_a_session_whose_kv_cache_does_not_fit_runs_on_the_cpu() {
    let _g = device();
    let path = model_file();
    let ids: Vec<u32> = (1..24).map(|i| (i * 7 % 200 + 3) as u32).collect();
    let warnings = Arc::new(Mutex::new(Vec::<String>::new()));
    let w = warnings.clone();
    woolly_core::log::set_callback(Some(Arc::new(move |level, msg: &str| {
        if level == woolly_core::log::Level::Warn && msg.contains("on the CPU (on_device_oom") {
            w.lock().unwrap().push(msg.to_string());
        }
    })));
    let cpu = load(&path, GpuLayers::Count(0), DeviceOomPolicy::Cpu);
    let want_logits = session(&cpu, HUGE).logits_for(&ids).unwrap();
    let want = session_tokens(&cpu, HUGE);
    // Every layer on the GPU, and the first on the CPU with the other two on the GPU.
    for layers in [GpuLayers::Auto, GpuLayers::Count(2)] {
        let gpu = load(&path, layers, DeviceOomPolicy::Cpu);
        let on = match layers {
            GpuLayers::Count(n) => n,
            GpuLayers::Auto => 3,
        };
        assert_eq!(
            gpu.placement().gpu_layers(),
            on,
            "{}",
            gpu.placement().reason
        );
        let base = emulator::used_bytes(0);

        let mut s = session(&gpu, HUGE);
        let got = s.logits_for(&ids).unwrap();
        assert_eq!(got, want_logits, "{layers:?}: the CPU's logits, exactly");
        assert_eq!(gpu.metrics().gpu_oom_fallbacks(), 1);
        // The CPU holds the KV of every layer (as the CPU model's session does), within what
        // the session was charged for; nothing stays on the device.
        let mut c = session(&cpu, HUGE);
        c.logits_for(&ids).unwrap();
        assert_eq!(s.kv_cache_bytes(), c.kv_cache_bytes());
        assert!(s.charged_bytes() >= s.kv_cache_bytes() as u64);
        assert_eq!(emulator::used_bytes(0), base);
        drop((s, c));

        let got = session_tokens(&gpu, HUGE);
        assert_eq!(got, want, "{layers:?}: the CPU's tokens");
        assert_eq!(gpu.metrics().gpu_oom_fallbacks(), 3, "one per session");
        let text = woolly_core::metrics::Registry::global().render_prometheus();
        assert!(
            text.lines()
                .any(|l| l.starts_with("woolly_gpu_oom_fallbacks_total{") && l.ends_with(" 3")),
            "the counter is exported"
        );
        // A session whose cache fits stays on the GPU.
        let mut small = session(&gpu, 128);
        small.generate(PROMPTS[0], &greedy(8), |_| true).unwrap();
        assert_eq!(gpu.metrics().gpu_oom_fallbacks(), 3);
        assert!(emulator::used_bytes(0) > base, "its cache is on the device");
        drop(small);
        drop(gpu);
    }
    woolly_core::log::set_callback(None);
    // Once per model, for its first of three.
    let warnings = warnings.lock().unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    println!("{}", warnings[0]);
    assert!(
        warnings[0].contains("out of device memory on GPU 0"),
        "{}",
        warnings[0]
    );
    drop(cpu);
    assert_eq!(emulator::used_bytes(0), 0, "device memory left behind");
}

#[test]
fn an_engine_fails_only_the_request_whose_kv_cache_does_not_fit() {
    let _g = device();
    let path = model_file();
    let cpu = load(&path, GpuLayers::Count(0), DeviceOomPolicy::Error);
    let want = session_tokens(&cpu, ONCE);
    let gpu = load(&path, GpuLayers::Auto, DeviceOomPolicy::Error);
    let results = engine_results(&gpu, ONCE);
    let mut failed = 0;
    for (r, w) in results.iter().zip(&want) {
        match r {
            Ok(g) => assert_eq!(&g.generated_ids, w, "the other request's tokens"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::OutOfDeviceMemory, "{e}");
                assert!(e.to_string().contains("786432-token"), "{e}");
                failed += 1;
            }
        }
    }
    assert_eq!(failed, 1, "one of the two caches fits");
    assert_eq!(gpu.metrics().gpu_oom_fallbacks(), 0);
    drop((gpu, cpu));
    assert_eq!(emulator::used_bytes(0), 0, "device memory left behind");
}

#[test]
fn under_cpu_an_engine_batches_a_sequence_on_the_gpu_with_one_on_the_cpu() {
    let _g = device();
    let path = model_file();
    let cpu = load(&path, GpuLayers::Count(0), DeviceOomPolicy::Cpu);
    let want = session_tokens(&cpu, ONCE);
    for layers in [GpuLayers::Auto, GpuLayers::Count(2)] {
        let gpu = load(&path, layers, DeviceOomPolicy::Cpu);
        let got: Vec<Vec<u32>> = engine_results(&gpu, ONCE)
            .into_iter()
            .map(|r| r.unwrap().generated_ids)
            .collect();
        assert_eq!(got, want, "{layers:?}: both requests, the CPU's tokens");
        assert_eq!(gpu.metrics().gpu_oom_fallbacks(), 1, "{layers:?}");
        drop(gpu);
    }
    drop(cpu);
    assert_eq!(emulator::used_bytes(0), 0, "device memory left behind");
}
