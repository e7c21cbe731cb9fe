//! Time to first token for each preload strategy with the model file's pages cold (evicted
//! from the page cache with posix_fadvise DONTNEED on that file alone) and warm, with peak
//! RSS. Each measurement runs in a fresh child process, on a private copy of the model.
//!
//! `cargo run --release -p woolly-core --example preload_bench [MODEL]`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use woolly_core::generate::{GenerateParams, SamplingParams, Session, SessionParams};
use woolly_core::gguf::GgufFile;
use woolly_core::model::{Model, ModelParams, Preload};

const PROMPT: &str = "The history of the printing press begins in";

/// One measurement in this process: load, then the first token of a short prompt.
fn child(path: &Path, preload: Preload, cold: bool) -> Result<(), Box<dyn std::error::Error>> {
    if cold {
        GgufFile::evict_page_cache(path)?;
    }
    let start = Instant::now();
    let model = Model::load(
        Some(path),
        &ModelParams {
            preload,
            ..Default::default()
        },
    )?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut s = Session::new(
        model.clone(),
        &SessionParams {
            threads: 2,
            ..Default::default()
        },
    )?;
    let mut first = None;
    s.generate(
        PROMPT,
        &GenerateParams {
            max_tokens: 1,
            sampling: SamplingParams::greedy(),
            ..Default::default()
        },
        |_| {
            first.get_or_insert(start.elapsed());
            true
        },
    )?;
    let ttft_ms = first.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    let peak = woolly_core::platform::process::peak_rss_bytes().unwrap_or(0);
    println!(
        "{load_ms:.1} {ttft_ms:.1} {:.1}",
        peak as f64 / (1 << 20) as f64
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 5 && args[1] == "--child" {
        return child(
            Path::new(&args[2]),
            Preload::from_name(&args[3])?,
            args[4] == "cold",
        );
    }
    let source = match args.get(1) {
        Some(p) => PathBuf::from(p),
        None => woolly_core::model::resolve_model_path(None)?,
    };
    // A private copy: no other process maps it, so evicting its pages really makes it cold.
    let dir = std::env::temp_dir().join(format!("woolly-preload-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("model.gguf");
    std::fs::copy(&source, &path)?;
    std::fs::File::open(&path)?.sync_all()?;
    let exe = std::env::current_exe()?;
    println!("| preload | page cache | load ms | time to first token ms | peak RSS MiB |");
    println!("|---|---|---|---|---|");
    for preload in Preload::ALL {
        for cache in ["cold", "warm"] {
            // The median of three runs.
            let mut runs = Vec::new();
            for _ in 0..3 {
                if cache == "warm" {
                    // Warm: the whole file in the page cache first.
                    let f = GgufFile::open(&path)?;
                    f.prefault();
                }
                let out = Command::new(&exe)
                    .args(["--child", path.to_str().unwrap(), preload.name(), cache])
                    .output()?;
                if !out.status.success() {
                    return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
                }
                let v: Vec<f64> = String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(|x| x.parse().unwrap_or(f64::NAN))
                    .collect();
                runs.push(v);
            }
            runs.sort_by(|a, b| a[1].total_cmp(&b[1]));
            let m = &runs[1];
            println!(
                "| {} | {cache} | {:.0} | {:.0} | {:.0} |",
                preload.name(),
                m[0],
                m[1],
                m[2]
            );
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
