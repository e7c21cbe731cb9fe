//! Gemma 3: scaled embeddings, QK-norm, post-attention and post-FFN norms, GEGLU, sliding-window
//! attention on five of every six layers (RoPE base 10000 there, `rope.freq_base` on the global
//! ones), queries scaled by 1/sqrt(key_length), output tied to the embedding.

use super::hparams::HParams;
use super::transformer::{Config, Layer, Transformer};
use super::weights::{matrix, vector};
use crate::backend::{Activation, Matrix};
use crate::gguf::GgufFile;
use crate::kernels::cpu::ops::RopeLayout;
use crate::Result;

/// Loads the weights of a gemma3 model.
pub fn load(f: &GgufFile, hp: &HParams) -> Result<Transformer<Matrix>> {
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
        embd_scale: Some((e as f32).sqrt()),
        rope_layout: RopeLayout::Neox,
        rope_freq_scale: super::llama::rope_freq_scale(hp)?,
        activation: Activation::Gelu,
        kq_scale: 1.0 / (hk as f32).sqrt(),
    };
    let mut layers = Vec::with_capacity(hp.n_layer);
    for il in 0..hp.n_layer {
        let p = |n: &str| format!("blk.{il}.{n}");
        let sliding = hp.is_sliding(il);
        layers.push(Layer {
            attn_norm: vector(f, &p("attn_norm.weight"), e)?,
            wq: matrix(f, &p("attn_q.weight"), e, hp.n_head * hk)?,
            wk: matrix(f, &p("attn_k.weight"), e, hp.n_head_kv * hk)?,
            wv: matrix(f, &p("attn_v.weight"), e, hp.n_head_kv * hv)?,
            bq: None,
            bk: None,
            bv: None,
            q_norm: Some(vector(f, &p("attn_q_norm.weight"), hk)?),
            k_norm: Some(vector(f, &p("attn_k_norm.weight"), hk)?),
            wo: matrix(f, &p("attn_output.weight"), hp.n_head * hv, e)?,
            post_attn_norm: Some(vector(f, &p("post_attention_norm.weight"), e)?),
            ffn_norm: vector(f, &p("ffn_norm.weight"), e)?,
            w_gate: matrix(f, &p("ffn_gate.weight"), e, hp.n_ff)?,
            w_up: matrix(f, &p("ffn_up.weight"), e, hp.n_ff)?,
            w_down: matrix(f, &p("ffn_down.weight"), hp.n_ff, e)?,
            post_ffn_norm: Some(vector(f, &p("post_ffw_norm.weight"), e)?),
            rope_base: if sliding {
                hp.rope_freq_base_swa
            } else {
                hp.rope_freq_base
            },
            window: sliding.then_some(hp.sliding_window),
        });
    }
    let tok_embd = matrix(f, "token_embd.weight", e, hp.n_vocab)?;
    Ok(Transformer {
        config,
        tok_embd,
        layers,
        output_norm: vector(f, "output_norm.weight", e)?,
        output: tok_embd,
        rope_freqs: None,
    })
}
