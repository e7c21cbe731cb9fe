//! The decoder-only transformer that gemma3, llama and qwen2 share, driven by each architecture's
//! [`Config`] and weights (see `gemma3.rs`, `llama.rs`, `qwen2.rs`).
//!
//! One forward pass runs any number of tokens of any number of sequences: the rows of every
//! sequence are stacked, so each weight matrix is read once per pass for all of them, and
//! attention runs per sequence over its own [`KvCache`].

use crate::gguf::{GgmlType, GgufFile};
use crate::kernels::cpu::parallel::{par_for_dynamic, par_items_dynamic, SharedOut};
use crate::kernels::cpu::ThreadPool;
use crate::kernels::cpu::{self, ops, ops::RopeLayout};
use crate::kernels::kv::KvView;
use crate::model::weights::Matrix;
use crate::model::KvCache;
use crate::quant;
use crate::tokenizer::TokenId;
use crate::{Error, Result};

/// The feed-forward gate's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// GELU, tanh approximation (gemma).
    Gelu,
    /// SiLU (llama, qwen2).
    Silu,
}

/// The numbers and choices that shape the forward pass.
#[derive(Debug, Clone)]
pub struct Config {
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim_k: usize,
    pub head_dim_v: usize,
    pub rope_dims: usize,
    pub rms_eps: f32,
    pub n_vocab: usize,
    /// Multiplier of the token embeddings (gemma: sqrt(n_embd)).
    pub embd_scale: Option<f32>,
    pub rope_layout: RopeLayout,
    /// RoPE position scale (1 / linear scaling factor).
    pub rope_freq_scale: f32,
    pub activation: Activation,
    /// Scale of the attention scores.
    pub kq_scale: f32,
}

/// One transformer block's weights. Optional parts are architecture-specific.
#[derive(Debug)]
pub struct Layer {
    pub attn_norm: Vec<f32>,
    pub wq: Matrix,
    pub wk: Matrix,
    pub wv: Matrix,
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    /// Per-head RMSNorm of queries and keys (gemma3).
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub wo: Matrix,
    /// Norm of the attention output before the residual add (gemma3).
    pub post_attn_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub w_gate: Matrix,
    pub w_up: Matrix,
    pub w_down: Matrix,
    /// Norm of the feed-forward output before the residual add (gemma3).
    pub post_ffn_norm: Option<Vec<f32>>,
    /// RoPE base of this layer.
    pub rope_base: f32,
    /// Sliding attention window: a query at position p sees keys at p - window + 1 ..= p.
    pub window: Option<usize>,
}

/// A loaded transformer: configuration plus weight views into the mapped file.
#[derive(Debug)]
pub struct Transformer {
    pub config: Config,
    pub tok_embd: Matrix,
    pub layers: Vec<Layer>,
    pub output_norm: Vec<f32>,
    /// The output projection (the embedding matrix when tied).
    pub output: Matrix,
    /// Per-pair RoPE frequency divisors (llama 3.1's `rope_freqs.weight`).
    pub rope_freqs: Option<Vec<f32>>,
    /// Weight matrices repacked for this CPU (see [`Transformer::pack_weights`]); a
    /// [`Matrix::packed`] indexes this.
    pub packed: Vec<cpu::PackedMatrix>,
}

/// The tokens of one sequence in a forward pass.
pub struct SeqBatch<'a> {
    /// The sequence's cache; the tokens go at positions `cache.len()..`.
    pub cache: &'a mut KvCache,
    pub tokens: &'a [TokenId],
    /// Whether to compute logits for the last token.
    pub want_logits: bool,
}

/// Buffers reused from one forward pass to the next, so that steady-state generation does not
/// allocate.
#[derive(Debug, Default)]
pub struct Scratch {
    x: Vec<f32>,
    xn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    xq: Vec<u8>,
    xq_type: Option<GgmlType>,
    tmp: Vec<f32>,
    ysums: Vec<i32>,
    rows: Vec<usize>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// Logits of each sequence that asked for them, `n_vocab` each, in batch order.
    pub logits: Vec<f32>,
}

fn sized(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    let grew = n > v.capacity();
    v.resize(n, 0.0);
    if grew {
        // Woolly's own scratch: transparent huge pages where the system allows them.
        crate::platform::memory::advise_huge_pages(v.as_mut_slice());
    }
    &mut v[..n]
}

/// Quantizes `n` rows of `x` into the activation format `act`.
fn quantize_rows(
    act: GgmlType,
    x: &[f32],
    n: usize,
    out: &mut Vec<u8>,
    pool: &ThreadPool,
) -> Result<()> {
    let cols = x.len() / n.max(1);
    let rb = act
        .row_bytes(cols as u64)
        .ok_or_else(|| Error::Internal(format!("{cols} columns do not fit {act} blocks")))?
        as usize;
    out.resize(rb * n, 0);
    if n == 0 || rb == 0 {
        return Ok(());
    }
    if !quant::is_activation_type(act) || x.len() < n * cols {
        return Err(Error::Internal(format!(
            "cannot quantize activations to {act}"
        )));
    }
    par_items_dynamic(
        pool,
        out,
        rb,
        8,
        || (),
        |_, t, dst| {
            cpu::quantize_activations(act, &x[t * cols..(t + 1) * cols], dst);
        },
    );
    Ok(())
}

/// `out[t][r] = W[r] . x[t]` for the `n` rows of `x` (already in scratch as `xq` of `act_type`).
#[allow(clippy::too_many_arguments)]
fn matmul(
    file: &GgufFile,
    packed: &[cpu::PackedMatrix],
    m: &Matrix,
    xq: &[u8],
    n: usize,
    out: &mut [f32],
    tmp: &mut Vec<f32>,
    ysums: &mut Vec<i32>,
    pool: &ThreadPool,
) {
    let arb = xq.len() / n.max(1);
    if let Some(p) = m.packed.map(|i| &packed[i as usize]).filter(|p| p.usable()) {
        if p.needs_block_sums() {
            cpu::q8_0_block_sums(xq, n, arb, m.cols / 32, ysums);
        }
        let ysums = &ysums[..];
        assert!(out.len() >= n * m.rows);
        let dst = SharedOut(out.as_mut_ptr());
        let dst = &dst;
        // Groups of eight rows, handed out dynamically (a busy core takes fewer); each writes
        // its eight outputs of every token straight into the token-major result.
        let grain = (64 / n).clamp(1, 8);
        par_for_dynamic(pool, m.rows / 8, grain, |g| {
            // SAFETY: group `g` writes only rows 8g..8g+8 of each token's output, which no
            // other group touches; `out` holds n rows of m.rows outputs and outlives the pool
            // call.
            unsafe { p.gemm_raw(xq, arb, n, ysums, g * 8, 8, dst.0.add(g * 8), m.rows) }
        });
        return;
    }
    let data = m.data(file);
    let rb = m.row_bytes();
    let (ty, cols) = (m.ty, m.cols);
    if n == 1 {
        // Groups of 64 rows handed out dynamically (a busy core takes fewer).
        par_items_dynamic(
            pool,
            out,
            64,
            1,
            || (),
            |_, item, chunk| {
                let r = item * 64;
                cpu::matvec_rows(ty, cols, &data[r * rb..(r + 64) * rb], rb, xq, chunk);
            },
        );
        let done = m.rows / 64 * 64;
        if done < m.rows {
            cpu::matvec_rows(
                ty,
                cols,
                &data[done * rb..m.rows * rb],
                rb,
                xq,
                &mut out[done..],
            );
        }
        return;
    }
    // Weight-row-major: each weight row is read once for every token, then the result is
    // transposed into token-major order.
    let t = sized(tmp, m.rows * n);
    par_items_dynamic(pool, t, n, 4, Vec::new, |repack, r, row_out| {
        let w = &data[r * rb..(r + 1) * rb];
        cpu::dot_multi(ty, cols, w, xq, arb, row_out, repack);
    });
    transpose_into(t, m.rows, n, out, pool);
}

/// `out[tok][r] = t[r][tok]`, tokens split across the pool, rows in cache-sized blocks.
fn transpose_into(t: &[f32], rows: usize, n: usize, out: &mut [f32], pool: &ThreadPool) {
    const TOK: usize = 16;
    let out = &mut out[..rows * n];
    par_items_dynamic(
        pool,
        out,
        rows * TOK.min(n),
        1,
        || (),
        |_, item, piece| {
            let t0 = item * TOK;
            let tn = piece.len() / rows;
            for r0 in (0..rows).step_by(256) {
                for r in r0..(r0 + 256).min(rows) {
                    let src = &t[r * n + t0..r * n + t0 + tn];
                    for (k, &v) in src.iter().enumerate() {
                        piece[k * rows + r] = v;
                    }
                }
            }
        },
    );
    // A last partial group of tokens.
    let done = n / TOK.min(n) * TOK.min(n);
    for tok in done..n {
        for r in 0..rows {
            out[tok * rows + r] = t[r * n + tok];
        }
    }
}

impl Transformer {
    /// Copies every weight matrix that has a packed layout on this CPU (Q8_0 and Q5_0 with
    /// AVX2) into it, releasing the mapped pages as they are copied so that the resident size
    /// does not double. The embedding keeps its rows in the mapping (lookups read a few rows
    /// per token); when it is also the output projection, that use goes through the copy.
    ///
    /// `progress(f)` is called with the fraction done after each layer; an error from it stops
    /// the packing and is returned.
    pub fn pack_weights(
        &mut self,
        file: &GgufFile,
        progress: &dyn Fn(f32) -> Result<()>,
    ) -> Result<()> {
        let mut packed = Vec::new();
        let mut pack = |m: &mut Matrix| {
            if m.packed.is_some() {
                return;
            }
            let base = m.offset();
            if let Some(p) = cpu::PackedMatrix::new(m.ty, m.data(file), m.rows, m.cols, |r| {
                file.release_range(base + r.start, r.len())
            }) {
                m.packed = Some(packed.len() as u32);
                packed.push(p);
            }
        };
        let n_layers = self.layers.len();
        for (il, l) in self.layers.iter_mut().enumerate() {
            progress(il as f32 / (n_layers + 1) as f32)?;
            for m in [
                &mut l.wq,
                &mut l.wk,
                &mut l.wv,
                &mut l.wo,
                &mut l.w_gate,
                &mut l.w_up,
                &mut l.w_down,
            ] {
                pack(m);
            }
        }
        pack(&mut self.output);
        self.packed = packed;
        progress(1.0)
    }

    /// What the forward pass reads from the file's mapping: the byte ranges of the matrices
    /// it multiplies from there (not repacked), and the embedding's, whose rows are looked up
    /// a few per token (from the mapping even when its copy serves as the output).
    pub fn file_ranges(&self) -> (Vec<(usize, usize)>, (usize, usize)) {
        let mut v: Vec<(usize, usize)> = self
            .layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down])
            .chain([&self.output])
            .filter(|m| m.packed.is_none())
            .map(|m| m.range())
            .collect();
        v.sort_unstable();
        v.dedup();
        (v, self.tok_embd.range())
    }

    /// Bytes held by packed copies of weights.
    pub fn packed_bytes(&self) -> usize {
        self.packed.iter().map(|p| p.bytes()).sum()
    }

    /// Quantizes `s.xn` for `m` unless the scratch already holds it in the right format.
    fn prepare(s: &mut Scratch, m: &Matrix, n: usize, pool: &ThreadPool) -> Result<()> {
        let act = quant::vec_dot_type(m.ty);
        if s.xq_type != Some(act) {
            quantize_rows(act, &s.xn, n, &mut s.xq, pool)?;
            s.xq_type = Some(act);
        }
        Ok(())
    }

    /// Runs one forward pass over `seqs`. Afterwards each sequence's cache holds its new tokens,
    /// and `scratch.logits` holds the logits of the sequences that asked for them.
    ///
    /// `cancelled` is polled between layers; when it returns true the pass stops with
    /// [`Error::Cancelled`] and the caches are left as they were before the pass.
    pub fn forward(
        &self,
        file: &GgufFile,
        seqs: &mut [SeqBatch<'_>],
        s: &mut Scratch,
        pool: &ThreadPool,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        let c = &self.config;
        let n: usize = seqs.iter().map(|b| b.tokens.len()).sum();
        s.logits.clear();
        if n == 0 {
            return Ok(());
        }
        for b in seqs.iter_mut() {
            let end = b.cache.len() + b.tokens.len();
            if end > b.cache.capacity() {
                return Err(Error::ContextOverflow {
                    prompt: end,
                    requested: 0,
                    context: b.cache.capacity(),
                });
            }
            if let Some(&bad) = b.tokens.iter().find(|&&t| t as usize >= c.n_vocab) {
                return Err(Error::InvalidArgument(format!(
                    "token id {bad} is outside the vocabulary of {}",
                    c.n_vocab
                )));
            }
            b.cache.reserve_to(end);
        }

        // Embeddings.
        let x = sized(&mut s.x, n * c.n_embd);
        let emb = self.tok_embd.data(file);
        let erb = self.tok_embd.row_bytes();
        for (row, &tok) in x
            .chunks_exact_mut(c.n_embd)
            .zip(seqs.iter().flat_map(|b| b.tokens.iter()))
        {
            let t = tok as usize;
            quant::dequantize_row(self.tok_embd.ty, &emb[t * erb..(t + 1) * erb], row)?;
            if let Some(scale) = c.embd_scale {
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }

        let q_w = c.n_head * c.head_dim_k;
        let k_w = c.n_head_kv * c.head_dim_k;
        let v_w = c.n_head_kv * c.head_dim_v;
        let a_w = c.n_head * c.head_dim_v;
        for (il, layer) in self.layers.iter().enumerate() {
            if cancelled() {
                return Err(Error::Cancelled);
            }
            // Attention.
            s.xn.clear();
            s.xn.extend_from_slice(&s.x);
            for row in s.xn.chunks_exact_mut(c.n_embd) {
                ops::rms_norm(row, &layer.attn_norm, c.rms_eps);
            }
            s.xq_type = None;
            Self::prepare(s, &layer.wq, n, pool)?;
            sized(&mut s.q, n * q_w);
            matmul(
                file,
                &self.packed,
                &layer.wq,
                &s.xq,
                n,
                &mut s.q,
                &mut s.tmp,
                &mut s.ysums,
                pool,
            );
            Self::prepare(s, &layer.wk, n, pool)?;
            sized(&mut s.k, n * k_w);
            matmul(
                file,
                &self.packed,
                &layer.wk,
                &s.xq,
                n,
                &mut s.k,
                &mut s.tmp,
                &mut s.ysums,
                pool,
            );
            Self::prepare(s, &layer.wv, n, pool)?;
            sized(&mut s.v, n * v_w);
            matmul(
                file,
                &self.packed,
                &layer.wv,
                &s.xq,
                n,
                &mut s.v,
                &mut s.tmp,
                &mut s.ysums,
                pool,
            );
            for (buf, bias, w) in [
                (&mut s.q, &layer.bq, q_w),
                (&mut s.k, &layer.bk, k_w),
                (&mut s.v, &layer.bv, v_w),
            ] {
                if let Some(b) = bias {
                    buf.chunks_exact_mut(w)
                        .for_each(|r| ops::add_in_place(r, b));
                }
            }
            if let Some(qn) = &layer.q_norm {
                ops::rms_norm_heads(&mut s.q, qn, c.rms_eps);
            }
            if let Some(kn) = &layer.k_norm {
                ops::rms_norm_heads(&mut s.k, kn, c.rms_eps);
            }

            // RoPE, then the new keys and values into each sequence's cache.
            let half = c.rope_dims / 2;
            s.cos.resize(half, 0.0);
            s.sin.resize(half, 0.0);
            let mut row = 0;
            for b in seqs.iter_mut() {
                let start = b.cache.len();
                for t in 0..b.tokens.len() {
                    ops::rope_angles(
                        start + t,
                        c.rope_dims,
                        layer.rope_base,
                        c.rope_freq_scale,
                        self.rope_freqs.as_deref(),
                        &mut s.cos,
                        &mut s.sin,
                    );
                    let qr = &mut s.q[(row + t) * q_w..(row + t + 1) * q_w];
                    ops::rope(qr, c.head_dim_k, c.rope_layout, &s.cos, &s.sin);
                    let kr = &mut s.k[(row + t) * k_w..(row + t + 1) * k_w];
                    ops::rope(kr, c.head_dim_k, c.rope_layout, &s.cos, &s.sin);
                    let vr = &s.v[(row + t) * v_w..(row + t + 1) * v_w];
                    b.cache.write(il, start + t, kr, vr);
                }
                row += b.tokens.len();
            }

            // Attention of every query over its sequence's cache.
            let attn = sized(&mut s.attn, n * a_w);
            if seqs.len() > 1 && seqs.iter().all(|b| b.tokens.len() == 1) {
                // A decode step of several sequences: one parallel region for all of them.
                let caches: Vec<_> = seqs
                    .iter()
                    .map(|b| (b.cache.k(il), b.cache.v(il), b.cache.len() + 1))
                    .collect();
                attention_decode_batch(c, layer.window, &mut s.q[..n * q_w], &caches, attn, pool);
            } else {
                let mut row = 0;
                for b in seqs.iter() {
                    let len = b.tokens.len();
                    attention(
                        c,
                        layer.window,
                        &mut s.q[row * q_w..(row + len) * q_w],
                        b.cache.k(il),
                        b.cache.v(il),
                        b.cache.len() + len,
                        &mut attn[row * a_w..(row + len) * a_w],
                        pool,
                    );
                    row += len;
                }
            }
            quantize_rows(quant::vec_dot_type(layer.wo.ty), attn, n, &mut s.xq, pool)?;
            s.xq_type = None;
            let proj = sized(&mut s.proj, n * c.n_embd);
            matmul(
                file,
                &self.packed,
                &layer.wo,
                &s.xq,
                n,
                proj,
                &mut s.tmp,
                &mut s.ysums,
                pool,
            );
            if let Some(pn) = &layer.post_attn_norm {
                proj.chunks_exact_mut(c.n_embd)
                    .for_each(|r| ops::rms_norm(r, pn, c.rms_eps));
            }
            ops::add_in_place(&mut s.x, proj);

            // Feed-forward.
            s.xn.clear();
            s.xn.extend_from_slice(&s.x);
            for row in s.xn.chunks_exact_mut(c.n_embd) {
                ops::rms_norm(row, &layer.ffn_norm, c.rms_eps);
            }
            s.xq_type = None;
            Self::prepare(s, &layer.w_gate, n, pool)?;
            sized(&mut s.gate, n * c.n_ff);
            matmul(
                file,
                &self.packed,
                &layer.w_gate,
                &s.xq,
                n,
                &mut s.gate,
                &mut s.tmp,
                &mut s.ysums,
                pool,
            );
            Self::prepare(s, &layer.w_up, n, pool)?;
            sized(&mut s.up, n * c.n_ff);
            matmul(
                file,
                &self.packed,
                &layer.w_up,
                &s.xq,
                n,
                &mut s.up,
                &mut s.tmp,
                &mut s.ysums,
                pool,
            );
            match c.activation {
                Activation::Gelu => ops::geglu(&mut s.gate, &s.up),
                Activation::Silu => ops::swiglu(&mut s.gate, &s.up),
            }
            quantize_rows(
                quant::vec_dot_type(layer.w_down.ty),
                &s.gate,
                n,
                &mut s.xq,
                pool,
            )?;
            s.xq_type = None;
            let proj = sized(&mut s.proj, n * c.n_embd);
            matmul(
                file,
                &self.packed,
                &layer.w_down,
                &s.xq,
                n,
                proj,
                &mut s.tmp,
                &mut s.ysums,
                pool,
            );
            if let Some(pn) = &layer.post_ffn_norm {
                proj.chunks_exact_mut(c.n_embd)
                    .for_each(|r| ops::rms_norm(r, pn, c.rms_eps));
            }
            ops::add_in_place(&mut s.x, proj);
        }

        // Commit the new positions only now that the pass completed.
        for b in seqs.iter_mut() {
            let end = b.cache.len() + b.tokens.len();
            b.cache.set_len(end);
        }

        // Logits of the last token of each sequence that wants them.
        let mut rows = std::mem::take(&mut s.rows);
        rows.clear();
        let mut end = 0;
        for b in seqs.iter() {
            end += b.tokens.len();
            if b.want_logits && !b.tokens.is_empty() {
                rows.push(end - 1);
            }
        }
        let m = rows.len();
        s.xn.clear();
        for &r in &rows {
            s.xn.extend_from_slice(&s.x[r * c.n_embd..(r + 1) * c.n_embd]);
        }
        s.rows = rows;
        if m == 0 {
            return Ok(());
        }
        if cancelled() {
            return Err(Error::Cancelled);
        }
        for row in s.xn.chunks_exact_mut(c.n_embd) {
            ops::rms_norm(row, &self.output_norm, c.rms_eps);
        }
        quantize_rows(
            quant::vec_dot_type(self.output.ty),
            &s.xn,
            m,
            &mut s.xq,
            pool,
        )?;
        s.xq_type = None;
        s.logits.resize(m * self.output.rows, 0.0);
        matmul(
            file,
            &self.packed,
            &self.output,
            &s.xq,
            m,
            &mut s.logits,
            &mut s.tmp,
            &mut s.ysums,
            pool,
        );
        Ok(())
    }
}

/// Causal (optionally sliding-window) attention of `q` (the sequence's newest `n` tokens, ending at
/// position `len - 1`) over the cached keys and values.
#[allow(clippy::too_many_arguments)]
fn attention(
    c: &Config,
    window: Option<usize>,
    q: &mut [f32],
    k: KvView<'_>,
    v: KvView<'_>,
    len: usize,
    out: &mut [f32],
    pool: &ThreadPool,
) {
    let (hk, hv) = (c.head_dim_k, c.head_dim_v);
    let q_w = c.n_head * hk;
    let n = q.len() / q_w;
    let group = c.n_head / c.n_head_kv;
    let first_pos = len - n;
    if n >= ATTN_TILE {
        return attention_tiled(c, window, q, k, v, len, out, pool);
    }
    // Queries are rounded to f16, as llama.cpp's flash attention converts them on this path.
    (ops::vec_ops().round_to_f16)(q);
    let q = &*q;
    // One work item per (token, head): it writes exactly its own `hv` outputs. The softmax is
    // computed online (one pass over the keys) with the value accumulator held in f16, the same
    // arithmetic as llama.cpp's CPU flash attention over an f16 cache: the reference logits were
    // computed that way, and the tiny models then agree with them to about 1e-5.
    let ops = ops::vec_ops();
    // A single query over a long cache: llama.cpp splits the keys into chunks, each with its
    // own f16 accumulator, merged in f32 (see [`decode_chunks`]).
    let chunks = if n == 1 { decode_chunks(len) } else { None };
    // Items are (token, head) pairs, handed out dynamically: later tokens see more keys.
    par_items_dynamic(
        pool,
        out,
        hv,
        4,
        || (vec![0f32; hv], vec![0f32; hk.max(hv)]),
        |(part, row), item, o| {
            let (t, h) = (item / c.n_head, item % c.n_head);
            let q16 = &q[t * q_w + h * hk..t * q_w + (h + 1) * hk];
            query_head(
                &ops,
                c,
                window,
                q16,
                k,
                v,
                first_pos + t,
                h / group,
                chunks,
                part,
                row,
                o,
            );
        },
    );
}

/// One query head at position `pos` over keys `..=pos` of KV head `kvh` (within the sliding
/// `window`), into `o`: the online softmax with an f16 value accumulator, in `chunks` merged in
/// f32 when given (see [`decode_chunks`]). `q16` is already rounded to f16.
#[allow(clippy::too_many_arguments)]
fn query_head(
    ops: &ops::VecOps,
    c: &Config,
    window: Option<usize>,
    q16: &[f32],
    k: KvView<'_>,
    v: KvView<'_>,
    pos: usize,
    kvh: usize,
    chunks: Option<usize>,
    part: &mut [f32],
    row: &mut [f32],
    o: &mut [f32],
) {
    let lo = window.map_or(0, |w| (pos + 1).saturating_sub(w));
    let mut keys = |acc: &mut [f32], from: usize, to: usize| {
        online_softmax_f16(ops, c, q16, k, v, kvh, from, to, acc, row)
    };
    let (_, sum) = match chunks {
        None => keys(o, lo, pos + 1),
        Some(size) => {
            // Merge the chunks' (max, sum, accumulator) in f32, in chunk order.
            let (mut max, mut sum) = (f32::NEG_INFINITY, 0f32);
            o.fill(0.0);
            let mut from = 0;
            while from <= pos {
                let to = (from + size).min(pos + 1);
                let (m_c, s_c) = keys(part, from.max(lo), to);
                from += size;
                if s_c == 0.0 {
                    continue;
                }
                let m = max.max(m_c);
                let (a, b) = ((max - m).exp(), (m_c - m).exp());
                for (x, &y) in o.iter_mut().zip(part.iter()) {
                    *x = *x * a + y * b;
                }
                sum = sum * a + s_c * b;
                max = m;
            }
            (max, sum)
        }
    };
    let inv = 1.0 / sum;
    o.iter_mut().for_each(|x| *x *= inv);
}

/// Decode attention for several sequences of one token each, in one parallel region (items are
/// (sequence, head) pairs): each item computes what [`attention`] computes for that sequence
/// alone, so batching changes no number. `caches[i]` holds sequence `i`'s keys, values and
/// length including the new token.
fn attention_decode_batch(
    c: &Config,
    window: Option<usize>,
    q: &mut [f32],
    caches: &[(KvView<'_>, KvView<'_>, usize)],
    out: &mut [f32],
    pool: &ThreadPool,
) {
    let (hk, hv) = (c.head_dim_k, c.head_dim_v);
    let q_w = c.n_head * hk;
    let group = c.n_head / c.n_head_kv;
    (ops::vec_ops().round_to_f16)(q);
    let q = &*q;
    let ops = ops::vec_ops();
    par_items_dynamic(
        pool,
        out,
        hv,
        1,
        || (vec![0f32; hv], vec![0f32; hk.max(hv)]),
        |(part, row), item, o| {
            let (i, h) = (item / c.n_head, item % c.n_head);
            let (k, v, len) = caches[i];
            let q16 = &q[i * q_w + h * hk..i * q_w + (h + 1) * hk];
            query_head(
                &ops,
                c,
                window,
                q16,
                k,
                v,
                len - 1,
                h / group,
                decode_chunks(len),
                part,
                row,
                o,
            );
        },
    );
}

/// The key chunk size llama.cpp uses for one query over `len` cached keys, or `None` when it
/// takes them in one pass. Its CPU flash attention splits a decode step (one query, an f16
/// cache of at least 512 cells) into one chunk per thread, each accumulating the values in f16,
/// then merges the chunks in f32. Woolly fixes the split at two chunks (what llama.cpp does
/// with two threads, as the references were computed), so that its answer does not depend on
/// its own thread count. llama.cpp's cell count is the used cache rounded up to 256.
fn decode_chunks(len: usize) -> Option<usize> {
    const SPLIT: usize = 2;
    const PAD: usize = 256;
    const MIN_CELLS: usize = 512;
    let n_kv = len.div_ceil(PAD) * PAD;
    (n_kv >= MIN_CELLS).then(|| n_kv.div_ceil(SPLIT))
}

/// Keys `from..to` of KV head `kvh` for the f16 query `q16`: an online softmax whose value
/// accumulator `acc` stays in f16. Returns the running maximum and sum (0 when the range is
/// empty).
#[allow(clippy::too_many_arguments)]
fn online_softmax_f16(
    ops: &ops::VecOps,
    c: &Config,
    q16: &[f32],
    k: KvView<'_>,
    v: KvView<'_>,
    kvh: usize,
    from: usize,
    to: usize,
    acc: &mut [f32],
    row: &mut [f32],
) -> (f32, f32) {
    let (hk, hv) = (c.head_dim_k, c.head_dim_v);
    let k_w = c.n_head_kv * hk;
    let v_w = c.n_head_kv * hv;
    acc.fill(0.0);
    let (mut max, mut sum) = (f32::NEG_INFINITY, 0f32);
    for j in from..to {
        let score = (ops.dot)(q16, k.row(j * k_w + kvh * hk, hk, row)) * c.kq_scale;
        // Rescale what is accumulated when a new maximum arrives; otherwise weight the new
        // value by its distance from the maximum.
        let (mut rescale, mut weight) = (1f32, 1f32);
        if score > max {
            rescale = (max - score).exp();
            max = score;
            (ops.f16_scale)(acc, rescale);
        } else {
            weight = (score - max).exp();
        }
        (ops.f16_axpy)(acc, v.row(j * v_w + kvh * hv, hv, row), weight);
        sum = sum * rescale + weight;
    }
    (max, sum)
}

/// Query and key tile size of the batched attention path (llama.cpp's `GGML_FA_TILE_Q/KV`).
const ATTN_TILE: usize = 64;

/// Attention for a batch of at least [`ATTN_TILE`] queries, as llama.cpp computes a prompt: per
/// head, tiles of 64 queries against tiles of 64 keys; scores as an f32 matrix product, an
/// online softmax per key tile, and the values accumulated in f32 by a second product. Tiles
/// that the causal (or sliding-window) mask hides entirely are skipped.
#[allow(clippy::too_many_arguments)]
fn attention_tiled(
    c: &Config,
    window: Option<usize>,
    q: &[f32],
    k: KvView<'_>,
    v: KvView<'_>,
    len: usize,
    out: &mut [f32],
    pool: &ThreadPool,
) {
    const T: usize = ATTN_TILE;
    let (hk, hv) = (c.head_dim_k, c.head_dim_v);
    let q_w = c.n_head * hk;
    let a_w = c.n_head * hv;
    let n = q.len() / q_w;
    let group = c.n_head / c.n_head_kv;
    let k_w = c.n_head_kv * hk;
    let v_w = c.n_head_kv * hv;
    let first_pos = len - n;
    let q_tiles = n.div_ceil(T);
    let ops = ops::vec_ops();
    assert!(out.len() >= n * a_w);
    let dst = SharedOut(out.as_mut_ptr());
    let dst = &dst;
    struct Buf {
        q: Vec<f32>,
        kt: Vec<f32>,
        kq: Vec<f32>,
        v: Vec<f32>,
        acc: Vec<f32>,
        row: Vec<f32>,
    }
    let init = || Buf {
        row: vec![0.0; hk.max(hv)],
        q: vec![0.0; T * hk],
        kt: vec![0.0; hk * T],
        kq: vec![0.0; T * T],
        v: vec![0.0; T * hv],
        acc: vec![0.0; T * hv],
    };
    // Items are (query tile, head), the last tiles first: they see the most keys.
    let bufs: Vec<std::sync::Mutex<Option<Buf>>> = (0..pool.threads())
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let items = q_tiles * c.n_head;
    pool.broadcast(&|ti| {
        let mut slot = bufs[ti].lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let it = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if it >= items {
                break;
            }
            let b = slot.get_or_insert_with(init);
            let (qt, h) = (q_tiles - 1 - it / c.n_head, it % c.n_head);
            let kvh = h / group;
            let t0 = qt * T;
            let rows = (n - t0).min(T);
            for i in 0..T {
                let row = &mut b.q[i * hk..(i + 1) * hk];
                if i < rows {
                    let t = t0 + i;
                    row.copy_from_slice(&q[t * q_w + h * hk..t * q_w + (h + 1) * hk]);
                } else {
                    row.fill(0.0);
                }
            }
            b.acc.fill(0.0);
            let mut m = [f32::NEG_INFINITY; T];
            let mut s = [0f32; T];
            let last_pos = first_pos + t0 + rows - 1;
            let lo_of = |pos: usize| window.map_or(0, |w| (pos + 1).saturating_sub(w));
            let kv_lo = lo_of(first_pos + t0) / T * T;
            let mut ic = kv_lo;
            while ic <= last_pos {
                let kv = (len - ic).min(T);
                // K tile transposed (dk-major), zero-padded.
                b.kt.fill(0.0);
                for tk in 0..kv {
                    let kj = k.row((ic + tk) * k_w + kvh * hk, hk, &mut b.row);
                    for (dk, &x) in kj.iter().enumerate() {
                        b.kt[dk * T + tk] = x;
                    }
                }
                b.kq.fill(0.0);
                (ops.gemm_acc)(&mut b.kq, &b.q, &b.kt, T, hk, T);
                let mut any = [false; T];
                for i in 0..rows {
                    let pos = first_pos + t0 + i;
                    let lo = lo_of(pos);
                    let row = &mut b.kq[i * T..(i + 1) * T];
                    for (tk, x) in row.iter_mut().enumerate() {
                        let j = ic + tk;
                        *x = if tk < kv && j >= lo && j <= pos {
                            *x * c.kq_scale
                        } else {
                            f32::NEG_INFINITY
                        };
                    }
                    let tile_max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    if tile_max == f32::NEG_INFINITY {
                        row.fill(0.0);
                        continue;
                    }
                    any[i] = true;
                    let m_new = m[i].max(tile_max);
                    if m_new > m[i] {
                        let ms = (m[i] - m_new).exp();
                        b.acc[i * hv..(i + 1) * hv]
                            .iter_mut()
                            .for_each(|x| *x *= ms);
                        s[i] *= ms;
                    }
                    m[i] = m_new;
                    let mut sum = 0f64;
                    for x in row.iter_mut() {
                        *x = (*x - m_new).exp();
                        sum += *x as f64;
                    }
                    s[i] += sum as f32;
                }
                for row in b.kq[rows * T..].chunks_exact_mut(T) {
                    row.fill(0.0);
                }
                if any.iter().any(|&a| a) {
                    b.v.fill(0.0);
                    for tk in 0..kv {
                        let dst = &mut b.v[tk * hv..(tk + 1) * hv];
                        match v {
                            KvView::F32(s) => {
                                dst.copy_from_slice(&s[(ic + tk) * v_w + kvh * hv..][..hv])
                            }
                            KvView::F16(_) => {
                                let vj = v.row((ic + tk) * v_w + kvh * hv, hv, &mut b.row);
                                dst.copy_from_slice(vj);
                            }
                        }
                    }
                    (ops.gemm_acc)(&mut b.acc, &b.kq, &b.v, T, T, hv);
                }
                ic += T;
            }
            for (i, &si) in s.iter().enumerate().take(rows) {
                let inv = if si == 0.0 { 0.0 } else { 1.0 / si };
                let t = t0 + i;
                // SAFETY: item (qt, h) writes only head h of tokens t0..t0+rows, which no other
                // item writes; `out` holds n tokens of a_w outputs and outlives the broadcast.
                let o = unsafe { std::slice::from_raw_parts_mut(dst.0.add(t * a_w + h * hv), hv) };
                for (x, &y) in o.iter_mut().zip(&b.acc[i * hv..(i + 1) * hv]) {
                    *x = y * inv;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::decode_chunks;

    #[test]
    fn decode_steps_split_like_llama_cpp() {
        // Under 512 cells (after rounding up to 256) one pass; from there two chunks of half
        // the rounded cell count.
        assert_eq!(decode_chunks(1), None);
        assert_eq!(decode_chunks(256), None);
        assert_eq!(decode_chunks(257), Some(256));
        assert_eq!(decode_chunks(512), Some(256));
        assert_eq!(decode_chunks(832), Some(512));
        assert_eq!(decode_chunks(1025), Some(640));
    }
}
