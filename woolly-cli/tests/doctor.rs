//! `woolly doctor` as a user runs it: the JSON report's keys and figures against what
//! /proc says, measured generation at every batch size, and the human table.

use std::collections::BTreeSet;
use std::process::Command;

fn proc_cpuinfo() -> (usize, usize) {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let processors = text.lines().filter(|l| l.starts_with("processor")).count();
    let mut cores = BTreeSet::new();
    let mut phys = String::new();
    for l in text.lines() {
        if let Some((k, v)) = l.split_once(':') {
            match k.trim() {
                "physical id" => phys = v.trim().to_string(),
                "core id" => {
                    cores.insert((phys.clone(), v.trim().to_string()));
                }
                _ => {}
            }
        }
    }
    (processors, cores.len())
}

fn mem_total_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn doctor_json_has_its_keys_and_plausible_figures() {
    let o = Command::new(env!("CARGO_BIN_EXE_woolly"))
        // Every batch size is measured however busy the machine is (the default limit of 60 s
        // skips what is left, which a busy machine reaches).
        .args(["doctor", "--json", "--time-limit", "3600"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    // Progress goes to stderr, the report alone to stdout.
    assert!(
        stderr.contains("[doctor") && stderr.contains("batch of 16"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys.iter().copied().collect::<BTreeSet<_>>(),
        ["cpu", "gpu", "inference", "memory", "recommendations"]
            .into_iter()
            .collect()
    );

    // CPU: the cores /proc/cpuinfo lists.
    let cpu = &v["cpu"];
    let (processors, cpuinfo_cores) = proc_cpuinfo();
    assert_eq!(
        cpu["online_processors"].as_u64().unwrap() as usize,
        processors
    );
    let logical = cpu["logical_cores"].as_u64().unwrap() as usize;
    let physical = cpu["physical_cores"].as_u64().unwrap() as usize;
    assert!(logical >= 1 && logical <= processors);
    assert!(physical >= 1 && physical <= logical);
    if cpuinfo_cores > 0 && logical == processors {
        assert_eq!(physical, cpuinfo_cores.min(logical));
    }
    assert!(cpu["simd"].is_object() && cpu["kernels"].is_string());
    assert!(cpu["frequency"].is_object());
    assert!(!cpu["caches"].as_array().unwrap().is_empty());
    if let Some(m) = cpu["frequency"]["current_mhz"].as_f64() {
        assert!(m > 100.0 && m < 10_000.0, "{m}");
    }

    // Memory: the total of /proc/meminfo.
    let mem = &v["memory"];
    assert_eq!(mem["total_bytes"].as_u64().unwrap(), mem_total_bytes());
    assert!(mem["available_bytes"].as_u64().unwrap() <= mem_total_bytes());
    assert!(mem["page_size"].as_u64().unwrap() >= 4096);

    // GPU: absent without a driver, with the reason.
    let gpu = &v["gpu"];
    if !std::path::Path::new("/proc/driver/nvidia").exists() {
        assert_eq!(gpu["available"], false);
        assert!(gpu["reason"].as_str().unwrap().len() > 10, "{gpu}");
    }

    // Inference: tok/s at every batch size.
    let inf = &v["inference"];
    assert!(inf.get("error").is_none(), "{inf}");
    let sizes: Vec<u64> = inf["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            assert!(b.get("skipped").is_none(), "{b}");
            let t = b["tok_s"].as_f64().unwrap();
            assert!(t > 0.0, "{b}");
            assert_eq!(
                b["generated_tokens"].as_u64().unwrap(),
                b["batch_size"].as_u64().unwrap() * inf["tokens_per_request"].as_u64().unwrap()
            );
            b["batch_size"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(sizes, vec![1, 2, 4, 8, 16]);
    let threads = inf["threads"].as_array().unwrap();
    assert!(!threads.is_empty());
    assert!(threads.iter().all(|t| t["tok_s"].as_f64().unwrap() > 0.0));
    // How long it took is reported (a figure, not a test: the machine may be busy).
    assert!(inf["elapsed_ms"].as_f64().unwrap() > 0.0);

    // Recommendations, derived from the above.
    let r = &v["recommendations"];
    let t = r["threads"]["value"].as_u64().unwrap();
    assert!(threads.iter().any(|x| x["threads"].as_u64() == Some(t)));
    assert!(sizes.contains(&r["batch_size"]["value"].as_u64().unwrap()));
    assert!(["full", "lazy"].contains(&r["preload"]["value"].as_str().unwrap()));
    assert!(["balanced", "adaptive"].contains(&r["profile"]["value"].as_str().unwrap()));
    for k in ["threads", "batch_size", "preload", "profile"] {
        assert!(!r[k]["reason"].as_str().unwrap().is_empty(), "{k}");
    }
}

#[test]
fn doctor_prints_a_table() {
    let o = Command::new(env!("CARGO_BIN_EXE_woolly"))
        .args(["doctor", "--no-inference"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    for section in [
        "CPU\n",
        "Memory\n",
        "GPU\n",
        "Inference\n",
        "Recommendations\n",
    ] {
        assert!(out.contains(section), "{section:?} in {out}");
    }
    assert!(
        out.contains("  cores ") && out.contains("  threads "),
        "{out}"
    );
}

#[test]
fn doctor_with_a_missing_model_reports_and_fails() {
    let o = Command::new(env!("CARGO_BIN_EXE_woolly"))
        .args(["doctor", "--json", "--model", "/nonexistent/model.gguf"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["inference"]["error"].is_string(), "{v}");
    assert!(v["cpu"]["logical_cores"].as_u64().unwrap() >= 1);
}
