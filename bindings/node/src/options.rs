//! JavaScript option bags (already type-checked by `index.js`) turned into Woolly's parameters.
//! Ranges are checked here and by woolly-core, so calling the native module directly is safe too.

use napi_derive::napi;
use woolly_core::generate::{ChatMessage, GenerateParams, SamplingParams, SessionParams};
use woolly_core::model::{ModelParams, Preload};
use woolly_core::{Error, Result};

/// Options of `Model.load` (the progress callback travels separately).
#[napi(object)]
#[derive(Default)]
pub struct LoadOptions {
    /// Read the whole file during the load (`Preload::Prefault`).
    pub preload: Option<bool>,
    pub mlock: Option<bool>,
    pub repack: Option<bool>,
    /// Context size of each generation's session (0 = Woolly's choice).
    pub context_size: Option<u32>,
    /// Threads per generation (0 = Woolly's policy).
    pub threads: Option<u32>,
    /// Leave a core to the UI thread (default true: this is an application's binding).
    pub interactive: Option<bool>,
    /// Run generation threads at a lower priority.
    pub background: Option<bool>,
    /// Prompt tokens per forward pass (default 512).
    pub batch_size: Option<u32>,
    /// Sessions (KV caches) kept between generations for prefix reuse (default 2).
    pub max_idle_sessions: Option<u32>,
}

impl LoadOptions {
    pub fn model_params(&self) -> ModelParams {
        ModelParams {
            progress: None,
            preload: if self.preload.unwrap_or(false) {
                Preload::Prefault
            } else {
                Preload::Lazy
            },
            mlock: self.mlock.unwrap_or(false),
            repack: self.repack.unwrap_or(true),
        }
    }

    pub fn session_params(&self) -> SessionParams {
        SessionParams {
            context_size: self.context_size.unwrap_or(0) as usize,
            threads: self.threads.unwrap_or(0) as usize,
            interactive: self.interactive.unwrap_or(true),
            background: self.background.unwrap_or(false),
            batch_size: self
                .batch_size
                .map_or(SessionParams::default().batch_size, |b| b as usize),
            ..SessionParams::default()
        }
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
            stop: self.stop.clone().unwrap_or_default(),
            ignore_eos: self.ignore_eos.unwrap_or(d.ignore_eos),
            add_special: self.add_special.unwrap_or(d.add_special),
            parse_special: self.parse_special.unwrap_or(d.parse_special),
            cancel: None,
        })
    }
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
