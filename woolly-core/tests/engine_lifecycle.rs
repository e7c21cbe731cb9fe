//! Engines created and freed one after another leave nothing behind: their metric series go
//! with them (the Prometheus text and the series count return to the baseline) and the
//! process's resident memory stays flat. Alone in its test binary, so that no other test's
//! engines or memory move the figures.

use std::sync::Arc;
use std::time::Duration;

use woolly_core::engine::{Engine, EngineParams, Request};
use woolly_core::generate::{GenerateParams, SamplingParams};
use woolly_core::metrics::Registry;
use woolly_core::model::{Model, ModelParams};
use woolly_core::testing;

fn synthetic() -> Arc<Model> {
    Model::load(Some(&testing::synthetic_model()), &ModelParams::default()).unwrap()
}

/// One engine that runs one request (so that it reports its series), then is dropped.
fn engine_round(model: &Arc<Model>) {
    let e = Engine::new(
        model.clone(),
        EngineParams {
            threads: 1,
            context_size: 64,
            max_batch_size: 2,
            max_concurrent: 2,
            prefill_chunk: 16,
            ..Default::default()
        },
    )
    .unwrap();
    let g = e
        .submit(Request::text(
            "hello",
            GenerateParams {
                max_tokens: 2,
                sampling: SamplingParams::greedy(),
                ignore_eos: true,
                ..Default::default()
            },
        ))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(g.generated_ids.len(), 2);
}

fn settled_rss() -> u64 {
    extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: glibc's malloc_trim only returns free memory to the system.
    unsafe { malloc_trim(0) };
    std::thread::sleep(Duration::from_millis(100));
    woolly_core::platform::process::rss_bytes().unwrap()
}

fn engine_series(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains("engine=\"engine-"))
        .count()
}

#[cfg(target_os = "linux")]
#[test]
fn freed_engines_release_their_series_and_memory() {
    let model = synthetic();
    // Warm-up: allocator pools, the registry's families, the model's pages.
    for _ in 0..30 {
        engine_round(&model);
    }
    let registry = Registry::global();
    let base_text = registry.render_prometheus();
    let base_series = registry.series_count();
    assert_eq!(engine_series(&base_text), 0, "a freed engine left series");
    let base_rss = settled_rss();

    // While an engine lives, its series are there.
    {
        let e = Engine::new(
            model.clone(),
            EngineParams {
                threads: 1,
                context_size: 64,
                ..Default::default()
            },
        )
        .unwrap();
        e.submit(Request::text(
            "hi",
            GenerateParams {
                max_tokens: 1,
                ..Default::default()
            },
        ))
        .unwrap()
        .wait()
        .unwrap();
        assert!(engine_series(&registry.render_prometheus()) > 0);
    }

    const N: usize = 300;
    for _ in 0..N {
        engine_round(&model);
    }
    let text = registry.render_prometheus();
    let rss = settled_rss();
    let growth = rss as i64 - base_rss as i64;
    println!(
        "{N} engines: series {base_series} -> {}, Prometheus text {} -> {} bytes, RSS {:.1} -> {:.1} MiB ({:+.1} KiB per engine)",
        registry.series_count(),
        base_text.len(),
        text.len(),
        base_rss as f64 / 1048576.0,
        rss as f64 / 1048576.0,
        growth as f64 / 1024.0 / N as f64
    );
    assert_eq!(
        engine_series(&text),
        0,
        "freed engines left series:\n{text}"
    );
    assert_eq!(registry.series_count(), base_series);
    // Other series (the process's memory, the model's counters) change value, not number:
    // the text keeps its size within a few hundred bytes.
    assert!(
        text.len() <= base_text.len() + 512,
        "the Prometheus text grew from {} to {} bytes",
        base_text.len(),
        text.len()
    );
    // 50 KiB an engine would be 15 MiB; allow 4 MiB of allocator noise.
    assert!(
        growth < 4 << 20,
        "RSS grew {:.1} MiB over {N} engines",
        growth as f64 / 1048576.0
    );
}
