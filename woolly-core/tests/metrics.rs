//! The metrics registry on the default model: its Prometheus text passes a strict parser of
//! the 0.0.4 format, counters and histograms move after real generations (a session and an
//! engine), the JSON snapshot holds the same figures, engine and thermal reports arrive, and
//! the GPU section says absent, with the reason, on a machine without an NVIDIA driver.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use woolly_core::engine::{Engine, EngineParams, Request};
use woolly_core::generate::{GenerateParams, SamplingParams, Session, SessionParams};
use woolly_core::metrics::{self, Registry};
use woolly_core::model::{Model, ModelParams};
use woolly_core::testing;

const LABEL: &str = "metrics-test-model";

fn model() -> Arc<Model> {
    static M: OnceLock<Arc<Model>> = OnceLock::new();
    M.get_or_init(|| {
        let m = Model::load(Some(&testing::default_model()), &ModelParams::default()).unwrap();
        m.metrics().set_label(LABEL);
        m
    })
    .clone()
}

fn greedy(n: usize) -> GenerateParams {
    GenerateParams {
        max_tokens: n,
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
        ..Default::default()
    }
}

/// Label pairs, sorted.
type Labels = Vec<(String, String)>;

/// One sample: the metric name (with `_bucket`/`_sum`/`_count`) and its labels.
type Key = (String, Labels);

/// A strict parser of the text exposition format 0.0.4. Panics, naming the line, on anything
/// malformed; returns every sample.
fn parse_strict(text: &str) -> BTreeMap<Key, f64> {
    fn valid_name(s: &str) -> bool {
        let mut c = s.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
    }
    fn valid_label(s: &str) -> bool {
        let mut c = s.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
    }
    fn value(s: &str, line: &str) -> f64 {
        match s {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            _ => s
                .parse()
                .unwrap_or_else(|_| panic!("bad value {s:?} in {line:?}")),
        }
    }
    /// `{a="x",b="y"}` at the start of `s`: the labels and the rest of `s`.
    fn labels<'a>(s: &'a str, line: &str) -> (Vec<(String, String)>, &'a str) {
        let mut out = Vec::new();
        let Some(mut rest) = s.strip_prefix('{') else {
            return (out, s);
        };
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                return (out, r);
            }
            let eq = rest
                .find('=')
                .unwrap_or_else(|| panic!("label without '=' in {line:?}"));
            let name = &rest[..eq];
            assert!(valid_label(name), "bad label name {name:?} in {line:?}");
            rest = rest[eq + 1..]
                .strip_prefix('"')
                .unwrap_or_else(|| panic!("unquoted label value in {line:?}"));
            let mut v = String::new();
            let mut chars = rest.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => v.push('\\'),
                        Some((_, '"')) => v.push('"'),
                        Some((_, 'n')) => v.push('\n'),
                        other => panic!("bad escape {other:?} in {line:?}"),
                    },
                    Some((i, '"')) => break i,
                    Some((_, '\n')) | None => panic!("unterminated label value in {line:?}"),
                    Some((_, c)) => v.push(c),
                }
            };
            assert!(
                !out.iter().any(|(k, _)| k == name),
                "label {name} twice in {line:?}"
            );
            out.push((name.to_string(), v));
            rest = &rest[end + 1..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else {
                assert!(rest.starts_with('}'), "expected ',' or '}}' in {line:?}");
            }
        }
    }

    let mut samples = BTreeMap::new();
    // Family name -> (help seen, type).
    let mut families: BTreeMap<String, (bool, Option<String>)> = BTreeMap::new();
    let mut current: Option<String> = None;
    assert!(text.ends_with('\n'), "the text ends with a newline");
    for line in text.lines() {
        assert!(!line.is_empty(), "no empty lines");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(valid_name(name), "bad name in {line:?}");
            assert!(
                !help.contains('\n') && !help.replace("\\\\", "").replace("\\n", "").contains('\\'),
                "bad escape in {line:?}"
            );
            let f = families.entry(name.to_string()).or_default();
            assert!(!f.0 && f.1.is_none(), "HELP after HELP or TYPE: {line:?}");
            f.0 = true;
            current = Some(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect("TYPE has a type");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                "bad type in {line:?}"
            );
            let f = families.entry(name.to_string()).or_default();
            assert!(f.0, "TYPE before HELP: {line:?}");
            assert!(f.1.is_none(), "TYPE twice: {line:?}");
            f.1 = Some(ty.to_string());
            assert_eq!(current.as_deref(), Some(name), "TYPE of another family");
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment {line:?}");
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let name = &line[..name_end];
        assert!(valid_name(name), "bad metric name in {line:?}");
        let (mut labels, rest) = labels(&line[name_end..], line);
        let v = rest
            .strip_prefix(' ')
            .unwrap_or_else(|| panic!("no space before the value in {line:?}"));
        assert!(!v.contains(' '), "timestamps are not used: {line:?}");
        let fam = current
            .as_deref()
            .unwrap_or_else(|| panic!("sample before HELP/TYPE: {line:?}"));
        let ty = families[fam].1.clone().expect("TYPE before samples");
        if ty == "histogram" {
            let suffix = name
                .strip_prefix(fam)
                .unwrap_or_else(|| panic!("{name} outside its family {fam}"));
            assert!(
                ["_bucket", "_sum", "_count"].contains(&suffix),
                "bad histogram sample {line:?}"
            );
            assert_eq!(
                suffix == "_bucket",
                labels.iter().any(|(k, _)| k == "le"),
                "le on buckets only: {line:?}"
            );
        } else {
            assert_eq!(name, fam, "sample of another family: {line:?}");
        }
        labels.sort();
        let key = (name.to_string(), labels);
        assert!(
            samples.insert(key, value(v, line)).is_none(),
            "duplicate sample {line:?}"
        );
    }
    // Histograms: per series, buckets cumulative, ending with +Inf equal to _count.
    for (fam, (_, ty)) in &families {
        if ty.as_deref() != Some("histogram") {
            continue;
        }
        let mut series: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
        for ((name, labels), v) in &samples {
            if name == &format!("{fam}_bucket") {
                let le = labels.iter().find(|(k, _)| k == "le").unwrap();
                let rest: Vec<_> = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
                series
                    .entry(rest)
                    .or_default()
                    .push((value(&le.1, &le.1), *v));
            }
        }
        for (labels, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{fam}{labels:?}: buckets not cumulative {buckets:?}"
            );
            let last = buckets.last().unwrap();
            assert!(last.0.is_infinite(), "{fam}{labels:?} ends without +Inf");
            let count = samples[&(format!("{fam}_count"), labels.clone())];
            assert_eq!(last.1, count, "{fam}{labels:?}: +Inf bucket != _count");
            assert!(samples.contains_key(&(format!("{fam}_sum"), labels.clone())));
        }
    }
    samples
}

/// Every sample of the JSON snapshot, keyed as the parser keys the text.
fn json_samples(j: &Value) -> BTreeMap<Key, f64> {
    let mut out = BTreeMap::new();
    for (name, fam) in j["metrics"].as_object().unwrap() {
        for s in fam["series"].as_array().unwrap() {
            let mut labels: Vec<(String, String)> = s["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            labels.sort();
            let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
            if fam["type"] == "histogram" {
                for b in s["buckets"].as_array().unwrap() {
                    let le = match &b["le"] {
                        Value::String(s) => s.clone(),
                        // As the text writes a float: Rust's shortest round-trip form.
                        v => format!("{}", v.as_f64().unwrap()),
                    };
                    let mut l = labels.clone();
                    l.push(("le".into(), le));
                    l.sort();
                    out.insert((format!("{name}_bucket"), l), num(&b["count"]));
                }
                out.insert((format!("{name}_sum"), labels.clone()), num(&s["sum"]));
                out.insert((format!("{name}_count"), labels), num(&s["count"]));
            } else {
                out.insert((name.clone(), labels), num(&s["value"]));
            }
        }
    }
    out
}

fn sample(s: &BTreeMap<Key, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    *s.get(&(name.to_string(), l))
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

#[test]
fn prometheus_text_parses_and_counters_move_after_real_generations() {
    let m = model();
    let before = parse_strict(&Registry::global().render_prometheus());
    let model_l = [("model", LABEL)];
    let got = |s: &BTreeMap<Key, f64>, n: &str| sample(s, n, &model_l);

    // A session generation and two engine requests.
    let mut session = Session::new(
        m.clone(),
        &SessionParams {
            threads: 2,
            context_size: 256,
            ..Default::default()
        },
    )
    .unwrap();
    let g = session
        .generate("The capital of France is", &greedy(6), |_| true)
        .unwrap();
    assert_eq!(g.timings.generated_tokens, 6);
    let engine = Engine::new(
        m.clone(),
        EngineParams {
            threads: 2,
            context_size: 256,
            max_batch_size: 2,
            max_concurrent: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let hs: Vec<_> = ["Once upon a time", "def fibonacci(n):"]
        .iter()
        .map(|p| engine.submit(Request::text(*p, greedy(5))).unwrap())
        .collect();
    for h in hs {
        assert_eq!(h.wait().unwrap().timings.generated_tokens, 5);
    }
    let stats = engine.stats();
    metrics::observe_engine(&stats);

    let text = Registry::global().render_prometheus();
    let after = parse_strict(&text);
    let delta = |n: &str| got(&after, n) - got(&before, n);
    let completed = [("model", LABEL), ("outcome", "completed")];
    assert_eq!(
        sample(&after, "woolly_requests_total", &completed)
            - sample(&before, "woolly_requests_total", &completed),
        3.0
    );
    assert_eq!(delta("woolly_generated_tokens_total"), 16.0);
    assert!(delta("woolly_prompt_tokens_total") >= 12.0);
    for h in [
        "woolly_time_to_first_token_seconds",
        "woolly_prompt_duration_seconds",
        "woolly_generation_duration_seconds",
        "woolly_queue_wait_seconds",
        "woolly_request_generation_tokens_per_second",
    ] {
        assert_eq!(delta(&format!("{h}_count")), 3.0, "{h}");
        assert!(delta(&format!("{h}_sum")) > 0.0 || h == "woolly_queue_wait_seconds");
    }
    assert!(got(&after, "woolly_generation_tokens_per_second") > 0.0);
    // Where the model runs (on a machine without a GPU: nothing on a device).
    let model = [("model", LABEL)];
    assert_eq!(
        sample(&after, "woolly_model_gpu_layers", &model),
        m.placement().gpu_layers() as f64
    );
    assert_eq!(
        sample(&after, "woolly_model_device_memory_bytes", &model),
        m.device_weight_bytes() as f64
    );
    // Its GPUs' work, as the model reports it (none on the CPU alone).
    let a = m.metrics().gpu_activity();
    assert_eq!(
        sample(&after, "woolly_model_gpu_busy_microseconds_total", &model),
        (a.busy_seconds * 1e6).trunc()
    );
    for (how, n) in [
        ("captured", a.graph_captures),
        ("replayed", a.graph_replays),
    ] {
        assert_eq!(
            sample(
                &after,
                "woolly_model_gpu_graph_passes_total",
                &[("model", LABEL), ("graph", how)]
            ),
            n as f64
        );
    }

    // The engine's figures.
    assert_eq!(
        sample(&after, "woolly_engine_requests_submitted_total", &[]),
        stats.submitted as f64
    );
    assert_eq!(
        sample(
            &after,
            "woolly_engine_requests_total",
            &[("outcome", "completed")]
        ),
        2.0
    );
    assert_eq!(sample(&after, "woolly_engine_queue_depth", &[]), 0.0);
    assert!(sample(&after, "woolly_engine_steps_total", &[]) >= 5.0);
    assert!(sample(&after, "woolly_engine_batch_size_count", &[]) >= stats.steps as f64);

    // The process.
    let rss = sample(&after, "woolly_process_resident_memory_bytes", &[]);
    assert!(rss > 50e6, "the model is resident: {rss}");
    assert!(sample(&after, "woolly_process_peak_resident_memory_bytes", &[]) >= rss);
    assert_eq!(
        sample(
            &after,
            "woolly_build_info",
            &[
                ("version", woolly_core::VERSION),
                ("kernels", woolly_core::kernels::cpu::simd_level())
            ]
        ),
        1.0
    );

    // The same snapshot as JSON holds exactly the same samples.
    let snap = Registry::global().snapshot();
    let from_text = parse_strict(&snap.to_prometheus());
    let j = snap.to_json();
    let from_json = json_samples(&j);
    assert_eq!(from_text.len(), from_json.len());
    for (k, v) in &from_text {
        let w = from_json
            .get(k)
            .unwrap_or_else(|| panic!("{k:?} missing from the JSON"));
        assert!(v == w || (v.is_nan() && w.is_nan()), "{k:?}: {v} vs {w}");
    }
    // And the model's own snapshot agrees with both.
    let mine = j["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["model"] == LABEL)
        .unwrap();
    let s = m.metrics().snapshot();
    assert_eq!(mine["generated_tokens"], s.generated_tokens);
    assert_eq!(
        got(&from_text, "woolly_generated_tokens_total"),
        s.generated_tokens as f64
    );
    let h = m.metrics().histograms();
    assert_eq!(
        got(&from_text, "woolly_time_to_first_token_seconds_count"),
        h.ttft_seconds.count as f64
    );
}

#[test]
fn thermal_and_worker_reports_arrive() {
    metrics::set_worker_threads(2);
    metrics::set_cpu_temperature(71.5);
    let events = |s: &BTreeMap<Key, f64>| sample(s, "woolly_thermal_throttle_events_total", &[]);
    let s0 = parse_strict(&Registry::global().render_prometheus());
    metrics::record_throttle(true);
    let s1 = parse_strict(&Registry::global().render_prometheus());
    assert_eq!(sample(&s1, "woolly_thermal_throttled", &[]), 1.0);
    assert_eq!(
        events(&s1) - events(&s0),
        if sample(&s0, "woolly_thermal_throttled", &[]) == 0.0 {
            1.0
        } else {
            0.0
        }
    );
    metrics::record_throttle(false);
    let s2 = parse_strict(&Registry::global().render_prometheus());
    assert_eq!(sample(&s2, "woolly_thermal_throttled", &[]), 0.0);
    assert_eq!(events(&s2), events(&s1));
    assert_eq!(sample(&s2, "woolly_worker_threads", &[]), 2.0);
    assert_eq!(sample(&s2, "woolly_cpu_temperature_celsius", &[]), 71.5);
}

#[test]
fn gpu_section_says_absent_with_a_reason_without_a_driver() {
    let j = Registry::global().to_json();
    let gpu = &j["gpu"];
    let s = parse_strict(&Registry::global().render_prometheus());
    let has_driver = std::path::Path::new("/proc/driver/nvidia").exists();
    if has_driver {
        // A machine with an NVIDIA driver: the devices are there instead.
        eprintln!("NVIDIA driver present: {gpu}");
        if gpu["available"] == true {
            assert!(!gpu["devices"].as_array().unwrap().is_empty());
            assert_eq!(sample(&s, "woolly_gpu_available", &[]), 1.0);
        }
        return;
    }
    assert_eq!(gpu["available"], false, "{gpu}");
    let reason = gpu["reason"].as_str().unwrap();
    assert!(reason.len() > 10, "{reason}");
    assert!(
        reason.contains("NVIDIA") || reason.contains("NVML"),
        "{reason}"
    );
    assert!(gpu["devices"].as_array().unwrap().is_empty());
    assert_eq!(sample(&s, "woolly_gpu_available", &[]), 0.0);
    assert!(!s.keys().any(|(n, _)| n.starts_with("woolly_gpu_memory")));
}

#[test]
fn the_parser_refuses_malformed_text() {
    for bad in [
        "x 1\n",                                       // no HELP/TYPE
        "# HELP x h\n# TYPE x counter\nx{a=\"b} 1\n",  // unterminated label
        "# HELP x h\n# TYPE x counter\n1x 1\n",        // bad name
        "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_strict(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
    parse_strict("# HELP x h\n# TYPE x gauge\nx{a=\"q\\\"\\n\\\\\"} -Inf\n");
}
