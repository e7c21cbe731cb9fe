//! Hyperparameters read from GGUF metadata.

use serde::Serialize;

use crate::gguf::GgufFile;
use crate::{Error, Result};

/// The model families Woolly runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    Gemma3,
    Llama,
    Qwen2,
}

impl Architecture {
    /// Every supported architecture, by its GGUF name.
    pub const SUPPORTED: [(&'static str, Architecture); 3] = [
        ("gemma3", Architecture::Gemma3),
        ("llama", Architecture::Llama),
        ("qwen2", Architecture::Qwen2),
    ];

    /// The architecture called `name` in `general.architecture`, or an error listing the supported ones.
    pub fn from_name(name: &str) -> Result<Architecture> {
        Self::SUPPORTED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "architecture `{name}`; supported architectures are: {}",
                    Self::SUPPORTED.map(|(n, _)| n).join(", ")
                ))
            })
    }

    /// The GGUF name (the prefix of the architecture's metadata keys).
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Gemma3 => "gemma3",
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
        }
    }
}

/// RoPE frequency scaling read from `<arch>.rope.scaling.*`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor`.
    Linear {
        factor: f32,
    },
    /// YaRN, as llama.cpp reads it (only the factor and original context are used today).
    Yarn {
        factor: f32,
        original_context: u32,
    },
}

/// The numbers that define a model's shape.
#[derive(Debug, Clone, Serialize)]
pub struct HParams {
    pub architecture: Architecture,
    /// Layers.
    pub n_layer: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Hidden width of the feed-forward block.
    pub n_ff: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention when fewer than `n_head`).
    pub n_head_kv: usize,
    /// Width of each key head.
    pub head_dim_k: usize,
    /// Width of each value head.
    pub head_dim_v: usize,
    /// Context length the model was trained for.
    pub n_ctx_train: usize,
    pub rms_eps: f32,
    /// Dimensions rotated by RoPE.
    pub rope_dims: usize,
    pub rope_freq_base: f32,
    /// RoPE base of sliding-window layers (gemma3).
    pub rope_freq_base_swa: f32,
    pub rope_scaling: RopeScaling,
    /// Sliding attention window (gemma3), 0 when every layer is global.
    pub sliding_window: usize,
    /// Every `swa_pattern`-th layer is global (gemma3: 6).
    pub swa_pattern: usize,
    /// Vocabulary size (rows of the embedding).
    pub n_vocab: usize,
}

impl HParams {
    /// Reads the hyperparameters of a model file, checking them for consistency.
    pub fn from_gguf(f: &GgufFile) -> Result<HParams> {
        let arch = Architecture::from_name(f.architecture()?)?;
        let a = arch.name();
        let key = |k: &str| format!("{a}.{k}");
        let req_usize = |k: &str| -> Result<usize> {
            let k = key(k);
            let v = f.require(&k, f.get_u64(&k))?;
            usize::try_from(v).map_err(|_| Error::InvalidModel(format!("`{k}` = {v} is too large")))
        };
        let opt_usize = |k: &str| -> Result<Option<usize>> {
            let k = key(k);
            Ok(f.get_u64(&k)?.and_then(|v| usize::try_from(v).ok()))
        };

        let n_layer = req_usize("block_count")?;
        let n_embd = req_usize("embedding_length")?;
        let n_ff = req_usize("feed_forward_length")?;
        let n_head = req_usize("attention.head_count")?;
        let n_head_kv = opt_usize("attention.head_count_kv")?.unwrap_or(n_head);
        let n_ctx_train = req_usize("context_length")?;
        let rms_eps = f.require(
            &key("attention.layer_norm_rms_epsilon"),
            f.get_f32(&key("attention.layer_norm_rms_epsilon")),
        )?;
        let default_head = n_embd.checked_div(n_head).unwrap_or(0);
        let head_dim_k = opt_usize("attention.key_length")?.unwrap_or(default_head);
        let head_dim_v = opt_usize("attention.value_length")?.unwrap_or(default_head);
        let rope_dims = opt_usize("rope.dimension_count")?.unwrap_or(head_dim_k);
        let rope_freq_base = f.get_f32(&key("rope.freq_base"))?.unwrap_or(10000.0);
        let rope_freq_base_swa = f.get_f32(&key("rope.freq_base_swa"))?.unwrap_or(10000.0);

        let rope_scaling = match f.get_str(&key("rope.scaling.type"))? {
            None | Some("none") => RopeScaling::None,
            Some(kind) => {
                let factor = f.get_f32(&key("rope.scaling.factor"))?.unwrap_or(1.0);
                match kind {
                    "linear" => RopeScaling::Linear { factor },
                    "yarn" => RopeScaling::Yarn {
                        factor,
                        original_context: f
                            .get_u32(&key("rope.scaling.original_context_length"))?
                            .unwrap_or(n_ctx_train as u32),
                    },
                    other => {
                        return Err(Error::Unsupported(format!(
                            "rope scaling type `{other}` (supported: none, linear, yarn)"
                        )))
                    }
                }
            }
        };
        let (sliding_window, swa_pattern) = match arch {
            Architecture::Gemma3 => (opt_usize("attention.sliding_window")?.unwrap_or(0), 6),
            _ => (0, 0),
        };
        let n_vocab = f
            .require_tensor("token_embd.weight")?
            .dims
            .get(1)
            .copied()
            .unwrap_or(0) as usize;

        let hp = HParams {
            architecture: arch,
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv,
            head_dim_k,
            head_dim_v,
            n_ctx_train,
            rms_eps,
            rope_dims,
            rope_freq_base,
            rope_freq_base_swa,
            rope_scaling,
            sliding_window,
            swa_pattern,
            n_vocab,
        };
        hp.validate()?;
        Ok(hp)
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidModel(what));
        if self.n_layer == 0 || self.n_layer > 1024 {
            return bad(format!("block_count {} is out of range", self.n_layer));
        }
        // Far beyond any real model (the widest have residual streams near 2^14 and feed-forward
        // blocks near 2^17), and small enough that no size computed from them can overflow.
        const MAX_WIDTH: usize = 1 << 20;
        for (name, v) in [
            ("embedding_length", self.n_embd),
            ("feed_forward_length", self.n_ff),
            ("attention.head_count", self.n_head),
            ("attention.head_count_kv", self.n_head_kv),
            ("attention.key_length", self.head_dim_k),
            ("attention.value_length", self.head_dim_v),
            ("vocabulary size", self.n_vocab),
        ] {
            if v > MAX_WIDTH * 4 {
                return bad(format!("{name} {v} is out of range"));
            }
        }
        if self.n_head * self.head_dim_k.max(self.head_dim_v) > MAX_WIDTH {
            return bad(format!(
                "{} heads of {} are out of range",
                self.n_head,
                self.head_dim_k.max(self.head_dim_v)
            ));
        }
        if self.n_embd == 0 || self.n_ff == 0 || self.n_vocab == 0 {
            return bad(
                "embedding_length, feed_forward_length and the vocabulary must be non-zero".into(),
            );
        }
        if self.n_head == 0 || self.n_head_kv == 0 || !self.n_head.is_multiple_of(self.n_head_kv) {
            return bad(format!(
                "head_count {} must be a non-zero multiple of head_count_kv {}",
                self.n_head, self.n_head_kv
            ));
        }
        if self.head_dim_k == 0
            || self.head_dim_v == 0
            || self.rope_dims > self.head_dim_k
            || !self.rope_dims.is_multiple_of(2)
        {
            return bad(format!(
                "head sizes (key {}, value {}, rotary {}) are inconsistent",
                self.head_dim_k, self.head_dim_v, self.rope_dims
            ));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0 && self.rms_eps < 1.0) {
            return bad(format!(
                "layer_norm_rms_epsilon {} is out of range",
                self.rms_eps
            ));
        }
        // The forward pass raises the RoPE bases to fractional powers and divides positions by
        // the scaling factor: each must be a positive finite number (0 gives infinite or NaN
        // angles, a negative base NaN), or every token after the first is garbage.
        for (name, v) in [
            ("rope.freq_base", self.rope_freq_base),
            ("rope.freq_base_swa", self.rope_freq_base_swa),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} {v} is out of range (must be positive)"));
            }
        }
        match self.rope_scaling {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } | RopeScaling::Yarn { factor, .. } => {
                if !(factor.is_finite() && factor > 0.0) {
                    return bad(format!(
                        "rope.scaling.factor {factor} is out of range (must be positive)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether layer `il` uses sliding-window attention (gemma3: `il % 6 < 5`).
    pub fn is_sliding(&self, il: usize) -> bool {
        self.sliding_window > 0
            && self.swa_pattern > 0
            && il % self.swa_pattern < self.swa_pattern - 1
    }
}
