//! Diagnostics: what Woolly is, what it found on this machine and what it chose, as JSON,
//! for bug reports and support (every front end exposes the same report), and the *doctor*:
//! the machine (CPU, memory, GPU), measured generation speed on a model, and the settings
//! those measurements recommend.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::engine::{Engine, EngineParams, Request};
use crate::generate::{GenerateParams, SamplingParams, Session, SessionParams};
use crate::model::{default_model_path, resolve_model_path, Model, ModelParams};
use crate::platform::memory::MemoryInfo;
use crate::platform::{cuda, gpu, process, Hardware};
use crate::policy::memory::default_reserve;
use crate::policy::{threads, threads_for, Workload};

/// The report for this process; with `model`, also that model's facts and counters.
pub fn report(model: Option<&Model>) -> Value {
    let hw = Hardware::detect();
    let default_model = default_model_path();
    let mut r = json!({
        "woolly_version": crate::VERSION,
        "build": {
            "target_arch": std::env::consts::ARCH,
            "target_os": std::env::consts::OS,
            "debug_assertions": cfg!(debug_assertions),
        },
        "hardware": hw.to_json(),
        "kernels": hw.simd.best_kernel(),
        "thread_policy": threads::policy_json(&hw),
        "cuda": cuda::report().to_json(),
        "process": {
            "pid": std::process::id(),
            "rss_bytes": process::rss_bytes(),
            "peak_rss_bytes": process::peak_rss_bytes(),
        },
        "default_model": {
            "path": default_model.as_ref().map(|p| p.display().to_string()),
            "installed": default_model.as_ref().is_some_and(|p| p.is_file()),
            "env_WOOLLY_MODEL": std::env::var("WOOLLY_MODEL").ok(),
        },
        "system_changes": "none (Woolly adapts its own threads and memory; it never changes system settings)",
    });
    if let Some(m) = model {
        let mut info = m
            .info()
            .unwrap_or_else(|e| json!({ "error": e.to_string() }));
        info["metrics"] = m.metrics().snapshot().to_json();
        r["model"] = info;
    }
    r
}

/// What [`doctor_with`] measures.
#[derive(Debug, Clone)]
pub struct DoctorOptions {
    /// The model to measure (`None`: `$WOOLLY_MODEL`, then the installed default model).
    pub model: Option<PathBuf>,
    /// Measure generation on the model (false: the machine only, in milliseconds).
    pub measure: bool,
    /// Engine batch sizes to measure: `b` concurrent requests with `max_batch_size =
    /// max_concurrent = b`.
    pub batch_sizes: Vec<usize>,
    /// Tokens each request generates.
    pub tokens: usize,
    /// Thread counts of the single-request check (empty: 1, 2 and Woolly's generation
    /// policy, at most the logical cores).
    pub thread_candidates: Vec<usize>,
    /// Measurements not started by then are skipped (and reported so).
    pub time_limit: Duration,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        DoctorOptions {
            model: None,
            measure: true,
            batch_sizes: vec![1, 2, 4, 8, 16],
            tokens: 16,
            thread_candidates: Vec::new(),
            time_limit: Duration::from_secs(60),
        }
    }
}

/// [`doctor_with`] the default options and `model`.
pub fn doctor(model: Option<&Path>, progress: &mut dyn FnMut(f32, &str)) -> Value {
    doctor_with(
        &DoctorOptions {
            model: model.map(Path::to_path_buf),
            ..DoctorOptions::default()
        },
        progress,
    )
}

/// The doctor's report: an object with exactly the keys `cpu`, `memory`, `gpu` (NVML's figures,
/// with the CUDA driver's devices under `gpu.cuda`), `inference` and `recommendations`. `progress` hears the fraction done (0 to 1) and what runs now; a
/// model that cannot be loaded or measured leaves `inference.error` (the rest is still there).
///
/// The measurements, on 2 cores a few seconds in all: a warm-up, one request of
/// `options.tokens` tokens at each thread count of the check, then for each batch size `b` an
/// engine with `max_batch_size = max_concurrent = b` serving `b` concurrent requests;
/// `tok_s` is all generated tokens over the wall time from the first submission to the last
/// answer (prompts included).
pub fn doctor_with(options: &DoctorOptions, progress: &mut dyn FnMut(f32, &str)) -> Value {
    progress(0.0, "reading the machine");
    let hw = Hardware::detect();
    let mem = MemoryInfo::detect();
    let cpu = cpu_json(&hw);
    let memory = memory_json(&mem);
    let mut gpu = gpu::detect().to_json();
    gpu["cuda"] = cuda::report().to_json();
    let (inference, model_bytes) = if options.measure {
        match measure(options, &hw, progress) {
            Ok(v) => v,
            Err(e) => (json!({ "error": e.to_string() }), None),
        }
    } else {
        (json!({ "skipped": "not asked to measure" }), None)
    };
    let recommendations = recommend(&hw, &mem, &inference, model_bytes, Path::new("/"));
    progress(1.0, "done");
    json!({
        "cpu": cpu,
        "memory": memory,
        "gpu": gpu,
        "inference": inference,
        "recommendations": recommendations,
    })
}

fn read_trim(p: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// `(processors, distinct physical ids, distinct (physical id, core id) pairs, vendor, mean MHz)`
/// from `/proc/cpuinfo`.
fn cpuinfo() -> (usize, usize, usize, Option<String>, Option<f64>) {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut processors = 0;
    let mut sockets = std::collections::BTreeSet::new();
    let mut cores = std::collections::BTreeSet::new();
    let (mut vendor, mut mhz, mut n_mhz) = (None, 0.0, 0);
    let mut phys = String::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => processors += 1,
            "physical id" => {
                phys = v.to_string();
                sockets.insert(phys.clone());
            }
            "core id" => {
                cores.insert((phys.clone(), v.to_string()));
            }
            "vendor_id" | "CPU implementer" if vendor.is_none() => vendor = Some(v.to_string()),
            "cpu MHz" => {
                if let Ok(f) = v.parse::<f64>() {
                    mhz += f;
                    n_mhz += 1;
                }
            }
            _ => {}
        }
    }
    let mean = (n_mhz > 0).then(|| mhz / n_mhz as f64);
    (processors, sockets.len(), cores.len(), vendor, mean)
}

fn cpu_json(hw: &Hardware) -> Value {
    let (processors, sockets, cpuinfo_cores, vendor, cpuinfo_mhz) = cpuinfo();
    let freq = |f: &str| {
        read_trim(format!("/sys/devices/system/cpu/cpu0/cpufreq/{f}"))
            .and_then(|s| s.parse::<f64>().ok())
            .map(|khz| khz / 1e3)
    };
    let (cur, max, min) = (
        freq("scaling_cur_freq"),
        freq("cpuinfo_max_freq"),
        freq("cpuinfo_min_freq"),
    );
    let frequency = if cur.is_some() || max.is_some() {
        json!({ "current_mhz": cur, "max_mhz": max, "min_mhz": min, "source": "cpufreq" })
    } else if let Some(m) = cpuinfo_mhz {
        json!({ "current_mhz": m, "max_mhz": null, "min_mhz": null, "source": "/proc/cpuinfo" })
    } else {
        json!({ "current_mhz": null, "max_mhz": null, "min_mhz": null, "source": null })
    };
    let simd = serde_json::to_value(hw.simd).unwrap_or(Value::Null);
    let features: Vec<&str> = simd
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, v)| v.as_bool() == Some(true))
                .map(|(k, _)| k.as_str())
                .collect()
        })
        .unwrap_or_default();
    json!({
        "model": hw.cpu_name,
        "vendor": vendor,
        "arch": hw.arch,
        "logical_cores": hw.logical_cores,
        "physical_cores": hw.physical_cores,
        "online_processors": if processors > 0 { processors } else { hw.logical_cores },
        "sockets": sockets.max(1),
        "cpuinfo_physical_cores": (cpuinfo_cores > 0).then_some(cpuinfo_cores),
        "frequency": frequency,
        "caches": hw.caches,
        "simd": simd,
        "simd_features": features,
        "kernels": crate::kernels::cpu::simd_level(),
        "thread_policy": threads::policy_json(hw),
    })
}

fn memory_json(m: &MemoryInfo) -> Value {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let thp = read_trim("/sys/kernel/mm/transparent_hugepage/enabled").and_then(|s| {
        s.split_whitespace()
            .find(|w| w.starts_with('['))
            .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_string())
    });
    json!({
        "total_bytes": m.total_bytes,
        "available_bytes": m.available_bytes,
        "reserve_bytes": default_reserve(m.total_bytes),
        "page_size": m.page_size,
        "huge_page_size": m.huge_page_size,
        "transparent_huge_pages": thp,
        "huge_pages_total": field("HugePages_Total:"),
        "huge_pages_free": field("HugePages_Free:"),
        "swap_total_bytes": field("SwapTotal:").map(|k| k * 1024),
        "swap_free_bytes": field("SwapFree:").map(|k| k * 1024),
        "process_rss_bytes": process::rss_bytes(),
    })
}

const PROMPTS: [&str; 4] = [
    "The capital of France is",
    "Once upon a time, in a small village,",
    "The three primary colors are",
    "A recipe for pancakes needs",
];

fn greedy(tokens: usize) -> GenerateParams {
    GenerateParams {
        max_tokens: tokens,
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
        ..Default::default()
    }
}

/// Measures generation on the model; returns the `inference` object and the model's bytes.
fn measure(
    o: &DoctorOptions,
    hw: &Hardware,
    progress: &mut dyn FnMut(f32, &str),
) -> crate::Result<(Value, Option<u64>)> {
    let start = Instant::now();
    let deadline = start + o.time_limit;
    let tokens = o.tokens.max(2);
    let path = resolve_model_path(o.model.as_deref())?;
    progress(0.02, &format!("loading {}", path.display()));
    let model = Model::load(Some(&path), &ModelParams::default())?;
    if let Some(stem) = path.file_stem() {
        model.metrics().set_label(stem.to_string_lossy());
    }
    let load_ms = model.load_time().as_secs_f64() * 1e3;
    let context = 256.max(tokens + 64);
    let session = |threads: usize| {
        Session::new(
            model.clone(),
            &SessionParams {
                threads,
                context_size: context,
                ..Default::default()
            },
        )
    };

    // Warm-up: the first pass reads the weights from disk and fills the caches.
    progress(0.08, "warming up");
    session(0)?.generate(PROMPTS[0], &greedy(4), |_| true)?;

    let mut candidates: Vec<usize> = if o.thread_candidates.is_empty() {
        vec![1, 2, threads_for(hw, Workload::TokenGeneration)]
    } else {
        o.thread_candidates.clone()
    };
    candidates.retain(|&t| t >= 1 && t <= hw.logical_cores.max(1));
    candidates.sort_unstable();
    candidates.dedup();
    if candidates.is_empty() {
        candidates.push(1);
    }
    // Each count twice, alternating, and the faster run kept: a burst of other work on the
    // machine then spoils one run rather than the comparison.
    let mut best: Vec<Option<crate::generate::Timings>> = vec![None; candidates.len()];
    let rounds = 2;
    for round in 0..rounds {
        for (i, &t) in candidates.iter().enumerate() {
            if round > 0 && Instant::now() > deadline {
                break;
            }
            let step = round * candidates.len() + i;
            progress(
                0.1 + 0.2 * step as f32 / (rounds * candidates.len()) as f32,
                &format!("one request, {t} thread{}", if t == 1 { "" } else { "s" }),
            );
            let g = session(t)?.generate(PROMPTS[0], &greedy(tokens), |_| true)?;
            if best[i]
                .as_ref()
                .is_none_or(|b| g.timings.gen_tok_s > b.gen_tok_s)
            {
                best[i] = Some(g.timings);
            }
        }
    }
    let thread_runs: Vec<Value> = candidates
        .iter()
        .zip(&best)
        .filter_map(|(&t, b)| {
            b.as_ref().map(|b| {
                json!({
                    "threads": t,
                    "tok_s": b.gen_tok_s,
                    "prompt_tok_s": b.prompt_tok_s,
                    "ttft_ms": b.ttft_ms,
                    "generated_tokens": b.generated_tokens,
                })
            })
        })
        .collect();

    let engine_threads = threads_for(hw, Workload::BatchInference);
    let total_weight: usize = o.batch_sizes.iter().sum::<usize>().max(1);
    let mut done_weight = 0;
    let mut batches = Vec::new();
    for &b in &o.batch_sizes {
        let frac = 0.3 + 0.7 * done_weight as f32 / total_weight as f32;
        done_weight += b;
        if b == 0 {
            continue;
        }
        if Instant::now() > deadline {
            batches.push(json!({ "batch_size": b, "skipped": "time limit reached" }));
            continue;
        }
        progress(
            frac,
            &format!("batch of {b}: {b} requests × {tokens} tokens"),
        );
        batches.push(measure_batch(&model, b, tokens, context, engine_threads)?);
    }
    let inference = json!({
        "woolly_version": crate::VERSION,
        "model": {
            "path": path.display().to_string(),
            "architecture": model.hparams().architecture.name(),
            "file_bytes": std::fs::metadata(&path).map(|m| m.len()).ok(),
            "memory_bytes": model.memory_estimate().model_bytes(),
            "load_ms": load_ms,
        },
        "prompt": PROMPTS[0],
        "tokens_per_request": tokens,
        "threads": thread_runs,
        "engine_threads": engine_threads,
        "batches": batches,
        "elapsed_ms": start.elapsed().as_secs_f64() * 1e3,
    });
    Ok((inference, Some(model.memory_estimate().model_bytes())))
}

fn measure_batch(
    model: &Arc<Model>,
    b: usize,
    tokens: usize,
    context: usize,
    threads: usize,
) -> crate::Result<Value> {
    let engine = Engine::new(
        model.clone(),
        EngineParams {
            max_batch_size: b,
            max_concurrent: b,
            context_size: context,
            threads,
            ..Default::default()
        },
    )?;
    let t0 = Instant::now();
    let handles = (0..b)
        .map(|i| engine.submit(Request::text(PROMPTS[i % PROMPTS.len()], greedy(tokens))))
        .collect::<crate::Result<Vec<_>>>()?;
    let mut generated = 0;
    let (mut ttft, mut per_req) = (0.0, 0.0);
    for h in handles {
        let g = h.wait()?;
        generated += g.timings.generated_tokens;
        ttft += g.timings.ttft_ms;
        per_req += g.timings.gen_tok_s;
    }
    let wall = t0.elapsed().as_secs_f64();
    let stats = engine.stats();
    Ok(json!({
        "batch_size": b,
        "requests": b,
        "generated_tokens": generated,
        "wall_ms": wall * 1e3,
        "tok_s": if wall > 0.0 { generated as f64 / wall } else { 0.0 },
        "per_request_tok_s": per_req / b as f64,
        "mean_ttft_ms": ttft / b as f64,
        "mean_batch_size": stats.mean_batch_size,
        "decode_step_ms": stats.decode_step_ms,
        "steps": stats.steps,
    }))
}

/// Whether `root/sys/class/power_supply` lists a battery.
fn has_battery(root: &Path) -> Option<bool> {
    let entries = std::fs::read_dir(root.join("sys/class/power_supply")).ok()?;
    Some(
        entries
            .flatten()
            .any(|e| read_trim(e.path().join("type")).as_deref() == Some("Battery")),
    )
}

fn recommend(
    hw: &Hardware,
    mem: &MemoryInfo,
    inference: &Value,
    model_bytes: Option<u64>,
    root: &Path,
) -> Value {
    let mut notes: Vec<String> = Vec::new();
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);

    // Threads: the fastest count of the check, or a smaller one within 5% of it.
    let runs = inference["threads"].as_array().cloned().unwrap_or_default();
    let threads = match runs
        .iter()
        .map(|r| f(r, "tok_s"))
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
    {
        Some(best) if best > 0.0 => {
            let pick = runs
                .iter()
                .find(|r| f(r, "tok_s") >= 0.95 * best)
                .unwrap_or(&runs[0]);
            let figures: Vec<String> = runs
                .iter()
                .map(|r| format!("{} thread(s) {:.1} tok/s", r["threads"], f(r, "tok_s")))
                .collect();
            json!({
                "value": pick["threads"],
                "reason": format!(
                    "fewest threads within 5% of the fastest single-request generation ({})",
                    figures.join(", ")
                ),
            })
        }
        _ => json!({
            "value": threads_for(hw, Workload::TokenGeneration),
            "reason": "not measured: Woolly's policy for generation (one per physical core, at most 8)",
        }),
    };

    // Batch size: the smallest within 10% of the best aggregate throughput.
    let batches: Vec<Value> = inference["batches"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|b| b.get("tok_s").is_some())
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let best = batches.iter().map(|b| f(b, "tok_s")).fold(0.0, f64::max);
    let batch = if best > 0.0 {
        let pick = batches
            .iter()
            .find(|b| f(b, "tok_s") >= 0.9 * best)
            .unwrap_or(&batches[0]);
        let figures: Vec<String> = batches
            .iter()
            .map(|b| format!("{}: {:.1}", b["batch_size"], f(b, "tok_s")))
            .collect();
        json!({
            "value": pick["batch_size"],
            "best_throughput_tok_s": best,
            "reason": format!(
                "smallest batch within 10% of the best aggregate tok/s (batch: tok/s {})",
                figures.join(", ")
            ),
        })
    } else {
        json!({ "value": EngineParams::default().max_batch_size, "reason": "not measured: the engine's default" })
    };

    // Preload: read everything up front when the model fits comfortably.
    let room = mem
        .available_bytes
        .saturating_sub(default_reserve(mem.total_bytes));
    let preload = match model_bytes {
        Some(m) if m.saturating_mul(2) <= room => json!({
            "value": "full",
            "reason": format!(
                "the model ({} MiB) fits comfortably in the {} MiB available beyond the reserve for other programs: read it all in the background after the load",
                m >> 20, room >> 20
            ),
        }),
        Some(m) => {
            if m > room {
                notes.push(format!(
                    "the model ({} MiB) is larger than the memory available beyond the reserve ({} MiB): expect paging",
                    m >> 20,
                    room >> 20
                ));
            }
            json!({
                "value": "lazy",
                "reason": format!(
                    "the model ({} MiB) would take more than half of the {} MiB available beyond the reserve: let pages come and go on demand",
                    m >> 20, room >> 20
                ),
            })
        }
        None => json!({ "value": "lazy", "reason": "no model measured: the default" }),
    };

    // Profile: from the power source.
    let profile = match has_battery(root) {
        Some(true) => json!({
            "value": "adaptive",
            "reason": "this machine has a battery: balanced on mains power, power_saver on battery",
        }),
        Some(false) => json!({
            "value": "balanced",
            "reason": "no battery (a desktop on mains power): Woolly's thread policy per phase",
        }),
        None => json!({
            "value": "balanced",
            "reason": "the power source is unknown (no /sys/class/power_supply)",
        }),
    };
    if hw.simd.best_kernel() == "scalar" {
        notes.push("no SIMD kernels for this CPU: generation runs on the scalar fallback".into());
    }
    if mem.total_bytes > 0 && (mem.available_bytes as f64) < 0.15 * mem.total_bytes as f64 {
        notes.push("less than 15% of memory is available: the machine is under pressure".into());
    }
    json!({
        "threads": threads,
        "batch_size": batch,
        "preload": preload,
        "profile": profile,
        "notes": notes,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn report_names_the_machine_and_the_choices() {
        let r = super::report(None);
        assert_eq!(r["woolly_version"], crate::VERSION);
        assert!(r["hardware"]["logical_cores"].as_u64().unwrap() >= 1);
        assert!(r["thread_policy"]["prompt_processing"].as_u64().unwrap() >= 1);
        assert!(r["kernels"].is_string());
        assert!(r.get("model").is_none());
        let cuda = &r["cuda"];
        assert_eq!(
            cuda["available"],
            !cuda["devices"].as_array().unwrap().is_empty()
        );
        assert_eq!(cuda["reason"].is_string(), cuda["available"] == false);
    }

    #[test]
    fn doctor_without_measuring_has_its_keys() {
        let mut heard = Vec::new();
        let r = super::doctor_with(
            &super::DoctorOptions {
                measure: false,
                ..Default::default()
            },
            &mut |f, m| heard.push((f, m.to_string())),
        );
        let keys: Vec<&str> = r.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys.len(),
            5,
            "{keys:?} (cpu, memory, gpu, inference, recommendations)"
        );
        for k in ["cpu", "memory", "gpu", "inference", "recommendations"] {
            assert!(r.get(k).is_some(), "{k}");
        }
        assert!(r["cpu"]["logical_cores"].as_u64().unwrap() >= 1);
        assert!(r["memory"]["total_bytes"].as_u64().unwrap() > 0);
        assert_eq!(
            r["gpu"]["available"],
            !r["gpu"]["devices"].as_array().unwrap().is_empty()
        );
        let cuda = &r["gpu"]["cuda"];
        let now = crate::platform::cuda::report();
        assert_eq!(cuda["available"], now.available);
        assert_eq!(cuda["reason"].as_str(), now.reason.as_deref());
        assert!(r["recommendations"]["threads"]["value"].as_u64().unwrap() >= 1);
        assert_eq!(heard.last().unwrap().0, 1.0);
    }

    #[test]
    fn profile_follows_the_battery() {
        let dir = std::env::temp_dir().join(format!("woolly-doctor-ps-{}", std::process::id()));
        let bat = dir.join("sys/class/power_supply/BAT0");
        std::fs::create_dir_all(&bat).unwrap();
        assert_eq!(super::has_battery(&dir), Some(false));
        std::fs::write(bat.join("type"), "Battery\n").unwrap();
        assert_eq!(super::has_battery(&dir), Some(true));
        assert_eq!(super::has_battery(&dir.join("nowhere")), None);
        let hw = crate::platform::Hardware::detect();
        let mem = crate::platform::memory::MemoryInfo::detect();
        let r = super::recommend(&hw, &mem, &serde_json::json!({}), Some(1 << 20), &dir);
        assert_eq!(r["profile"]["value"], "adaptive");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
