//! `woolly doctor`: the machine, measured generation speed and recommended settings. The
//! measuring is woolly-core's (`diagnostics::doctor_with`); this only prints.

use std::io::Write;

use serde_json::Value;
use woolly_core::diagnostics::{doctor_with, DoctorOptions};

use crate::{CliResult, ModelArg};

#[derive(clap::Args)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    model: ModelArg,
    /// Print the report as JSON (keys: cpu, memory, gpu, inference, recommendations).
    #[arg(long)]
    json: bool,
    /// Report the machine only; do not load or measure a model.
    #[arg(long)]
    no_inference: bool,
    /// Seconds after which measurements not started yet are skipped (and reported so).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    time_limit: u64,
}

pub(crate) fn run(a: DoctorArgs) -> CliResult {
    let options = DoctorOptions {
        model: a.model.model.clone(),
        measure: !a.no_inference,
        time_limit: std::time::Duration::from_secs(a.time_limit),
        ..DoctorOptions::default()
    };
    let mut err = std::io::stderr();
    let report = doctor_with(&options, &mut |fraction, what| {
        let _ = writeln!(err, "[doctor {:>3.0}%] {what}", fraction * 100.0);
    });
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?).map_err(crate::stdout_error)?;
    } else {
        write!(out, "{}", table(&report)).map_err(crate::stdout_error)?;
    }
    if let Some(e) = report["inference"]["error"].as_str() {
        return Err(format!("the inference measurement failed: {e}").into());
    }
    Ok(())
}

fn mib(v: &Value) -> String {
    v.as_u64()
        .map(|b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64))
        .unwrap_or_else(|| "?".into())
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "?".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() != 0.0)
            .map(|f| format!("{f:.1}"))
            .unwrap_or_else(|| n.to_string()),
        other => other.to_string(),
    }
}

/// The report as aligned sections of `name  value` rows.
fn table(r: &Value) -> String {
    let mut s = String::new();
    let mut section = |title: &str, rows: Vec<(String, String)>| {
        s.push_str(title);
        s.push('\n');
        let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in rows {
            s.push_str(&format!("  {k:<w$}  {v}\n"));
        }
        s.push('\n');
    };
    let row = |k: &str, v: String| (k.to_string(), v);

    let c = &r["cpu"];
    let f = &c["frequency"];
    let caches: Vec<String> = c["caches"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    format!(
                        "L{} {} {}",
                        x["level"],
                        text(&x["kind"]).to_lowercase(),
                        x["size_bytes"]
                            .as_u64()
                            .map(|b| if b >= 1 << 20 {
                                format!("{} MiB", b >> 20)
                            } else {
                                format!("{} KiB", b >> 10)
                            })
                            .unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let features: Vec<String> = c["simd_features"]
        .as_array()
        .map(|a| a.iter().map(text).collect())
        .unwrap_or_default();
    section(
        "CPU",
        vec![
            row("model", text(&c["model"])),
            row(
                "cores",
                format!(
                    "{} physical, {} logical ({} online, {} socket(s))",
                    text(&c["physical_cores"]),
                    text(&c["logical_cores"]),
                    text(&c["online_processors"]),
                    text(&c["sockets"])
                ),
            ),
            row(
                "frequency",
                format!(
                    "{} MHz now, {} MHz max ({})",
                    text(&f["current_mhz"]),
                    text(&f["max_mhz"]),
                    text(&f["source"])
                ),
            ),
            row("caches", caches.join(", ")),
            row("SIMD", features.join(" ")),
            row("kernels", text(&c["kernels"])),
        ],
    );

    let m = &r["memory"];
    section(
        "Memory",
        vec![
            row(
                "total",
                format!(
                    "{} ({} available, {} kept for other programs)",
                    mib(&m["total_bytes"]),
                    mib(&m["available_bytes"]),
                    mib(&m["reserve_bytes"])
                ),
            ),
            row(
                "pages",
                format!(
                    "{} bytes; huge pages {} (transparent: {}; {} reserved)",
                    text(&m["page_size"]),
                    m["huge_page_size"]
                        .as_u64()
                        .map(|b| format!("{} KiB", b >> 10))
                        .unwrap_or_else(|| "none".into()),
                    text(&m["transparent_huge_pages"]),
                    text(&m["huge_pages_total"])
                ),
            ),
            row(
                "swap",
                format!(
                    "{} ({} free)",
                    mib(&m["swap_total_bytes"]),
                    mib(&m["swap_free_bytes"])
                ),
            ),
        ],
    );

    let g = &r["gpu"];
    let mut rows = Vec::new();
    if g["available"].as_bool() == Some(true) {
        rows.push(row(
            "driver",
            format!(
                "{} (CUDA {}, NVML {})",
                text(&g["driver_version"]),
                text(&g["cuda_driver_version"]),
                text(&g["nvml_version"])
            ),
        ));
        for d in g["devices"].as_array().into_iter().flatten() {
            rows.push(row(
                &format!("gpu {}", d["index"]),
                format!(
                    "{}, compute {}, {} of {} used, {}% busy, {} °C",
                    text(&d["name"]),
                    text(&d["compute_capability"]),
                    mib(&d["memory_used_bytes"]),
                    mib(&d["memory_total_bytes"]),
                    text(&d["utilization_percent"]),
                    text(&d["temperature_celsius"])
                ),
            ));
        }
    } else {
        rows.push(row("absent", text(&g["reason"])));
    }
    section("GPU", rows);

    let i = &r["inference"];
    let mut rows = Vec::new();
    if let Some(e) = i["error"].as_str() {
        rows.push(row("error", e.to_string()));
    } else if let Some(sk) = i["skipped"].as_str() {
        rows.push(row("skipped", sk.to_string()));
    } else {
        rows.push(row(
            "model",
            format!(
                "{} ({}, {}, loaded in {:.0} ms)",
                text(&i["model"]["path"]),
                text(&i["model"]["architecture"]),
                mib(&i["model"]["memory_bytes"]),
                i["model"]["load_ms"].as_f64().unwrap_or(0.0)
            ),
        ));
        for t in i["threads"].as_array().into_iter().flatten() {
            rows.push(row(
                &format!("1 request, {} thread(s)", t["threads"]),
                format!("{:>7.1} tok/s", t["tok_s"].as_f64().unwrap_or(0.0)),
            ));
        }
        for b in i["batches"].as_array().into_iter().flatten() {
            let k = format!(
                "batch {:>2} ({} threads)",
                b["batch_size"],
                text(&i["engine_threads"])
            );
            let v = match b["skipped"].as_str() {
                Some(why) => format!("skipped: {why}"),
                None => format!(
                    "{:>7.1} tok/s in all, {:.1} per request, first token {:.0} ms",
                    b["tok_s"].as_f64().unwrap_or(0.0),
                    b["per_request_tok_s"].as_f64().unwrap_or(0.0),
                    b["mean_ttft_ms"].as_f64().unwrap_or(0.0)
                ),
            };
            rows.push((k, v));
        }
        rows.push(row(
            "measured in",
            format!("{:.1} s", i["elapsed_ms"].as_f64().unwrap_or(0.0) / 1e3),
        ));
    }
    section("Inference", rows);

    let rec = &r["recommendations"];
    let mut rows: Vec<(String, String)> = ["threads", "batch_size", "preload", "profile"]
        .iter()
        .map(|k| {
            (
                k.to_string(),
                format!("{}  ({})", text(&rec[k]["value"]), text(&rec[k]["reason"])),
            )
        })
        .collect();
    for n in rec["notes"].as_array().into_iter().flatten() {
        rows.push(row("note", text(n)));
    }
    section("Recommendations", rows);
    s
}
