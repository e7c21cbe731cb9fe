//! Where a forward pass runs: the [`Backend`] interface, between the kernels and the models.
//!
//! A model describes its architecture once (its configuration and the weights of each layer)
//! and writes its forward pass once, generic over a [`Backend`]: the backend decides where the
//! weights live ([`Backend::Weight`], prepared from the file's tensors), where the activations
//! live ([`Backend::Scratch`], named by [`Act`]) and how each step is computed (matrix products,
//! norms, RoPE, activations, attention over the KV cache, logits). The pass is monomorphized
//! for its backend, so the seam costs no dynamic dispatch.
//!
//! The CPU ([`cpu`]) is the one backend, built on [`crate::kernels::cpu`]; keys and values are
//! kept in host memory by a [`KvCache`].

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod kv_cache;

use crate::gguf::GgufFile;
use crate::kernels::cpu::ops::RopeLayout;
use crate::kernels::kv::AttnShape;
use crate::tokenizer::TokenId;
use crate::Result;

pub use kv_cache::KvCache;

/// A weight matrix of `rows` x `cols` as the model file stores it: row by row at a range of the
/// file's mapping, still quantized.
#[derive(Debug, Clone, Copy)]
pub struct Matrix {
    /// The type of its rows.
    pub ty: crate::gguf::GgmlType,
    /// Rows (outputs of a product).
    pub rows: usize,
    /// Columns (inputs of a product).
    pub cols: usize,
    offset: usize,
    len: usize,
}

impl Matrix {
    /// The matrix of type `ty` at bytes `offset..offset + len` of the file.
    pub fn new(
        ty: crate::gguf::GgmlType,
        rows: usize,
        cols: usize,
        offset: usize,
        len: usize,
    ) -> Self {
        Matrix {
            ty,
            rows,
            cols,
            offset,
            len,
        }
    }

    /// The byte range of the matrix in the file.
    pub fn range(&self) -> (usize, usize) {
        (self.offset, self.offset + self.len)
    }

    /// The matrix's bytes within `bytes`, the file's mapping.
    #[inline]
    pub fn data<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[self.offset..self.offset + self.len]
    }

    /// Bytes of one row.
    #[inline]
    pub fn row_bytes(&self) -> usize {
        self.len / self.rows.max(1)
    }
}

/// `out` = the rows of `table` (in the file's mapping `bytes`) for the tokens of `seqs`, in
/// order, times `scale`: the embedding every backend looks up on the host.
///
/// # Errors
/// When `table`'s type cannot be read.
pub fn embed_rows(
    bytes: &[u8],
    table: &Matrix,
    seqs: &[SeqBatch<'_>],
    scale: Option<f32>,
    out: &mut [f32],
) -> Result<()> {
    let width = table.cols;
    let erb = table.row_bytes();
    let emb = table.data(bytes);
    for (row, &tok) in out
        .chunks_exact_mut(width)
        .zip(seqs.iter().flat_map(|b| b.tokens.iter()))
    {
        let t = tok as usize;
        crate::quant::dequantize_row(table.ty, &emb[t * erb..(t + 1) * erb], row)?;
        if let Some(scale) = scale {
            row.iter_mut().for_each(|v| *v *= scale);
        }
    }
    Ok(())
}

/// The feed-forward gate's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// GELU, tanh approximation (gemma).
    Gelu,
    /// SiLU (llama, qwen2).
    Silu,
}

/// The activation buffers of a forward pass, each holding one row per token of the pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// The residual stream (`n_embd` a row).
    X,
    /// The normed input of the next products (`n_embd` a row; the final norm's rows too).
    Xn,
    /// Queries (`n_head * head_dim_k` a row).
    Q,
    /// Keys (`n_head_kv * head_dim_k` a row).
    K,
    /// Values (`n_head_kv * head_dim_v` a row).
    V,
    /// The attention's output (`n_head * head_dim_v` a row).
    Attn,
    /// The output of the attention's or the feed-forward's last product (`n_embd` a row).
    Proj,
    /// The feed-forward's gate (and, after [`Backend::glu`], its activated product; `n_ff` a
    /// row).
    Gate,
    /// The feed-forward's up rows (`n_ff` a row).
    Up,
}

/// The tokens of one sequence in a forward pass.
pub struct SeqBatch<'a> {
    /// The sequence's cache; the tokens go at positions `cache.len()..`.
    pub cache: &'a mut KvCache,
    /// The new tokens.
    pub tokens: &'a [TokenId],
    /// Whether to compute logits for the last token.
    pub want_logits: bool,
}

/// The rotary embedding of one layer.
#[derive(Debug, Clone, Copy)]
pub struct Rope<'a> {
    /// Dimensions rotated in each head.
    pub dims: usize,
    /// Which pairs of a head rotate together.
    pub layout: RopeLayout,
    /// Base of the frequencies.
    pub base: f32,
    /// Position scale (1 / linear scaling factor).
    pub freq_scale: f32,
    /// Per-pair frequency divisors (llama 3.1's `rope_freqs.weight`).
    pub freqs: Option<&'a [f32]>,
}

/// What a forward pass needs from the hardware it runs on. The steps read and write the
/// activation buffers in [`Backend::Scratch`], named by [`Act`]; `n` is always the number of
/// tokens (rows) in the pass. Norm weights and biases come as f32 slices.
pub trait Backend {
    /// A weight matrix ready for this backend's products (prepared by [`Backend::prepare`]).
    type Weight: std::fmt::Debug + Send + Sync;
    /// The activation buffers and scratch of forward passes, reused from one pass to the next
    /// so that steady-state generation does not allocate.
    type Scratch: Default + Send;
    /// What runs the steps (the CPU's: a thread pool).
    type Exec;

    /// The weight `m` of `file` in this backend's form (copied into a faster layout or into
    /// device memory, or read in place).
    ///
    /// # Errors
    /// When the backend has no room for it ([`crate::Error::OutOfDeviceMemory`]) or its
    /// device fails.
    fn prepare(&mut self, file: &GgufFile, m: &Matrix) -> Result<Self::Weight>;

    /// The file range a prepared weight is still read from, if any.
    fn mapped_range(&self, w: &Self::Weight) -> Option<(usize, usize)>;

    /// Bytes the backend holds for its prepared weights.
    fn prepared_bytes(&self) -> usize;

    /// Makes room for each sequence's new tokens in this backend's part of its cache (the
    /// host part is reserved already). The CPU has nothing to do.
    ///
    /// # Errors
    /// When the backend's memory cannot hold them ([`crate::Error::OutOfDeviceMemory`]).
    fn reserve(&self, _s: &mut Self::Scratch, _seqs: &mut [SeqBatch<'_>]) -> Result<()> {
        Ok(())
    }

    /// [`Act::X`] = the rows of `table` for the tokens of `seqs` (in order), times `scale`.
    ///
    /// # Errors
    /// When `table`'s type cannot be read.
    fn embed(
        &self,
        s: &mut Self::Scratch,
        seqs: &[SeqBatch<'_>],
        table: &Matrix,
        scale: Option<f32>,
    ) -> Result<()>;

    /// `to` = the rows (`width` each) of `from`, RMS-normed with `weight` (in place when `from`
    /// is `to`).
    fn rms_norm(
        &self,
        s: &mut Self::Scratch,
        from: Act,
        to: Act,
        weight: &[f32],
        width: usize,
        eps: f32,
    );

    /// Every head of `buf` RMS-normed with `weight` (one head's size).
    fn rms_norm_heads(&self, s: &mut Self::Scratch, buf: Act, weight: &[f32], eps: f32);

    /// `bias` added to each row of `buf`.
    fn add_bias(&self, s: &mut Self::Scratch, buf: Act, bias: &[f32]);

    /// `to += from`, element-wise.
    fn add(&self, s: &mut Self::Scratch, to: Act, from: Act);

    /// `to[t] = w · from[t]` for the `n` rows of `from`.
    ///
    /// # Errors
    /// When the activations cannot be brought into the form `w`'s products take.
    fn matmul(
        &self,
        s: &mut Self::Scratch,
        exec: &Self::Exec,
        w: &Self::Weight,
        from: Act,
        to: Act,
        n: usize,
    ) -> Result<()>;

    /// RoPE over the rows of [`Act::Q`] and [`Act::K`] at each sequence's new positions, and
    /// the keys and values ([`Act::V`]) of those positions into layer `il` of its cache.
    fn rope_store(
        &self,
        s: &mut Self::Scratch,
        seqs: &mut [SeqBatch<'_>],
        il: usize,
        shape: AttnShape,
        rope: &Rope<'_>,
    );

    /// [`Act::Attn`] = causal attention of each sequence's queries ([`Act::Q`]) over layer
    /// `il` of its cache, which holds the new positions already; `window` limits how far back
    /// a query sees.
    fn attention(
        &self,
        s: &mut Self::Scratch,
        exec: &Self::Exec,
        seqs: &[SeqBatch<'_>],
        il: usize,
        shape: AttnShape,
        window: Option<usize>,
    );

    /// [`Act::Gate`] = `activation(gate) * up`.
    fn glu(&self, s: &mut Self::Scratch, activation: Activation);

    /// Forgets the logits of the last pass.
    fn clear_logits(&self, s: &mut Self::Scratch);

    /// The logits of the last token of each sequence that wants them, in batch order, from
    /// the residual stream (rows of `width`): final RMS norm with `norm`, then the product
    /// with `output`. `cancelled` is polled before the norm when any sequence wants logits.
    ///
    /// # Errors
    /// [`crate::Error::Cancelled`], or as [`Backend::matmul`].
    #[allow(clippy::too_many_arguments)]
    fn logits(
        &self,
        s: &mut Self::Scratch,
        exec: &Self::Exec,
        seqs: &[SeqBatch<'_>],
        output: &Self::Weight,
        norm: &[f32],
        width: usize,
        eps: f32,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()>;
}
