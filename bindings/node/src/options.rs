//! JavaScript option bags (already type-checked by `index.js`) turned into Woolly's parameters.
//! Ranges are checked here and by woolly-core, so calling the native module directly is safe too.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use napi::bindgen_prelude::Either;
use napi_derive::napi;
use woolly_core::engine::{EngineParams, Priority};
use woolly_core::generate::{
    ChatMessage, Constraint, GenerateParams, KvPrecision, SamplingParams, SessionParams,
};
use woolly_core::model::{ModelParams, Preload};
use woolly_core::policy::memory::{parse_size, MemoryPolicy};
use woolly_core::policy::placement::{DeviceOomPolicy, GpuLayers, GpuParams, Margin, SplitMode};
use woolly_core::policy::power::ThermalConfig;
use woolly_core::policy::ThreadPolicy;
use woolly_core::{Error, Result};

/// A byte count, or a size such as `"512MB"` or `"1.5GiB"`.
pub type Size = Either<f64, String>;

fn size(value: Option<&Size>, name: &str) -> Result<Option<u64>> {
    match value {
        None => Ok(None),
        Some(Either::A(n)) if n.is_finite() && *n >= 0.0 && n.fract() == 0.0 && *n < 1.8e19 => {
            Ok(Some(*n as u64))
        }
        Some(Either::A(n)) => Err(Error::InvalidArgument(format!(
            "{name} must be a non-negative integer of bytes or a size such as \"512MB\", got {n}"
        ))),
        Some(Either::B(s)) => parse_size(s)
            .map(Some)
            .map_err(|e| Error::InvalidArgument(format!("{name}: {e}"))),
    }
}

/// Options of `memoryReport()` and `new ModelCache()`: what Woolly may use of the memory.
#[napi(object)]
#[derive(Default)]
pub struct MemoryOptions {
    /// The most memory Woolly may hold (bytes or a size; absent = no budget).
    pub memory_budget: Option<Size>,
    /// Memory left to the system and other programs (absent = Woolly's tiers).
    pub memory_reserve: Option<Size>,
    /// Used fraction of RAM, in (0, 1], from which the machine is under pressure (absent:
    /// `MemoryPolicy::default()`'s).
    pub pressure_threshold: Option<f64>,
}

impl MemoryOptions {
    pub fn policy(&self) -> Result<MemoryPolicy> {
        memory_policy(
            self.memory_budget.as_ref(),
            self.memory_reserve.as_ref(),
            self.pressure_threshold,
        )
    }
}

fn memory_policy(
    budget: Option<&Size>,
    reserve: Option<&Size>,
    pressure_threshold: Option<f64>,
) -> Result<MemoryPolicy> {
    let policy = MemoryPolicy {
        budget_bytes: size(budget, "memoryBudget")?,
        reserve_bytes: size(reserve, "memoryReserve")?,
        pressure_threshold,
        ..MemoryPolicy::default()
    };
    policy.validate()?;
    Ok(policy)
}

/// The preload strategies by woolly-core's names (`Preload::ALL`), which `index.js` checks
/// `preload` against.
#[napi(catch_unwind)]
pub fn preload_strategies() -> Vec<&'static str> {
    Preload::ALL.iter().map(|p| p.name()).collect()
}

/// The thread policies by woolly-core's names (`ThreadPolicy::ALL`), which `index.js` checks
/// `threadPolicy` against.
#[napi(catch_unwind)]
pub fn thread_policies() -> Vec<&'static str> {
    ThreadPolicy::ALL.iter().map(|p| p.name()).collect()
}

/// Options of `Model.load` (the progress callback travels separately).
#[napi(object)]
#[derive(Default)]
pub struct LoadOptions {
    /// The preload strategy by woolly-core's name (`Preload::from_name`: `lazy` or `none`,
    /// `sequential`, `critical`, `full`, `full_blocking`), or a boolean as before the strategies
    /// (true: `FullBlocking`, false: `Lazy`).
    pub preload: Option<Either<bool, String>>,
    /// Lock the model in memory; a refusal only logs a warning (see `isLocked`).
    pub mlock: Option<bool>,
    pub repack: Option<bool>,
    /// Context size of each generation's session (absent or 0 = Woolly's choice).
    pub context_size: Option<u32>,
    /// Threads per generation (absent or 0 = Woolly's policy, decided by woolly-core).
    pub threads: Option<u32>,
    /// woolly-core's thread policy by name (`auto`, `interactive`, `background`, as in C,
    /// Python and JSON); when given, `interactive` and `background` must be absent.
    pub thread_policy: Option<String>,
    /// Leave a core to the UI thread (default true: this is an application's binding).
    pub interactive: Option<bool>,
    /// Run generation threads at a lower priority.
    pub background: Option<bool>,
    /// Prompt tokens per forward pass (woolly-core's default when absent).
    pub batch_size: Option<u32>,
    /// Sessions (KV caches) kept between generations for prefix reuse
    /// ([`MAX_IDLE_SESSIONS`] when absent).
    pub max_idle_sessions: Option<u32>,
    /// How the KV cache stores keys and values: `f16` (default) or `f32`.
    pub kv_precision: Option<String>,
    /// The most memory this model and its sessions may take (bytes or a size such as `"2GB"`).
    pub memory_budget: Option<Size>,
    /// Memory left to the system and other programs.
    pub memory_reserve: Option<Size>,
    /// Used fraction of RAM from which the machine counts as under pressure.
    pub pressure_threshold: Option<f64>,
    /// Layers to run on CUDA GPUs, from the last, with the output: `'auto'` (default: as many
    /// as fit), 0 (CPU only) or a count.
    pub gpu_layers: Option<Either<f64, String>>,
    /// The GPU holding the output and the last layers (absent: the one with the most free
    /// memory).
    pub main_gpu: Option<u32>,
    /// `'layer'` (default: split across GPUs by free memory) or `'none'` (one GPU).
    pub split_mode: Option<String>,
    /// Device memory to leave free on each GPU (bytes or a size; absent or 0: the larger of
    /// 1 GiB and 10%).
    pub gpu_margin_bytes: Option<Size>,
    /// When a sequence's KV cache does not fit in GPU memory: `'cpu'` (default: it runs on the
    /// CPU) or `'error'` (that generation rejects with WOOLLY_ERR_OUT_OF_DEVICE_MEMORY).
    pub on_device_oom: Option<String>,
}

/// The GPU part of the load options.
fn gpu_params(o: &LoadOptions) -> Result<GpuParams> {
    let d = GpuParams::default();
    let layers = match &o.gpu_layers {
        None => d.layers,
        Some(Either::A(n)) if n.is_finite() && *n >= 0.0 && n.fract() == 0.0 => {
            GpuLayers::Count(*n as usize)
        }
        Some(Either::A(n)) => {
            return Err(Error::InvalidArgument(format!(
                "gpuLayers must be 'auto' or an integer >= 0, not {n}"
            )))
        }
        Some(Either::B(s)) => GpuLayers::from_name(s)?,
    };
    Ok(GpuParams {
        layers,
        main_gpu: o.main_gpu.map(|g| g as usize),
        split: match &o.split_mode {
            Some(name) => SplitMode::from_name(name)?,
            None => d.split,
        },
        margin: size(o.gpu_margin_bytes.as_ref(), "gpuMarginBytes")?
            .map_or(d.margin, Margin::from_bytes),
        on_device_oom: match &o.on_device_oom {
            Some(name) => DeviceOomPolicy::from_name(name)?,
            None => d.on_device_oom,
        },
    })
}

/// Idle sessions a model's pool keeps unless `maxIdleSessions` says otherwise. woolly-core's
/// `SessionPool` has no default count (the C ABI and Python keep 4 each).
pub const MAX_IDLE_SESSIONS: usize = 2;

/// `interactive` unless the options say otherwise: this is an application's binding, whose JS
/// thread is its UI thread (woolly-core's `SessionParams` default is false).
const INTERACTIVE: bool = true;

impl LoadOptions {
    pub fn model_params(&self) -> Result<ModelParams> {
        let d = ModelParams::default();
        Ok(ModelParams {
            preload: match &self.preload {
                None => d.preload,
                Some(Either::A(true)) => Preload::FullBlocking,
                Some(Either::A(false)) => Preload::Lazy,
                Some(Either::B(name)) => Preload::from_name(name)?,
            },
            mlock: self.mlock.unwrap_or(d.mlock),
            repack: self.repack.unwrap_or(d.repack),
            memory: memory_policy(
                self.memory_budget.as_ref(),
                self.memory_reserve.as_ref(),
                self.pressure_threshold,
            )?,
            // The load plans its memory for the context its sessions will have.
            context_size: self.context_size.map_or(d.context_size, |c| c as usize),
            gpu: gpu_params(self)?,
            ..d
        })
    }

    pub fn session_params(&self) -> Result<SessionParams> {
        let d = SessionParams::default();
        let mut sp = SessionParams {
            context_size: self.context_size.map_or(d.context_size, |c| c as usize),
            kv_precision: match &self.kv_precision {
                Some(name) => KvPrecision::from_name(name)?,
                None => d.kv_precision,
            },
            // 0 (or absent) is woolly-core's thread policy, never decided here.
            threads: self.threads.map_or(d.threads, |t| t as usize),
            interactive: self.interactive.unwrap_or(INTERACTIVE),
            background: self.background.unwrap_or(d.background),
            batch_size: self.batch_size.map_or(d.batch_size, |b| b as usize),
            ..d
        };
        if let Some(name) = &self.thread_policy {
            if self.interactive.is_some() || self.background.is_some() {
                return Err(Error::InvalidArgument(
                    "threadPolicy replaces interactive and background: give one or the other"
                        .into(),
                ));
            }
            sp.set_thread_policy(ThreadPolicy::from_name(name)?);
        }
        Ok(sp)
    }

    /// Idle sessions a model's pool keeps.
    pub fn max_idle(&self) -> usize {
        self.max_idle_sessions
            .map_or(MAX_IDLE_SESSIONS, |n| n as usize)
    }
}

/// Options of `generate`, `stream` and `chat`.
#[napi(object)]
#[derive(Default)]
pub struct GenerateOptions {
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_k: Option<u32>,
    pub top_p: Option<f64>,
    pub min_p: Option<f64>,
    pub repetition_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub penalty_last_n: Option<u32>,
    /// A non-negative integer (up to 2^53); absent = a fresh random seed.
    pub seed: Option<f64>,
    pub stop: Option<Vec<String>>,
    pub ignore_eos: Option<bool>,
    pub add_special: Option<bool>,
    pub parse_special: Option<bool>,
    /// In a chat, also parse special-token text inside the messages (default false).
    pub parse_special_in_messages: Option<bool>,
    /// What the output must match, in the spelling every front end uses (`index.js` turns
    /// `jsonSchema`, `grammar`, `regex` and `choices` into it): `{ json_schema: {...} }`,
    /// `'json_object'`, `{ gbnf: '...' }`, `{ lark: '...' }`, `{ regex: '...' }` or
    /// `{ choice: [...] }`.
    pub constraint: Option<serde_json::Value>,
    /// Each token's log probability and this many alternatives (0 to 20; absent: none).
    pub logprobs: Option<u32>,
}

impl GenerateOptions {
    pub fn params(&self) -> Result<GenerateParams> {
        let d = GenerateParams::default();
        let s = SamplingParams::default();
        let seed = match self.seed {
            None => None,
            Some(x) if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= 9007199254740992.0 => {
                Some(x as u64)
            }
            Some(x) => {
                return Err(Error::InvalidArgument(format!(
                    "seed must be a non-negative integer, got {x}"
                )))
            }
        };
        let sampling = SamplingParams {
            temperature: self.temperature.map_or(s.temperature, |x| x as f32),
            top_k: self.top_k.map_or(s.top_k, |x| x as usize),
            top_p: self.top_p.map_or(s.top_p, |x| x as f32),
            min_p: self.min_p.map_or(s.min_p, |x| x as f32),
            repetition_penalty: self
                .repetition_penalty
                .map_or(s.repetition_penalty, |x| x as f32),
            frequency_penalty: self
                .frequency_penalty
                .map_or(s.frequency_penalty, |x| x as f32),
            presence_penalty: self
                .presence_penalty
                .map_or(s.presence_penalty, |x| x as f32),
            penalty_last_n: self.penalty_last_n.map_or(s.penalty_last_n, |x| x as usize),
            seed,
            logit_bias: Vec::new(),
        };
        sampling.validate()?;
        Ok(GenerateParams {
            max_tokens: self.max_tokens.map_or(d.max_tokens, |x| x as usize),
            sampling,
            stop: self.stop.clone().unwrap_or(d.stop),
            ignore_eos: self.ignore_eos.unwrap_or(d.ignore_eos),
            add_special: self.add_special.unwrap_or(d.add_special),
            parse_special: self.parse_special.unwrap_or(d.parse_special),
            parse_special_in_messages: self
                .parse_special_in_messages
                .unwrap_or(d.parse_special_in_messages),
            cancel: None,
            constraint: match &self.constraint {
                Some(v) => Some(constraint(v)?),
                None => d.constraint,
            },
            logprobs: self.logprobs.map(|n| n as usize).or(d.logprobs),
            overflow: d.overflow,
        })
    }
}

/// The constraint `value` spells (woolly-core's JSON spelling of `Constraint`).
fn constraint(value: &serde_json::Value) -> Result<Constraint> {
    serde_json::from_value(value.clone()).map_err(|e| {
        Error::InvalidArgument(format!(
            "constraint {value} is not a constraint ({e}); expected {{ json_schema: {{...}} }}, \
             'json_object', {{ gbnf: '...' }}, {{ lark: '...' }}, {{ regex: '...' }} or \
             {{ choice: [...] }}"
        ))
    })
}

/// One chat message as JavaScript passes it.
#[napi(object)]
pub struct Message {
    pub role: String,
    pub content: String,
}

pub fn chat_messages(messages: Vec<Message>) -> Vec<ChatMessage> {
    messages
        .into_iter()
        .map(|m| ChatMessage::new(m.role, m.content))
        .collect()
}

/// Options of `new Engine(model, options)`; each absent one is `EngineParams::default()`'s.
#[napi(object)]
#[derive(Default)]
pub struct EngineOptions {
    /// Most requests in one step.
    pub max_batch_size: Option<u32>,
    /// Most requests running at once, each with a KV cache of `contextSize`.
    pub max_concurrent: Option<u32>,
    /// Most requests waiting to start; beyond it a submission rejects with WOOLLY_ERR_BUSY.
    pub queue_capacity: Option<u32>,
    /// Prompt tokens read per step.
    pub prefill_chunk: Option<u32>,
    /// When idle, how long a new request may wait for others to share its first step.
    pub max_latency_ms: Option<f64>,
    /// Context of each request in tokens (0 = the model's default).
    pub context_size: Option<u32>,
    /// `f16` (default) or `f32`.
    pub kv_precision: Option<String>,
    /// Threads of the engine (0 = Woolly's policy for batched work).
    pub threads: Option<u32>,
}

/// A duration of `ms` milliseconds (finite, not negative).
fn millis(name: &str, ms: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(ms / 1e3).map_err(|_| {
        Error::InvalidArgument(format!("{name} must be a finite number >= 0, got {ms}"))
    })
}

impl EngineOptions {
    pub fn params(&self) -> Result<EngineParams> {
        let d = EngineParams::default();
        let or = |v: Option<u32>, d: usize| v.map_or(d, |x| x as usize);
        Ok(EngineParams {
            max_batch_size: or(self.max_batch_size, d.max_batch_size),
            max_concurrent: or(self.max_concurrent, d.max_concurrent),
            queue_capacity: or(self.queue_capacity, d.queue_capacity),
            prefill_chunk: or(self.prefill_chunk, d.prefill_chunk),
            max_latency: match self.max_latency_ms {
                Some(ms) => millis("maxLatencyMs", ms)?,
                None => d.max_latency,
            },
            context_size: or(self.context_size, d.context_size),
            kv_precision: match &self.kv_precision {
                Some(name) => KvPrecision::from_name(name)?,
                None => d.kv_precision,
            },
            threads: or(self.threads, d.threads),
        })
    }
}

/// How an engine treats one request (the generation options travel separately).
#[napi(object)]
#[derive(Default)]
pub struct RequestOptions {
    /// `low`, `normal` (default), `high` or `critical`.
    pub priority: Option<String>,
    /// Someone waits for the first token: ahead of others of its priority, and urgent.
    pub latency_sensitive: Option<bool>,
    /// The request rejects with WOOLLY_ERR_DEADLINE_EXCEEDED unless it finishes within this.
    pub timeout_ms: Option<f64>,
}

impl RequestOptions {
    pub fn priority(&self) -> Result<Priority> {
        priority(self.priority.as_deref())
    }

    /// The deadline, from now (one too far to represent is none).
    pub fn deadline(&self) -> Result<Option<Instant>> {
        match self.timeout_ms {
            None => Ok(None),
            Some(ms) => Ok(Instant::now().checked_add(millis("timeoutMs", ms)?)),
        }
    }
}

/// The priority called `name` (woolly-core's names), or the default one.
pub fn priority(name: Option<&str>) -> Result<Priority> {
    name.map_or(Ok(Priority::default()), Priority::from_name)
}

/// Options of `startThermalMonitor()`.
#[napi(object)]
#[derive(Default)]
pub struct ThermalOptions {
    /// Above this (°C) Woolly halves its worker threads; they come back `hysteresis_c` lower
    /// (absent: `ThermalConfig::default()`'s, as for every field here).
    #[napi(js_name = "thresholdC")]
    pub threshold_c: Option<f64>,
    /// How often the sensors are read, in milliseconds.
    #[napi(js_name = "intervalMs")]
    pub interval_ms: Option<f64>,
    /// Where `sys/class/thermal` and `sys/class/hwmon` are read (default `/`; a fake tree in
    /// tests).
    #[napi(js_name = "sysfsRoot")]
    pub sysfs_root: Option<String>,
}

impl ThermalOptions {
    pub fn config(&self) -> Result<ThermalConfig> {
        let d = ThermalConfig::default();
        let threshold_c = self.threshold_c.unwrap_or(d.threshold_c);
        if !threshold_c.is_finite() || threshold_c <= 0.0 || threshold_c > 150.0 {
            return Err(Error::InvalidArgument(format!(
                "thresholdC must be in (0, 150], got {threshold_c}"
            )));
        }
        let interval = match self.interval_ms {
            None => d.interval,
            Some(ms) => match Duration::try_from_secs_f64(ms / 1e3) {
                Ok(i) if !i.is_zero() => i,
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "intervalMs must be a positive number, got {ms}"
                    )))
                }
            },
        };
        Ok(ThermalConfig {
            root: self
                .sysfs_root
                .as_deref()
                .map_or(d.root.clone(), PathBuf::from),
            threshold_c,
            interval,
            ..d
        })
    }
}
