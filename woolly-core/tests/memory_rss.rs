//! The memory estimate against what the process really holds. Alone in its test binary, so
//! that no other test's memory moves the figures.

use woolly_core::generate::{GenerateParams, SamplingParams, Session, SessionParams};
use woolly_core::model::{Model, ModelParams};
use woolly_core::platform::process::rss_bytes;
use woolly_core::testing;

#[cfg(target_os = "linux")]
#[test]
fn the_estimate_matches_the_resident_memory_of_a_loaded_model_in_use() {
    let path = testing::default_model();
    let params = ModelParams {
        context_size: 4096,
        ..Default::default()
    };
    let est = Model::estimate(Some(&path), &params).unwrap();
    let before = rss_bytes().unwrap();
    let m = Model::load(Some(&path), &params).unwrap();
    let mut s = Session::new(
        m.clone(),
        &SessionParams {
            context_size: 4096,
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    // A prompt of a few hundred tokens and some generation touch every weight; fill the
    // whole context's KV cache so that the session's full estimate is in use.
    let prompt = "The history of the printing press is long. ".repeat(40);
    s.generate(
        &prompt,
        &GenerateParams {
            max_tokens: 16,
            sampling: SamplingParams::greedy(),
            ..Default::default()
        },
        |_| true,
    )
    .unwrap();
    let used = rss_bytes().unwrap() - before;
    // The KV cache grows with use: count what it holds, not its capacity.
    let expected = est.model_bytes() + est.scratch_bytes + s.kv_cache_bytes() as u64;
    let ratio = used as f64 / expected as f64;
    eprintln!(
        "estimate {:.1} MiB (model {:.1}, scratch {:.1}, kv in use {:.1}); resident {:.1} MiB; ratio {ratio:.3}",
        expected as f64 / 1048576.0,
        est.model_bytes() as f64 / 1048576.0,
        est.scratch_bytes as f64 / 1048576.0,
        s.kv_cache_bytes() as f64 / 1048576.0,
        used as f64 / 1048576.0
    );
    assert!(
        (0.85..=1.15).contains(&ratio),
        "estimate off: ratio {ratio:.3}"
    );
}
