//! Helpers shared by Woolly's tests, examples and benchmarks: deterministic pseudo-random data and
//! where the models and llama.cpp's reference outputs are.
//!
//! Compiled for this crate's unit tests and, with the `test-support` feature, for its integration
//! tests and examples (woolly-core lists itself as a dev-dependency with that feature) and for the
//! other crates' tests. Not part of the API, and not in a normal build.

use std::path::{Path, PathBuf};

pub use crate::quant::random::{random_weights, scale_fields, XorShift};

/// The repository's root (the folder above woolly-core).
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `../shared/reference` beside the repository (as in CI's clone), whether or not it is there.
pub fn reference_path() -> PathBuf {
    repo_root().join("../shared/reference")
}

/// `../shared/reference` beside the repository. Fails (never skips) when it is missing.
pub fn reference_dir() -> PathBuf {
    let p = reference_path();
    assert!(
        p.is_dir(),
        "{} is missing: the reference outputs live in ../shared/reference beside the repository",
        p.display()
    );
    p
}

/// The tiny reference model (or its outputs) called `name`, e.g. `tiny-qwen2-mixed.gguf`.
pub fn tiny_model(name: &str) -> PathBuf {
    reference_dir().join("tiny").join(name)
}

/// The JSON file at `path`; panics naming the path when it cannot be read or parsed.
pub fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The reference output at `rel` inside [`reference_dir`], e.g. `gemma3-270m/tokenize.json`.
pub fn reference_json(rel: &str) -> serde_json::Value {
    read_json(&reference_dir().join(rel))
}

/// The default model (`$WOOLLY_MODEL`, else the one `make model` installs), as Woolly resolves
/// it. Fails (never skips) when it is not installed.
pub fn default_model() -> PathBuf {
    crate::model::resolve_model_path(None)
        .unwrap_or_else(|e| panic!("the default model is needed for this test: {e}"))
}

/// The checked-in hostile corpus, `tests/hostile`.
pub fn hostile_dir() -> PathBuf {
    repo_root().join("tests/hostile")
}

/// The synthetic model of the hostile corpus: small, valid, loads in a millisecond.
pub fn synthetic_model() -> PathBuf {
    hostile_dir().join("synthetic-llama.gguf")
}

/// The CUDA kernels (kernels/) built for the host as a library (kernels/host/twin.cpp), by the
/// system's C++20 compiler (`$CXX`, else `g++`), once per version of their sources: for
/// [`crate::backend::cuda::emulator`] and the kernel checks of machines without a GPU. Fails
/// (never skips) when the compiler does.
pub fn host_kernels_library() -> PathBuf {
    use std::hash::{Hash, Hasher};
    let dir = repo_root().join("kernels");
    let mut sources: Vec<PathBuf> = ["", "host"]
        .iter()
        .flat_map(|d| std::fs::read_dir(dir.join(d)).expect("kernels/ is readable"))
        .map(|e| e.expect("kernels/ is readable").path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("cu" | "cuh" | "h" | "cpp")
            )
        })
        .collect();
    sources.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in &sources {
        std::fs::read(p).expect("a kernel source").hash(&mut h);
    }
    let out_dir = repo_root().join("target/kernels-host");
    std::fs::create_dir_all(&out_dir).expect("create target/kernels-host");
    let out = out_dir.join(format!("woolly-kernels-{:016x}.so", h.finish()));
    if out.is_file() {
        return out;
    }
    let tmp = out_dir.join(format!("building-{}.so", std::process::id()));
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    let status = std::process::Command::new(&cxx)
        .args(["-std=c++20", "-O2", "-shared", "-fPIC", "-pthread", "-o"])
        .arg(&tmp)
        .arg(dir.join("host/twin.cpp"))
        .status()
        .unwrap_or_else(|e| {
            panic!("{cxx} (a C++20 compiler builds the kernels for the host): {e}")
        });
    assert!(
        status.success(),
        "{cxx} failed on kernels/host/twin.cpp ({status})"
    );
    std::fs::rename(&tmp, &out).expect("move the host kernels in place");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sequence the tests were written against: xorshift64 (13, 7, 17), and `next_f32` equal
    /// bit for bit to the two formulas the former copies used.
    #[test]
    fn the_generator_keeps_its_sequence() {
        let mut rng = XorShift(1);
        assert_eq!(
            [rng.next_u64(), rng.next_u64(), rng.next_u64()],
            [0x4082_2041, 0x1000_4106_0c01_1441, 0x9b1e_842f_6e86_2629]
        );
        let (mut a, mut b) = (
            XorShift(0x9e37_79b9_7f4a_7c15),
            XorShift(0x9e37_79b9_7f4a_7c15),
        );
        for _ in 0..10_000 {
            let x = (b.next_u64() >> 40) as f32;
            let f = a.next_f32();
            assert_eq!(f.to_bits(), (x / (1u64 << 24) as f32 * 2.0 - 1.0).to_bits());
            assert_eq!(f.to_bits(), (x / (1u64 << 23) as f32 - 1.0).to_bits());
        }
        assert_eq!(XorShift(7).below(0), 0);
    }
}
