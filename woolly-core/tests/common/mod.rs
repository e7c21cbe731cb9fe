//! Shared helpers for the integration tests: where the default model and the references are.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/reference` beside the repository (as in CI's clone).
pub fn reference_dir() -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference"
    ));
    assert!(
        p.is_dir(),
        "{} is missing: the reference outputs live in ../shared/reference beside the repository",
        p.display()
    );
    p
}

/// The tiny reference model called `name` (e.g. `tiny-qwen2-mixed.gguf`).
pub fn tiny_model(name: &str) -> PathBuf {
    reference_dir().join("tiny").join(name)
}

/// The default model. Fails (never skips) when it is not installed.
pub fn default_model() -> PathBuf {
    woolly_core::model::resolve_model_path(None)
        .unwrap_or_else(|e| panic!("the default model is needed for this test: {e}"))
}
