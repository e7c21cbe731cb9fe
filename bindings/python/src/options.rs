//! Python's option bags (already type-checked by `woolly/__init__.py`) turned into Woolly's
//! params, in one place. An option Python leaves as None takes woolly-core's default (its
//! `Default` params), never a value retyped here; names go through the core's `from_name`.
//! Ranges are checked here and by woolly-core, so calling `_woolly` directly is safe too.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use woolly_core::engine::{EngineParams, Priority};
use woolly_core::generate::{
    ChatMessage, Constraint, GenerateParams, KvPrecision, Prompt, SamplingParams, SessionParams,
};
use woolly_core::model::{ModelParams, Preload};
use woolly_core::policy::memory::MemoryPolicy;
use woolly_core::policy::placement::{DeviceOomPolicy, GpuLayers, GpuParams, Margin, SplitMode};
use woolly_core::policy::power::ThermalConfig;
use woolly_core::policy::ThreadPolicy;

use crate::errors::{invalid, IntoPy};

/// A duration of `value` units of `unit` seconds (finite, not negative), named `name` in the
/// error.
pub fn duration(py: Python<'_>, name: &str, value: f64, unit: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value * unit).map_err(|_| {
        invalid(
            py,
            format!("{name} must be a finite number >= 0, not {value}"),
        )
    })
}

/// A KV precision by name (None: the core's default).
fn kv_precision(py: Python<'_>, name: Option<&str>, default: KvPrecision) -> PyResult<KvPrecision> {
    match name {
        Some(name) => KvPrecision::from_name(name).py_err(py),
        None => Ok(default),
    }
}

/// A memory policy from the figures Python passes (sizes already in bytes), checked.
pub fn memory_policy(
    py: Python<'_>,
    budget: Option<u64>,
    reserve: Option<u64>,
    pressure_threshold: Option<f64>,
) -> PyResult<MemoryPolicy> {
    let policy = MemoryPolicy {
        budget_bytes: budget,
        reserve_bytes: reserve,
        pressure_threshold,
        ..Default::default()
    };
    policy.validate().py_err(py)?;
    Ok(policy)
}

/// Session params; `threads` None (or 0) leaves the thread count to the core's policy.
fn session_params(
    py: Python<'_>,
    threads: Option<usize>,
    thread_policy: Option<&str>,
    context_size: Option<usize>,
    kv: Option<&str>,
) -> PyResult<SessionParams> {
    let d = SessionParams::default();
    let policy = match thread_policy {
        None => d.thread_policy(),
        Some(name) => ThreadPolicy::from_name(name).py_err(py)?,
    };
    let (interactive, background) = policy.flags();
    Ok(SessionParams {
        threads: threads.unwrap_or(d.threads),
        interactive,
        background,
        context_size: context_size.unwrap_or(d.context_size),
        kv_precision: kv_precision(py, kv, d.kv_precision)?,
        ..d
    })
}

/// The GPU part of the load options: `gpu_layers` -1 is auto (Python passes "auto" as -1),
/// `main_gpu` None the best device, `gpu_margin_bytes` None or 0 the default margin,
/// `on_device_oom` None the default (`cpu`).
fn gpu_params(
    py: Python<'_>,
    gpu_layers: Option<i64>,
    main_gpu: Option<usize>,
    split_mode: Option<&str>,
    gpu_margin_bytes: Option<u64>,
    on_device_oom: Option<&str>,
) -> PyResult<GpuParams> {
    let d = GpuParams::default();
    Ok(GpuParams {
        layers: match gpu_layers {
            Some(n) => GpuLayers::from_i64(n).py_err(py)?,
            None => d.layers,
        },
        main_gpu,
        split: match split_mode {
            Some(name) => SplitMode::from_name(name).py_err(py)?,
            None => d.split,
        },
        margin: gpu_margin_bytes.map_or(d.margin, Margin::from_bytes),
        on_device_oom: match on_device_oom {
            Some(name) => DeviceOomPolicy::from_name(name).py_err(py)?,
            None => d.on_device_oom,
        },
    })
}

/// Load options, checked once: the model's params (without the progress callback, which each
/// load brings) and the params of its sessions.
#[pyclass(frozen, module = "woolly._woolly")]
pub struct LoadOptions {
    pub model: ModelParams,
    pub session: SessionParams,
}

#[pymethods]
impl LoadOptions {
    #[new]
    #[pyo3(signature = (preload=None, mlock=None, repack=None, threads=None, thread_policy=None,
        context_size=None, kv_precision=None, memory_budget=None, memory_reserve=None,
        pressure_threshold=None, gpu_layers=None, main_gpu=None, split_mode=None,
        gpu_margin_bytes=None, on_device_oom=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        preload: Option<&str>,
        mlock: Option<bool>,
        repack: Option<bool>,
        threads: Option<usize>,
        thread_policy: Option<&str>,
        context_size: Option<usize>,
        kv_precision: Option<&str>,
        memory_budget: Option<u64>,
        memory_reserve: Option<u64>,
        pressure_threshold: Option<f64>,
        gpu_layers: Option<i64>,
        main_gpu: Option<usize>,
        split_mode: Option<&str>,
        gpu_margin_bytes: Option<u64>,
        on_device_oom: Option<&str>,
    ) -> PyResult<Self> {
        let d = ModelParams::default();
        let model = ModelParams {
            progress: None,
            preload: match preload {
                Some(name) => Preload::from_name(name).py_err(py)?,
                None => d.preload,
            },
            mlock: mlock.unwrap_or(d.mlock),
            repack: repack.unwrap_or(d.repack),
            memory: memory_policy(py, memory_budget, memory_reserve, pressure_threshold)?,
            // The load plans its memory for the context its sessions will have.
            context_size: context_size.unwrap_or(d.context_size),
            gpu: gpu_params(
                py,
                gpu_layers,
                main_gpu,
                split_mode,
                gpu_margin_bytes,
                on_device_oom,
            )?,
        };
        let session = session_params(py, threads, thread_policy, context_size, kv_precision)?;
        Ok(LoadOptions { model, session })
    }
}

/// The constraint spelled by `json` (the JSON every front end uses: `{"json_schema": {...}}`,
/// `"json_object"`, `{"gbnf": "..."}`, `{"lark": "..."}`, `{"regex": "..."}`,
/// `{"choice": [...]}`), compiled for nothing yet: the model's tokenizer compiles it when a
/// generation starts.
fn constraint(py: Python<'_>, json: &str) -> PyResult<Constraint> {
    serde_json::from_str(json).map_err(|e| {
        invalid(
            py,
            format!(
                "constraint {json} is not a constraint ({e}); expected {{\"json_schema\": {{...}}}}, \
                 \"json_object\", {{\"gbnf\": \"...\"}}, {{\"lark\": \"...\"}}, \
                 {{\"regex\": \"...\"}} or {{\"choice\": [...]}}"
            ),
        )
    })
}

/// Generation options, checked once (bad ones fail in the caller's thread, before anything
/// starts); each None is woolly-core's default. `constraint` is the constraint's JSON text
/// (`woolly/__init__.py` writes it from the keyword arguments).
#[pyclass(frozen, module = "woolly._woolly")]
pub struct GenerateOptions {
    pub params: GenerateParams,
}

#[pymethods]
impl GenerateOptions {
    #[new]
    #[pyo3(signature = (*, max_tokens=None, temperature=None, top_k=None, top_p=None, min_p=None,
        repeat_penalty=None, frequency_penalty=None, presence_penalty=None, penalty_last_n=None,
        seed=None, stop=None, ignore_eos=None, parse_special_in_messages=None, constraint=None,
        logprobs=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        max_tokens: Option<usize>,
        temperature: Option<f32>,
        top_k: Option<usize>,
        top_p: Option<f32>,
        min_p: Option<f32>,
        repeat_penalty: Option<f32>,
        frequency_penalty: Option<f32>,
        presence_penalty: Option<f32>,
        penalty_last_n: Option<usize>,
        seed: Option<u64>,
        stop: Option<Vec<String>>,
        ignore_eos: Option<bool>,
        parse_special_in_messages: Option<bool>,
        constraint: Option<&str>,
        logprobs: Option<usize>,
    ) -> PyResult<Self> {
        let d = GenerateParams::default();
        let s = d.sampling.clone();
        let sampling = SamplingParams {
            temperature: temperature.unwrap_or(s.temperature),
            top_k: top_k.unwrap_or(s.top_k),
            top_p: top_p.unwrap_or(s.top_p),
            min_p: min_p.unwrap_or(s.min_p),
            repetition_penalty: repeat_penalty.unwrap_or(s.repetition_penalty),
            frequency_penalty: frequency_penalty.unwrap_or(s.frequency_penalty),
            presence_penalty: presence_penalty.unwrap_or(s.presence_penalty),
            penalty_last_n: penalty_last_n.unwrap_or(s.penalty_last_n),
            seed: seed.or(s.seed),
            ..s
        };
        sampling.validate().py_err(py)?;
        let params = GenerateParams {
            max_tokens: max_tokens.unwrap_or(d.max_tokens),
            sampling,
            stop: stop.unwrap_or(d.stop.clone()),
            ignore_eos: ignore_eos.unwrap_or(d.ignore_eos),
            parse_special_in_messages: parse_special_in_messages
                .unwrap_or(d.parse_special_in_messages),
            constraint: match constraint {
                Some(json) => Some(self::constraint(py, json)?),
                None => d.constraint.clone(),
            },
            logprobs: logprobs.or(d.logprobs),
            ..d
        };
        Ok(GenerateOptions { params })
    }
}

/// Engine params; `threads` None (or 0) leaves the thread count to the core's policy.
#[allow(clippy::too_many_arguments)]
pub fn engine_params(
    py: Python<'_>,
    max_batch_size: Option<usize>,
    max_concurrent: Option<usize>,
    queue_capacity: Option<usize>,
    prefill_chunk: Option<usize>,
    max_latency_ms: Option<f64>,
    context_size: Option<usize>,
    kv: Option<&str>,
    threads: Option<usize>,
) -> PyResult<EngineParams> {
    let d = EngineParams::default();
    Ok(EngineParams {
        max_batch_size: max_batch_size.unwrap_or(d.max_batch_size),
        max_concurrent: max_concurrent.unwrap_or(d.max_concurrent),
        queue_capacity: queue_capacity.unwrap_or(d.queue_capacity),
        prefill_chunk: prefill_chunk.unwrap_or(d.prefill_chunk),
        max_latency: match max_latency_ms {
            Some(ms) => duration(py, "max_latency_ms", ms, 1e-3)?,
            None => d.max_latency,
        },
        context_size: context_size.unwrap_or(d.context_size),
        kv_precision: kv_precision(py, kv, d.kv_precision)?,
        threads: threads.unwrap_or(d.threads),
    })
}

/// A request's priority by name (None: the core's default).
pub fn priority(py: Python<'_>, name: Option<&str>) -> PyResult<Priority> {
    match name {
        Some(name) => Priority::from_name(name).py_err(py),
        None => Ok(Priority::default()),
    }
}

/// The deadline `seconds` from now (one too far to represent is none).
pub fn deadline(py: Python<'_>, seconds: Option<f64>) -> PyResult<Option<Instant>> {
    match seconds {
        Some(s) => Ok(Instant::now().checked_add(duration(py, "deadline_s", s, 1.0)?)),
        None => Ok(None),
    }
}

/// The thermal monitor's config (each None: the core's default).
pub fn thermal_config(
    py: Python<'_>,
    threshold_c: Option<f64>,
    interval_s: Option<f64>,
    sysfs_root: Option<PathBuf>,
) -> PyResult<ThermalConfig> {
    let d = ThermalConfig::default();
    let threshold_c = threshold_c.unwrap_or(d.threshold_c);
    if !threshold_c.is_finite() || threshold_c <= 0.0 || threshold_c > 150.0 {
        return Err(invalid(
            py,
            format!("threshold_c = {threshold_c} must be in (0, 150]"),
        ));
    }
    let interval = match interval_s {
        Some(s) => duration(py, "interval_s", s, 1.0)?,
        None => d.interval,
    };
    Ok(ThermalConfig {
        root: sysfs_root.unwrap_or_else(|| d.root.clone()),
        threshold_c,
        interval,
        ..d
    })
}

/// Chat messages from Python's `(role, content)` pairs.
pub fn chat_messages(messages: Vec<(String, String)>) -> Vec<ChatMessage> {
    messages
        .into_iter()
        .map(|(r, c)| ChatMessage::new(r, c))
        .collect()
}

/// A prompt or a conversation (exactly one of them).
pub fn input(
    py: Python<'_>,
    prompt: Option<String>,
    messages: Option<Vec<(String, String)>>,
) -> PyResult<Prompt> {
    match (prompt, messages) {
        (Some(p), None) => Ok(Prompt::Text(p)),
        (None, Some(m)) if !m.is_empty() => Ok(Prompt::Messages(chat_messages(m))),
        (None, Some(_)) => Err(invalid(py, "messages is empty".into())),
        _ => Err(invalid(py, "give a prompt or messages, not both".into())),
    }
}
