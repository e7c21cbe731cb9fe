//! The decoder-only transformer that gemma3, llama and qwen2 share, described by each
//! architecture's [`Config`] and layers (see `gemma3.rs`, `llama.rs`, `qwen2.rs`) and run on a
//! [`Backend`]: the forward pass here is written once, as a sequence of steps, and the backend
//! computes each step.
//!
//! One forward pass runs any number of tokens of any number of sequences: the rows of every
//! sequence are stacked, so each weight matrix is read once per pass for all of them, and
//! attention runs per sequence over its own KV cache.

use crate::backend::{Act, Activation, Backend, Matrix, Rope, SeqBatch};
use crate::gguf::GgufFile;
use crate::kernels::cpu::ops::RopeLayout;
use crate::kernels::kv::AttnShape;
use crate::{Error, Result};

/// The numbers and choices that shape the forward pass.
#[derive(Debug, Clone)]
pub struct Config {
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Width of the feed-forward's hidden layer.
    pub n_ff: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Size of a query or key head.
    pub head_dim_k: usize,
    /// Size of a value head.
    pub head_dim_v: usize,
    /// Dimensions of a head that RoPE rotates.
    pub rope_dims: usize,
    /// Epsilon of every RMS norm.
    pub rms_eps: f32,
    /// Tokens in the vocabulary (rows of the embedding and of the output).
    pub n_vocab: usize,
    /// Multiplier of the token embeddings (gemma: sqrt(n_embd)).
    pub embd_scale: Option<f32>,
    /// Which pairs of a head RoPE rotates together.
    pub rope_layout: RopeLayout,
    /// RoPE position scale (1 / linear scaling factor).
    pub rope_freq_scale: f32,
    /// The feed-forward gate's activation.
    pub activation: Activation,
    /// Scale of the attention scores.
    pub kq_scale: f32,
}

impl Config {
    /// Values per position of one layer's keys (KV heads times key head size).
    pub fn k_width(&self) -> usize {
        self.n_head_kv * self.head_dim_k
    }

    /// Values per position of one layer's values.
    pub fn v_width(&self) -> usize {
        self.n_head_kv * self.head_dim_v
    }

    fn attn_shape(&self) -> AttnShape {
        AttnShape {
            n_head: self.n_head,
            n_head_kv: self.n_head_kv,
            head_dim_k: self.head_dim_k,
            head_dim_v: self.head_dim_v,
            kq_scale: self.kq_scale,
        }
    }
}

/// One transformer block's weights: matrices of type `W` (the file's [`Matrix`] as an
/// architecture describes them, a [`Backend::Weight`] once prepared). Optional parts are
/// architecture-specific.
#[derive(Debug, Clone)]
pub struct Layer<W> {
    /// Norm before the attention.
    pub attn_norm: Vec<f32>,
    /// Query, key and value projections.
    pub wq: W,
    pub wk: W,
    pub wv: W,
    /// Their biases (qwen2, some llamas).
    pub bq: Option<Vec<f32>>,
    pub bk: Option<Vec<f32>>,
    pub bv: Option<Vec<f32>>,
    /// Per-head RMSNorm of queries and keys (gemma3).
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    /// The attention's output projection.
    pub wo: W,
    /// Norm of the attention output before the residual add (gemma3).
    pub post_attn_norm: Option<Vec<f32>>,
    /// Norm before the feed-forward.
    pub ffn_norm: Vec<f32>,
    /// The feed-forward's gate, up and down projections.
    pub w_gate: W,
    pub w_up: W,
    pub w_down: W,
    /// Norm of the feed-forward output before the residual add (gemma3).
    pub post_ffn_norm: Option<Vec<f32>>,
    /// RoPE base of this layer.
    pub rope_base: f32,
    /// Sliding attention window: a query at position p sees keys at p - window + 1 ..= p.
    pub window: Option<usize>,
}

impl<W> Layer<W> {
    /// The same layer with each matrix mapped by `f`, in the order wq, wk, wv, wo, w_gate,
    /// w_up, w_down; the first error stops it.
    pub(crate) fn try_map<U>(self, mut f: impl FnMut(W) -> Result<U>) -> Result<Layer<U>> {
        Ok(Layer {
            wq: f(self.wq)?,
            wk: f(self.wk)?,
            wv: f(self.wv)?,
            wo: f(self.wo)?,
            w_gate: f(self.w_gate)?,
            w_up: f(self.w_up)?,
            w_down: f(self.w_down)?,
            attn_norm: self.attn_norm,
            bq: self.bq,
            bk: self.bk,
            bv: self.bv,
            q_norm: self.q_norm,
            k_norm: self.k_norm,
            post_attn_norm: self.post_attn_norm,
            ffn_norm: self.ffn_norm,
            post_ffn_norm: self.post_ffn_norm,
            rope_base: self.rope_base,
            window: self.window,
        })
    }

    /// The layer's matrices, in the order of [`Layer::try_map`].
    pub fn matrices(&self) -> [&W; 7] {
        [
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.w_gate,
            &self.w_up,
            &self.w_down,
        ]
    }
}

/// A transformer: configuration plus weights, the matrices of type `W` (as for [`Layer`]).
#[derive(Debug, Clone)]
pub struct Transformer<W> {
    /// The numbers and choices that shape the pass.
    pub config: Config,
    /// The token embeddings, whose rows are looked up in the file's mapping.
    pub tok_embd: Matrix,
    /// The blocks, in order.
    pub layers: Vec<Layer<W>>,
    /// The final norm, before the output projection.
    pub output_norm: Vec<f32>,
    /// The output projection (the embedding matrix when tied).
    pub output: W,
    /// Per-pair RoPE frequency divisors (llama 3.1's `rope_freqs.weight`).
    pub rope_freqs: Option<Vec<f32>>,
}

impl Transformer<Matrix> {
    /// The transformer with its matrices prepared by `backend` (layer by layer, then the
    /// output). The embedding keeps its rows in the mapping (lookups read a few rows per
    /// token); when it is also the output projection, that use goes through the prepared one.
    ///
    /// `progress(f)` is called with the fraction done after each layer; an error from it stops
    /// the preparation and is returned.
    pub fn prepare<B: Backend>(
        self,
        backend: &mut B,
        file: &GgufFile,
        progress: &dyn Fn(f32) -> Result<()>,
    ) -> Result<Transformer<B::Weight>> {
        self.prepare_with_output(backend, file, progress, |b, m| b.prepare(file, m))
    }

    /// [`Transformer::prepare`] with the output projection prepared by `output` (which
    /// another backend computes when only the layers run here).
    pub fn prepare_with_output<B: Backend>(
        self,
        backend: &mut B,
        file: &GgufFile,
        progress: &dyn Fn(f32) -> Result<()>,
        output: impl FnOnce(&mut B, &Matrix) -> Result<B::Weight>,
    ) -> Result<Transformer<B::Weight>> {
        let n_layers = self.layers.len();
        let mut layers = Vec::with_capacity(n_layers);
        for (il, l) in self.layers.into_iter().enumerate() {
            progress(il as f32 / (n_layers + 1) as f32)?;
            layers.push(l.try_map(|m| backend.prepare(file, &m))?);
        }
        let output = output(backend, &self.output)?;
        progress(1.0)?;
        Ok(Transformer {
            config: self.config,
            tok_embd: self.tok_embd,
            layers,
            output_norm: self.output_norm,
            output,
            rope_freqs: self.rope_freqs,
        })
    }
}

impl Transformer<Matrix> {
    /// The first `k` layers (with everything else), and the rest (with everything else too).
    pub fn split_at(mut self, k: usize) -> (Transformer<Matrix>, Transformer<Matrix>) {
        let rest = self.layers.split_off(k.min(self.layers.len()));
        let tail = Transformer {
            config: self.config.clone(),
            tok_embd: self.tok_embd,
            layers: rest,
            output_norm: self.output_norm.clone(),
            output: self.output,
            rope_freqs: self.rope_freqs.clone(),
        };
        (self, tail)
    }

    /// Bytes of each layer's matrices in the file.
    pub fn layer_bytes(&self) -> Vec<u64> {
        self.layers
            .iter()
            .map(|l| {
                l.matrices()
                    .iter()
                    .map(|m| (m.range().1 - m.range().0) as u64)
                    .sum()
            })
            .collect()
    }
}

impl<W> Transformer<W> {
    /// What the forward pass on `backend` reads from the file's mapping: the byte ranges of
    /// the matrices it multiplies from there, and the embedding's, whose rows are looked up a
    /// few per token (from the mapping even when its prepared copy serves as the output).
    pub fn file_ranges<B: Backend<Weight = W>>(
        &self,
        backend: &B,
    ) -> (Vec<(usize, usize)>, (usize, usize)) {
        let mut v: Vec<(usize, usize)> = self
            .layers
            .iter()
            .flat_map(|l| l.matrices())
            .chain([&self.output])
            .filter_map(|m| backend.mapped_range(m))
            .collect();
        v.sort_unstable();
        v.dedup();
        (v, self.tok_embd.range())
    }

    /// Runs one forward pass over `seqs` on `backend`. Afterwards each sequence's cache holds
    /// its new tokens, and the scratch holds the logits of the sequences that asked for them.
    ///
    /// `cancelled` is polled between layers; when it returns true the pass stops with
    /// [`Error::Cancelled`] and the caches are left as they were before the pass.
    pub fn forward<B: Backend<Weight = W>>(
        &self,
        backend: &B,
        seqs: &mut [SeqBatch<'_>],
        s: &mut B::Scratch,
        exec: &B::Exec,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        if !self.begin(backend, s, seqs)? {
            return Ok(());
        }
        backend.embed(s, seqs, &self.tok_embd, self.config.embd_scale)?;
        self.run_layers(backend, s, exec, seqs, cancelled)?;
        self.finish(backend, s, exec, seqs, cancelled)
    }

    /// The start of a pass: forgets the last logits, checks the tokens and makes room for
    /// them in each cache. False when there are no tokens (nothing else to do).
    pub(crate) fn begin<B: Backend<Weight = W>>(
        &self,
        backend: &B,
        s: &mut B::Scratch,
        seqs: &mut [SeqBatch<'_>],
    ) -> Result<bool> {
        backend.clear_logits(s);
        if seqs.iter().all(|b| b.tokens.is_empty()) {
            return Ok(false);
        }
        self.check_and_reserve(seqs)?;
        backend.reserve(s, seqs)?;
        Ok(true)
    }

    /// Every layer of this transformer over the residual stream in [`Act::X`] (layer `il` of
    /// the backend's cache is this transformer's layer `il`). `cancelled` is polled before
    /// each layer.
    pub(crate) fn run_layers<B: Backend<Weight = W>>(
        &self,
        backend: &B,
        s: &mut B::Scratch,
        exec: &B::Exec,
        seqs: &mut [SeqBatch<'_>],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        let n: usize = seqs.iter().map(|b| b.tokens.len()).sum();
        for (il, layer) in self.layers.iter().enumerate() {
            if cancelled() {
                return Err(Error::Cancelled);
            }
            self.attention_block(backend, s, exec, seqs, il, layer, n)?;
            self.feed_forward_block(backend, s, exec, layer, n)?;
        }
        Ok(())
    }

    /// The end of a pass: commits the new positions to the caches, then the logits.
    pub(crate) fn finish<B: Backend<Weight = W>>(
        &self,
        backend: &B,
        s: &mut B::Scratch,
        exec: &B::Exec,
        seqs: &mut [SeqBatch<'_>],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        // Commit the new positions only now that the pass completed.
        for b in seqs.iter_mut() {
            let end = b.cache.len() + b.tokens.len();
            b.cache.set_len(end);
        }
        let (norm, eps) = (&self.output_norm, self.config.rms_eps);
        let width = self.config.n_embd;
        backend.logits(s, exec, seqs, &self.output, norm, width, eps, cancelled)
    }

    /// Fails when a sequence's tokens would overflow its cache or lie outside the vocabulary;
    /// otherwise makes room in each cache for its new tokens.
    fn check_and_reserve(&self, seqs: &mut [SeqBatch<'_>]) -> Result<()> {
        let n_vocab = self.config.n_vocab;
        for b in seqs.iter_mut() {
            let end = b.cache.len() + b.tokens.len();
            if end > b.cache.capacity() {
                return Err(Error::ContextOverflow {
                    prompt: end,
                    requested: 0,
                    context: b.cache.capacity(),
                });
            }
            if let Some(&bad) = b.tokens.iter().find(|&&t| t as usize >= n_vocab) {
                return Err(Error::InvalidArgument(format!(
                    "token id {bad} is outside the vocabulary of {n_vocab}"
                )));
            }
            b.cache.reserve_to(end);
        }
        Ok(())
    }

    /// Layer `il`'s attention: norm, the q/k/v products (with biases and QK-norm), RoPE and
    /// the cache write, attention over each sequence's cache, the output product (and its
    /// norm), added to the residual stream.
    #[allow(clippy::too_many_arguments)]
    fn attention_block<B: Backend<Weight = W>>(
        &self,
        b: &B,
        s: &mut B::Scratch,
        exec: &B::Exec,
        seqs: &mut [SeqBatch<'_>],
        il: usize,
        layer: &Layer<W>,
        n: usize,
    ) -> Result<()> {
        let c = &self.config;
        b.rms_norm(s, Act::X, Act::Xn, &layer.attn_norm, c.n_embd, c.rms_eps);
        b.matmul(s, exec, &layer.wq, Act::Xn, Act::Q, n)?;
        b.matmul(s, exec, &layer.wk, Act::Xn, Act::K, n)?;
        b.matmul(s, exec, &layer.wv, Act::Xn, Act::V, n)?;
        for (buf, bias) in [
            (Act::Q, &layer.bq),
            (Act::K, &layer.bk),
            (Act::V, &layer.bv),
        ] {
            if let Some(bias) = bias {
                b.add_bias(s, buf, bias);
            }
        }
        if let Some(qn) = &layer.q_norm {
            b.rms_norm_heads(s, Act::Q, qn, c.rms_eps);
        }
        if let Some(kn) = &layer.k_norm {
            b.rms_norm_heads(s, Act::K, kn, c.rms_eps);
        }
        let rope = Rope {
            dims: c.rope_dims,
            layout: c.rope_layout,
            base: layer.rope_base,
            freq_scale: c.rope_freq_scale,
            freqs: self.rope_freqs.as_deref(),
        };
        b.rope_store(s, seqs, il, c.attn_shape(), &rope);
        b.attention(s, exec, seqs, il, c.attn_shape(), layer.window);
        b.matmul(s, exec, &layer.wo, Act::Attn, Act::Proj, n)?;
        if let Some(pn) = &layer.post_attn_norm {
            b.rms_norm(s, Act::Proj, Act::Proj, pn, c.n_embd, c.rms_eps);
        }
        b.add(s, Act::X, Act::Proj);
        Ok(())
    }

    /// A layer's feed-forward: norm, the gate and up products, the gated activation, the down
    /// product (and its norm), added to the residual stream.
    fn feed_forward_block<B: Backend<Weight = W>>(
        &self,
        b: &B,
        s: &mut B::Scratch,
        exec: &B::Exec,
        layer: &Layer<W>,
        n: usize,
    ) -> Result<()> {
        let c = &self.config;
        b.rms_norm(s, Act::X, Act::Xn, &layer.ffn_norm, c.n_embd, c.rms_eps);
        b.matmul(s, exec, &layer.w_gate, Act::Xn, Act::Gate, n)?;
        b.matmul(s, exec, &layer.w_up, Act::Xn, Act::Up, n)?;
        b.glu(s, c.activation);
        b.matmul(s, exec, &layer.w_down, Act::Gate, Act::Proj, n)?;
        if let Some(pn) = &layer.post_ffn_norm {
            b.rms_norm(s, Act::Proj, Act::Proj, pn, c.n_embd, c.rms_eps);
        }
        b.add(s, Act::X, Act::Proj);
        Ok(())
    }
}
