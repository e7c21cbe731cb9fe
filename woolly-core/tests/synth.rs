//! Synthetic models: a skeleton of each reference model fills into a model that loads and
//! generates with finite logits; fills are deterministic in the seed.

use std::path::{Path, PathBuf};

use woolly_core::generate::{GenerateParams, SamplingParams, Session, SessionParams};
use woolly_core::gguf::synth::{synth_fill, synth_skeleton};
use woolly_core::gguf::GgufFile;
use woolly_core::model::{Model, ModelParams};
use woolly_core::testing;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("woolly-synth-{}-{name}", std::process::id()))
}

fn check(src: &Path) {
    let name = src.file_name().unwrap().to_string_lossy().to_string();
    let skel = tmp(&format!("{name}.skel"));
    let (a, b, c) = (
        tmp(&format!("{name}.1")),
        tmp(&format!("{name}.1b")),
        tmp(&format!("{name}.2")),
    );
    synth_skeleton(&GgufFile::open(src).unwrap(), &skel).unwrap();
    assert!(woolly_core::gguf::synth::read_skeleton(&skel).is_ok());
    assert!(
        std::fs::metadata(&skel).unwrap().len() < 16 << 20,
        "{name}: skeleton too big"
    );
    assert!(
        synth_fill(src, &a, 1).is_err(),
        "{name}: --fill on a full model must refuse"
    );
    synth_fill(&skel, &a, 1).unwrap();
    synth_fill(&skel, &b, 1).unwrap();
    synth_fill(&skel, &c, 2).unwrap();
    let (ba, bb, bc) = (
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        std::fs::read(&c).unwrap(),
    );
    assert_eq!(ba, bb, "{name}: same seed, same bytes");
    assert_ne!(ba, bc, "{name}: different seeds differ");
    let model = Model::load(Some(&a), &ModelParams::default()).unwrap();
    let mut s = Session::new(
        model,
        &SessionParams {
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let ids = s
        .model()
        .tokenizer()
        .encode("Hello world", true, false)
        .unwrap();
    let logits = s.logits_for(&ids).unwrap();
    assert!(
        logits.iter().all(|v| v.is_finite()),
        "{name}: non-finite logits"
    );
    let g = s
        .generate(
            "Hello world",
            &GenerateParams {
                max_tokens: 8,
                sampling: SamplingParams::greedy(),
                ..Default::default()
            },
            |_| true,
        )
        .unwrap();
    assert!(!g.generated_ids.is_empty(), "{name}");
    for p in [&skel, &a, &b, &c] {
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn tiny_models_synthesize_load_and_generate() {
    for name in [
        "tiny-llama-spm-q4_k_m.gguf",
        "tiny-llama-bpe-q4_0.gguf",
        "tiny-qwen2-mixed.gguf",
    ] {
        check(&testing::tiny_model(name));
    }
}

#[test]
fn default_model_synthesizes() {
    let p = testing::default_model();
    if !p.exists() {
        eprintln!("skipped: the default model is not at {}", p.display());
        return;
    }
    check(&p);
}
