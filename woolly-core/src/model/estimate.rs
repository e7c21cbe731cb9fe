//! What a model will need in memory, before any of it is committed.

use serde::Serialize;

use super::HParams;
use crate::gguf::GgufFile;
use crate::model::kv_cache::{KvCache, KvPrecision};

/// Memory a model needs, estimated from its file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryEstimate {
    /// Tensor data the forward pass reads (mapped, or copied into this CPU's layouts).
    pub weights_bytes: u64,
    /// Tokenizer tables and other per-model structures.
    pub overhead_bytes: u64,
    /// One session's KV cache at `context_size`.
    pub kv_cache_bytes: u64,
    /// One session's activations for a batch of `batch_size` tokens.
    pub scratch_bytes: u64,
    pub context_size: usize,
    pub batch_size: usize,
    /// Everything above.
    pub total_bytes: u64,
}

impl MemoryEstimate {
    /// The model part alone: weights and overhead (what a load charges).
    pub fn model_bytes(&self) -> u64 {
        self.weights_bytes + self.overhead_bytes
    }

    /// The session part alone: KV cache and scratch (what opening a session charges).
    pub fn session_bytes(&self) -> u64 {
        self.kv_cache_bytes + self.scratch_bytes
    }
}

/// Bytes of one session's KV cache of `n_ctx` positions.
pub fn kv_bytes(hp: &HParams, n_ctx: usize, precision: KvPrecision) -> u64 {
    KvCache::bytes_for(
        hp.n_layer,
        hp.n_head_kv * hp.head_dim_k,
        hp.n_head_kv * hp.head_dim_v,
        n_ctx,
        precision,
    )
}

/// Bytes of one session's activations for batches of `batch` tokens.
pub fn scratch_bytes(hp: &HParams, batch: usize) -> u64 {
    let q_w = hp.n_head * hp.head_dim_k;
    let kv_w = hp.n_head_kv * (hp.head_dim_k + hp.head_dim_v);
    let a_w = hp.n_head * hp.head_dim_v;
    // x, xn, proj, q, k, v, attn, gate, up (f32) and the quantized copy of the widest input.
    let per_token = 3 * hp.n_embd + q_w + kv_w + a_w + 2 * hp.n_ff;
    let floats = batch * per_token + batch * hp.n_ff.max(hp.n_embd) / 4;
    // Logits of the last position, and the sampler's working copy.
    let logits = 2 * hp.n_vocab;
    ((floats + logits) * 4) as u64
}

impl MemoryEstimate {
    /// The estimate for `file` with contexts of `n_ctx` tokens and batches of `batch` tokens.
    pub fn for_file(
        file: &GgufFile,
        hp: &HParams,
        n_ctx: usize,
        batch: usize,
        precision: KvPrecision,
    ) -> MemoryEstimate {
        let weights_bytes: u64 = file.tensors().iter().map(|t| t.size).sum();
        // Token pieces, scores, types and lookup tables: about 96 bytes a token beyond the
        // piece itself, which the vocabulary's own bytes in the header stand for.
        let overhead_bytes = file.data_offset() + hp.n_vocab as u64 * 96;
        let kv_cache_bytes = kv_bytes(hp, n_ctx, precision);
        let batch = batch.min(n_ctx);
        let scratch = scratch_bytes(hp, batch);
        MemoryEstimate {
            weights_bytes,
            overhead_bytes,
            kv_cache_bytes,
            scratch_bytes: scratch,
            context_size: n_ctx,
            batch_size: batch,
            total_bytes: weights_bytes
                .saturating_add(overhead_bytes)
                .saturating_add(kv_cache_bytes)
                .saturating_add(scratch),
        }
    }
}
