//! Llama (2 and 3, TinyLlama, Mistral): RMSNorm, grouped-query attention with RoPE in the NORM
//! layout (with linear scaling and llama 3.1's frequency factors when present), SwiGLU, and an
//! output matrix of its own or tied to the embedding. Qwen2 reuses this with biases and NEOX RoPE.

use super::hparams::{HParams, RopeScaling};
use super::transformer::{Config, Layer, Transformer};
use super::weights::{matrix, optional_matrix, optional_vector, vector};
use crate::backend::{Activation, Matrix};
use crate::gguf::GgufFile;
use crate::kernels::cpu::ops::RopeLayout;
use crate::{Error, Result};

/// The RoPE position scale for the model's scaling settings.
pub(super) fn rope_freq_scale(hp: &HParams) -> Result<f32> {
    match hp.rope_scaling {
        RopeScaling::None => Ok(1.0),
        RopeScaling::Linear { factor } if factor.is_finite() && factor > 0.0 => Ok(1.0 / factor),
        RopeScaling::Linear { factor } => Err(Error::InvalidModel(format!(
            "rope scaling factor {factor} is out of range"
        ))),
        RopeScaling::Yarn { .. } => Err(Error::Unsupported(
            "YaRN rope scaling is not implemented yet".into(),
        )),
    }
}

/// llama 3.1's per-pair RoPE frequency divisors, when present: each must be a positive finite
/// number (the angles are divided by them).
fn rope_freqs(f: &GgufFile, hp: &HParams) -> Result<Option<Vec<f32>>> {
    let freqs = optional_vector(f, "rope_freqs.weight", hp.rope_dims / 2)?;
    if let Some((i, v)) = freqs
        .iter()
        .flatten()
        .enumerate()
        .find(|(_, v)| !(v.is_finite() && **v > 0.0))
    {
        return Err(Error::InvalidModel(format!(
            "rope_freqs.weight[{i}] = {v} is out of range (must be positive)"
        )));
    }
    Ok(freqs)
}

/// What distinguishes members of the llama family from each other.
pub(super) struct Variant {
    pub rope_layout: RopeLayout,
    /// Whether q/k/v biases must be present (qwen2) or may be (llama).
    pub biases_required: bool,
}

/// Loads a llama-family model.
pub fn load(f: &GgufFile, hp: &HParams) -> Result<Transformer<Matrix>> {
    load_variant(
        f,
        hp,
        Variant {
            rope_layout: RopeLayout::Norm,
            biases_required: false,
        },
    )
}

pub(super) fn load_variant(
    f: &GgufFile,
    hp: &HParams,
    var: Variant,
) -> Result<Transformer<Matrix>> {
    let (e, hk, hv) = (hp.n_embd, hp.head_dim_k, hp.head_dim_v);
    let config = Config {
        n_embd: e,
        n_ff: hp.n_ff,
        n_head: hp.n_head,
        n_head_kv: hp.n_head_kv,
        head_dim_k: hk,
        head_dim_v: hv,
        rope_dims: hp.rope_dims,
        rms_eps: hp.rms_eps,
        n_vocab: hp.n_vocab,
        embd_scale: None,
        rope_layout: var.rope_layout,
        rope_freq_scale: rope_freq_scale(hp)?,
        activation: Activation::Silu,
        kq_scale: 1.0 / (hk as f32).sqrt(),
    };
    let bias = |name: &str, len: usize| -> Result<Option<Vec<f32>>> {
        if var.biases_required {
            vector(f, name, len).map(Some)
        } else {
            optional_vector(f, name, len)
        }
    };
    let mut layers = Vec::with_capacity(hp.n_layer);
    for il in 0..hp.n_layer {
        let p = |n: &str| format!("blk.{il}.{n}");
        layers.push(Layer {
            attn_norm: vector(f, &p("attn_norm.weight"), e)?,
            wq: matrix(f, &p("attn_q.weight"), e, hp.n_head * hk)?,
            wk: matrix(f, &p("attn_k.weight"), e, hp.n_head_kv * hk)?,
            wv: matrix(f, &p("attn_v.weight"), e, hp.n_head_kv * hv)?,
            bq: bias(&p("attn_q.bias"), hp.n_head * hk)?,
            bk: bias(&p("attn_k.bias"), hp.n_head_kv * hk)?,
            bv: bias(&p("attn_v.bias"), hp.n_head_kv * hv)?,
            q_norm: None,
            k_norm: None,
            wo: matrix(f, &p("attn_output.weight"), hp.n_head * hv, e)?,
            post_attn_norm: None,
            ffn_norm: vector(f, &p("ffn_norm.weight"), e)?,
            w_gate: matrix(f, &p("ffn_gate.weight"), e, hp.n_ff)?,
            w_up: matrix(f, &p("ffn_up.weight"), e, hp.n_ff)?,
            w_down: matrix(f, &p("ffn_down.weight"), hp.n_ff, e)?,
            post_ffn_norm: None,
            rope_base: hp.rope_freq_base,
            window: None,
        });
    }
    let tok_embd = matrix(f, "token_embd.weight", e, hp.n_vocab)?;
    let output = optional_matrix(f, "output.weight", e, hp.n_vocab)?.unwrap_or(tok_embd);
    Ok(Transformer {
        config,
        tok_embd,
        layers,
        output_norm: vector(f, "output_norm.weight", e)?,
        output,
        rope_freqs: rope_freqs(f, hp)?,
    })
}
