//! The CPU backend: weights read from the file's mapping or repacked for this CPU, activations
//! in host buffers, every step one of [`crate::kernels::cpu`]'s kernels on a [`ThreadPool`].

use std::sync::Arc;

use memmap2::Mmap;

use super::{Act, Activation, Backend, Matrix, Rope, SeqBatch};
use crate::gguf::{GgmlType, GgufFile};
use crate::kernels::cpu::attention::{attention, attention_decode_batch};
use crate::kernels::cpu::matmul::{matmul, quantize_rows, sized, WeightView};
use crate::kernels::cpu::{ops, PackedMatrix, ThreadPool};
use crate::kernels::kv::AttnShape;
use crate::quant;
use crate::Result;

/// The CPU backend of one model: its file's mapping and the weights repacked for this CPU.
#[derive(Debug)]
pub struct Cpu {
    map: Arc<Mmap>,
    /// Whether [`Backend::prepare`] copies weights into a packed layout where this CPU has one.
    repack: bool,
    /// The packed copies, which a prepared weight indexes.
    packed: Vec<PackedMatrix>,
}

impl Cpu {
    /// The backend of the model in `file`; with `repack`, the weights that have a packed layout
    /// on this CPU (Q8_0 and Q5_0 with AVX2) are copied into it as they are prepared.
    pub fn new(file: &GgufFile, repack: bool) -> Cpu {
        Cpu {
            map: file.mapping(),
            repack,
            packed: Vec::new(),
        }
    }

    /// The weight `m` read in place from the mapping (never repacked).
    pub fn mapped(m: &Matrix) -> CpuWeight {
        CpuWeight {
            matrix: *m,
            packed: None,
        }
    }

    fn view(&self, w: &CpuWeight) -> WeightView<'_> {
        let m = &w.matrix;
        WeightView {
            ty: m.ty,
            rows: m.rows,
            cols: m.cols,
            data: m.data(&self.map),
            packed: w.packed.map(|i| &self.packed[i as usize]),
        }
    }
}

/// A weight matrix on the CPU: in the file's mapping, or in a packed copy (a clone indexes the
/// same copy, of the same backend).
#[derive(Debug, Clone)]
pub struct CpuWeight {
    matrix: Matrix,
    /// Index of the packed copy in the backend's.
    packed: Option<u32>,
}

/// The CPU's activation buffers and scratch, reused from one forward pass to the next.
#[derive(Debug, Default)]
pub struct Scratch {
    /// The buffers named by [`Act`], indexed by it.
    acts: [Vec<f32>; Act::Up as usize + 1],
    /// Quantized activations, and which buffer in which format they hold.
    xq: Vec<u8>,
    xq_of: Option<(Act, GgmlType)>,
    tmp: Vec<f32>,
    ysums: Vec<i32>,
    rows: Vec<usize>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// Logits of each sequence that asked for them, `n_vocab` each, in batch order.
    pub logits: Vec<f32>,
}

impl Scratch {
    /// Buffer `a` as the last step left it.
    pub fn act(&self, a: Act) -> &[f32] {
        &self.acts[a as usize]
    }

    /// Buffer `a`, to be written: a quantized copy of it is no longer current.
    fn write(&mut self, a: Act) -> &mut Vec<f32> {
        if self.xq_of.is_some_and(|(b, _)| b == a) {
            self.xq_of = None;
        }
        &mut self.acts[a as usize]
    }

    /// Buffer `to`, to be written, and buffer `from` (another one).
    fn write_from(&mut self, to: Act, from: Act) -> (&mut Vec<f32>, &[f32]) {
        self.write(to);
        let (t, f) = (to as usize, from as usize);
        debug_assert_ne!(t, f);
        if t < f {
            let (lo, hi) = self.acts.split_at_mut(f);
            (&mut lo[t], &hi[0])
        } else {
            let (lo, hi) = self.acts.split_at_mut(t);
            (&mut hi[0], &lo[f])
        }
    }

    /// Quantizes the `n` rows of `from` into `act` unless `xq` holds them so already.
    fn quantize(&mut self, from: Act, act: GgmlType, n: usize, pool: &ThreadPool) -> Result<()> {
        if self.xq_of != Some((from, act)) {
            quantize_rows(act, &self.acts[from as usize], n, &mut self.xq, pool)?;
            self.xq_of = Some((from, act));
        }
        Ok(())
    }
}

impl Backend for Cpu {
    type Weight = CpuWeight;
    type Scratch = Scratch;
    type Exec = ThreadPool;

    fn prepare(&mut self, file: &GgufFile, m: &Matrix) -> Result<CpuWeight> {
        let mut w = CpuWeight {
            matrix: *m,
            packed: None,
        };
        if self.repack {
            // The mapped pages are released as they are copied, so that the resident size
            // does not double.
            let base = m.range().0;
            if let Some(p) = PackedMatrix::new(m.ty, m.data(&self.map), m.rows, m.cols, |r| {
                file.release_range(base + r.start, r.len())
            }) {
                w.packed = Some(self.packed.len() as u32);
                self.packed.push(p);
            }
        }
        Ok(w)
    }

    fn mapped_range(&self, w: &CpuWeight) -> Option<(usize, usize)> {
        w.packed.is_none().then(|| w.matrix.range())
    }

    fn prepared_bytes(&self) -> usize {
        self.packed.iter().map(|p| p.bytes()).sum()
    }

    fn embed(
        &self,
        s: &mut Scratch,
        seqs: &[SeqBatch<'_>],
        table: &Matrix,
        scale: Option<f32>,
    ) -> Result<()> {
        let n: usize = seqs.iter().map(|b| b.tokens.len()).sum();
        let x = sized(s.write(Act::X), n * table.cols);
        super::embed_rows(&self.map, table, seqs, scale, x)
    }

    fn rms_norm(
        &self,
        s: &mut Scratch,
        from: Act,
        to: Act,
        weight: &[f32],
        width: usize,
        eps: f32,
    ) {
        let out = if from == to {
            s.write(to)
        } else {
            let (out, src) = s.write_from(to, from);
            out.clear();
            out.extend_from_slice(src);
            out
        };
        for row in out.chunks_exact_mut(width) {
            ops::rms_norm(row, weight, eps);
        }
    }

    fn rms_norm_heads(&self, s: &mut Scratch, buf: Act, weight: &[f32], eps: f32) {
        ops::rms_norm_heads(s.write(buf), weight, eps);
    }

    fn add_bias(&self, s: &mut Scratch, buf: Act, bias: &[f32]) {
        s.write(buf)
            .chunks_exact_mut(bias.len())
            .for_each(|r| ops::add_in_place(r, bias));
    }

    fn add(&self, s: &mut Scratch, to: Act, from: Act) {
        let (to, from) = s.write_from(to, from);
        ops::add_in_place(to, from);
    }

    fn matmul(
        &self,
        s: &mut Scratch,
        pool: &ThreadPool,
        w: &CpuWeight,
        from: Act,
        to: Act,
        n: usize,
    ) -> Result<()> {
        s.quantize(from, quant::vec_dot_type(w.matrix.ty), n, pool)?;
        let out = sized(&mut s.acts[to as usize], n * w.matrix.rows);
        matmul(self.view(w), &s.xq, n, out, &mut s.tmp, &mut s.ysums, pool);
        s.write(to);
        Ok(())
    }

    fn rope_store(
        &self,
        s: &mut Scratch,
        seqs: &mut [SeqBatch<'_>],
        il: usize,
        shape: AttnShape,
        rope: &Rope<'_>,
    ) {
        let hk = shape.head_dim_k;
        let q_w = shape.n_head * hk;
        let k_w = shape.n_head_kv * hk;
        let v_w = shape.n_head_kv * shape.head_dim_v;
        let half = rope.dims / 2;
        s.cos.resize(half, 0.0);
        s.sin.resize(half, 0.0);
        s.write(Act::Q);
        s.write(Act::K);
        let [_, _, q, k, v, ..] = &mut s.acts;
        let mut row = 0;
        for b in seqs.iter_mut() {
            let start = b.cache.len();
            for t in 0..b.tokens.len() {
                ops::rope_angles(
                    start + t,
                    rope.dims,
                    rope.base,
                    rope.freq_scale,
                    rope.freqs,
                    &mut s.cos,
                    &mut s.sin,
                );
                let qr = &mut q[(row + t) * q_w..(row + t + 1) * q_w];
                ops::rope(qr, hk, rope.layout, &s.cos, &s.sin);
                let kr = &mut k[(row + t) * k_w..(row + t + 1) * k_w];
                ops::rope(kr, hk, rope.layout, &s.cos, &s.sin);
                let vr = &v[(row + t) * v_w..(row + t + 1) * v_w];
                b.cache.write(il, start + t, kr, vr);
            }
            row += b.tokens.len();
        }
    }

    fn attention(
        &self,
        s: &mut Scratch,
        pool: &ThreadPool,
        seqs: &[SeqBatch<'_>],
        il: usize,
        shape: AttnShape,
        window: Option<usize>,
    ) {
        let n: usize = seqs.iter().map(|b| b.tokens.len()).sum();
        let q_w = shape.n_head * shape.head_dim_k;
        let a_w = shape.n_head * shape.head_dim_v;
        s.write(Act::Q);
        s.write(Act::Attn);
        let [_, _, q, _, _, attn, ..] = &mut s.acts;
        let attn = sized(attn, n * a_w);
        if seqs.len() > 1 && seqs.iter().all(|b| b.tokens.len() == 1) {
            // A decode step of several sequences: one parallel region for all of them.
            let caches: Vec<_> = seqs
                .iter()
                .map(|b| (b.cache.k(il), b.cache.v(il), b.cache.len() + 1))
                .collect();
            attention_decode_batch(&shape, window, &mut q[..n * q_w], &caches, attn, pool);
        } else {
            let mut row = 0;
            for b in seqs.iter() {
                let len = b.tokens.len();
                attention(
                    &shape,
                    window,
                    &mut q[row * q_w..(row + len) * q_w],
                    b.cache.k(il),
                    b.cache.v(il),
                    b.cache.len() + len,
                    &mut attn[row * a_w..(row + len) * a_w],
                    pool,
                );
                row += len;
            }
        }
    }

    fn glu(&self, s: &mut Scratch, activation: Activation) {
        let (gate, up) = s.write_from(Act::Gate, Act::Up);
        match activation {
            Activation::Gelu => ops::geglu(gate, up),
            Activation::Silu => ops::swiglu(gate, up),
        }
    }

    fn clear_logits(&self, s: &mut Scratch) {
        s.logits.clear();
    }

    fn logits(
        &self,
        s: &mut Scratch,
        pool: &ThreadPool,
        seqs: &[SeqBatch<'_>],
        output: &CpuWeight,
        norm: &[f32],
        width: usize,
        eps: f32,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
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
        let (xn, x) = s.write_from(Act::Xn, Act::X);
        xn.clear();
        for &r in &rows {
            xn.extend_from_slice(&x[r * width..(r + 1) * width]);
        }
        s.rows = rows;
        if m == 0 {
            return Ok(());
        }
        if cancelled() {
            return Err(crate::Error::Cancelled);
        }
        let xn = s.write(Act::Xn);
        for row in xn.chunks_exact_mut(width) {
            ops::rms_norm(row, norm, eps);
        }
        let act = quant::vec_dot_type(output.matrix.ty);
        quantize_rows(act, &s.acts[Act::Xn as usize], m, &mut s.xq, pool)?;
        s.xq_of = None;
        s.logits.resize(m * output.matrix.rows, 0.0);
        matmul(
            self.view(output),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quantized_buffer_is_reused_until_it_is_written() {
        let pool = ThreadPool::new(1).unwrap();
        let mut s = Scratch::default();
        s.write(Act::Xn).extend((0..64).map(|i| i as f32 * 0.25));
        s.quantize(Act::Xn, GgmlType::Q8_0, 2, &pool).unwrap();
        assert_eq!(s.xq_of, Some((Act::Xn, GgmlType::Q8_0)));
        // Writing another buffer keeps the copy; another format replaces it; writing the
        // buffer itself drops it.
        s.write(Act::Q);
        assert_eq!(s.xq_of, Some((Act::Xn, GgmlType::Q8_0)));
        s.quantize(Act::Xn, GgmlType::Q8_1, 2, &pool).unwrap();
        assert_eq!(s.xq_of, Some((Act::Xn, GgmlType::Q8_1)));
        s.write(Act::Xn);
        assert_eq!(s.xq_of, None);
    }
}
