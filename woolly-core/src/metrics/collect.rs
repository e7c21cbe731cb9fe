//! The families the global registry collects at each snapshot: every live model's counters and
//! histograms (labelled `model="..."`), and the GPU's figures.

use super::snapshot::{FamilySnapshot, MetricType, SampleValue, SeriesSnapshot};
use super::MetricsSnapshot;
use crate::platform::gpu::{self, GpuReport};

fn family(name: &str, help: &str, kind: MetricType) -> FamilySnapshot {
    FamilySnapshot {
        name: name.into(),
        help: help.into(),
        kind,
        series: Vec::new(),
    }
}

/// The families of every live model, labelled `model="..."` (a label used twice gets the
/// model's number appended); returns each model's label and counters.
pub(super) fn collect_models(out: &mut Vec<FamilySnapshot>) -> Vec<(String, MetricsSnapshot)> {
    use MetricType::*;
    let mut requests = family(
        "woolly_requests_total",
        "Generations by how they ended (completed: any stop reason).",
        Counter,
    );
    let mut prompt = family(
        "woolly_prompt_tokens_total",
        "Prompt tokens, cached ones included.",
        Counter,
    );
    let mut cached = family(
        "woolly_cached_prompt_tokens_total",
        "Prompt tokens taken from a session's cache instead of computed.",
        Counter,
    );
    let mut generated = family(
        "woolly_generated_tokens_total",
        "Generated tokens.",
        Counter,
    );
    let mut gen_rate = family(
        "woolly_generation_tokens_per_second",
        "Generated tokens per second of generation time, over all generations.",
        Gauge,
    );
    let mut prompt_rate = family(
        "woolly_prompt_tokens_per_second",
        "Computed prompt tokens per second of prompt time, over all generations.",
        Gauge,
    );
    let mut ttft = family(
        "woolly_time_to_first_token_seconds",
        "Time from the call (or the submission) to the first generated token.",
        Histogram,
    );
    let mut prompt_s = family(
        "woolly_prompt_duration_seconds",
        "Time reading the prompt of each generation.",
        Histogram,
    );
    let mut gen_s = family(
        "woolly_generation_duration_seconds",
        "Time generating tokens in each generation.",
        Histogram,
    );
    let mut queue_s = family(
        "woolly_queue_wait_seconds",
        "Time engine requests waited before they started (0 for sessions).",
        Histogram,
    );
    let mut rate_h = family(
        "woolly_request_generation_tokens_per_second",
        "Generation speed of each generation that produced at least two tokens.",
        Histogram,
    );
    let mut device_mem = family(
        "woolly_model_device_memory_bytes",
        "Bytes of the model's weights held on a GPU (0 on the CPU alone).",
        Gauge,
    );
    let mut gpu_layers = family(
        "woolly_model_gpu_layers",
        "Layers of the model that run on a GPU.",
        Gauge,
    );
    let mut oom_fallbacks = family(
        "woolly_gpu_oom_fallbacks_total",
        "Sequences that ran on the CPU because their KV cache did not fit in GPU memory (on_device_oom cpu).",
        Counter,
    );
    let mut gpu_busy = family(
        "woolly_model_gpu_busy_microseconds_total",
        "Device time of the model's forward passes on GPUs (from a pass's first launch to its results).",
        Counter,
    );
    let mut gpu_graphs = family(
        "woolly_model_gpu_graph_passes_total",
        "Forward passes run as CUDA graphs: captured (first of a shape) or replayed.",
        Counter,
    );
    let mut seen = std::collections::HashSet::new();
    let mut models = Vec::new();
    for m in super::live_models() {
        let mut label = m.label();
        if !seen.insert(label.clone()) {
            label = format!("{label}#{}", m.id);
            seen.insert(label.clone());
        }
        let s = m.snapshot();
        let h = m.histograms();
        let l = || vec![("model".to_string(), label.clone())];
        let push = |f: &mut FamilySnapshot, value| {
            f.series.push(SeriesSnapshot { labels: l(), value });
        };
        let completed = s.generations;
        for (outcome, n) in [
            ("completed", completed),
            ("failed", s.failed),
            ("cancelled", s.cancelled),
        ] {
            let mut labels = l();
            labels.push(("outcome".into(), outcome.into()));
            requests.series.push(SeriesSnapshot {
                labels,
                value: SampleValue::Counter(n),
            });
        }
        push(&mut prompt, SampleValue::Counter(s.prompt_tokens));
        push(&mut cached, SampleValue::Counter(s.cached_tokens));
        push(&mut generated, SampleValue::Counter(s.generated_tokens));
        push(&mut gen_rate, SampleValue::Gauge(s.generation_tok_s));
        push(&mut prompt_rate, SampleValue::Gauge(s.prompt_tok_s));
        push(&mut ttft, SampleValue::Histogram(h.ttft_seconds));
        push(&mut prompt_s, SampleValue::Histogram(h.prompt_seconds));
        push(&mut gen_s, SampleValue::Histogram(h.generation_seconds));
        push(&mut queue_s, SampleValue::Histogram(h.queue_seconds));
        push(&mut rate_h, SampleValue::Histogram(h.generation_tok_s));
        let load =
            |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed) as f64;
        push(
            &mut device_mem,
            SampleValue::Gauge(load(&m.device_weight_bytes)),
        );
        push(&mut gpu_layers, SampleValue::Gauge(load(&m.gpu_layers)));
        push(
            &mut oom_fallbacks,
            SampleValue::Counter(
                m.gpu_oom_fallbacks
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
        );
        let a = m.gpu_activity();
        push(
            &mut gpu_busy,
            SampleValue::Counter((a.busy_seconds * 1e6) as u64),
        );
        for (how, n) in [
            ("captured", a.graph_captures),
            ("replayed", a.graph_replays),
        ] {
            let mut labels = l();
            labels.push(("graph".into(), how.into()));
            gpu_graphs.series.push(SeriesSnapshot {
                labels,
                value: SampleValue::Counter(n),
            });
        }
        models.push((label, s));
    }
    out.extend([
        requests,
        prompt,
        cached,
        generated,
        gen_rate,
        prompt_rate,
        ttft,
        prompt_s,
        gen_s,
        queue_s,
        rate_h,
        device_mem,
        gpu_layers,
        oom_fallbacks,
        gpu_busy,
        gpu_graphs,
    ]);
    models
}

/// The GPU families: `woolly_gpu_available`, and per device (labels `gpu`, `name`)
/// utilization, memory, temperature and power where NVML reports them.
pub(super) fn collect_gpu(r: &GpuReport, out: &mut Vec<FamilySnapshot>) {
    let mut avail = family(
        "woolly_gpu_available",
        "1 when NVML reports at least one GPU, else 0 (see the JSON snapshot's gpu.reason).",
        MetricType::Gauge,
    );
    avail.series.push(SeriesSnapshot {
        labels: Vec::new(),
        value: SampleValue::Gauge(if r.available { 1.0 } else { 0.0 }),
    });
    out.push(avail);
    if r.devices.is_empty() {
        return;
    }
    type Get = fn(&gpu::GpuDevice) -> Option<f64>;
    let specs: [(&str, &str, Get); 7] = [
        (
            "woolly_gpu_utilization_ratio",
            "Fraction of the last sample period in which a kernel ran on the GPU.",
            |d| d.utilization_percent.map(|p| p as f64 / 100.0),
        ),
        (
            "woolly_gpu_memory_utilization_ratio",
            "Fraction of the last sample period in which GPU memory was read or written.",
            |d| d.memory_utilization_percent.map(|p| p as f64 / 100.0),
        ),
        (
            "woolly_gpu_memory_used_bytes",
            "GPU memory allocated.",
            |d| d.memory_used_bytes.map(|b| b as f64),
        ),
        (
            "woolly_gpu_memory_total_bytes",
            "GPU memory installed.",
            |d| d.memory_total_bytes.map(|b| b as f64),
        ),
        (
            "woolly_gpu_temperature_celsius",
            "GPU die temperature.",
            |d| d.temperature_celsius.map(f64::from),
        ),
        ("woolly_gpu_power_watts", "GPU power draw.", |d| {
            d.power_watts
        }),
        (
            "woolly_gpu_power_limit_watts",
            "GPU enforced power limit.",
            |d| d.power_limit_watts,
        ),
    ];
    for (name, help, get) in specs {
        let mut f = family(name, help, MetricType::Gauge);
        for d in &r.devices {
            if let Some(v) = get(d) {
                f.series.push(SeriesSnapshot {
                    labels: vec![
                        ("gpu".into(), d.index.to_string()),
                        ("name".into(), d.name.clone().unwrap_or_default()),
                    ],
                    value: SampleValue::Gauge(v),
                });
            }
        }
        if !f.series.is_empty() {
            out.push(f);
        }
    }
}
