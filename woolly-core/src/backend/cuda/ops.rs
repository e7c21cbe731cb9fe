//! The CUDA backend's steps of a forward pass: each one kernel of `kernels/` on the device's
//! stream. Weights are uploaded as the file stores them (dequantized in registers by the
//! products); activations stay in device buffers from layer to layer; only the residual stream
//! comes in (from the CPU's layers, or the embedding rows) and the logits go out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::driver::{DeviceRepr, ValidAsZeroBits};
use memmap2::Mmap;

use super::{type_suffix, DevBuf, Gpu, GpuUser, Graph, KernelCall, Mark, Param};
use crate::backend::kv_cache::DeviceKv;
use crate::backend::{Act, Activation, Backend, Matrix, Rope, SeqBatch};
use crate::gguf::{GgmlType, GgufFile};
use crate::kernels::cpu::ops::RopeLayout;
use crate::kernels::kv::AttnShape;
use crate::{Error, Result};

/// Products of up to this many tokens use the matrix-vector kernels.
const MMV_MAX_TOKENS: usize = 8;

/// Passes of up to this many tokens (decoding, alone or batched) run as CUDA graphs: captured
/// the first time, replayed while their launches stay the same.
const GRAPH_MAX_TOKENS: usize = MMV_MAX_TOKENS;

/// Graphs a scratch set keeps (the most recently used), for batches of changing size.
const GRAPHS_KEPT: usize = 4;

/// The widest head the attention kernels take (`MAX_HEAD` in kernels/attention.cuh).
pub const MAX_HEAD_DIM: usize = 256;

/// Keys per split of split-K attention, at least.
const SPLIT_KEYS: usize = 128;

/// Splits of split-K attention, at most.
const MAX_SPLITS: usize = 64;

/// How decode attention over `keys` keys for `blocks` (token, head) pairs splits its keys:
/// `(splits, chunk)`, or `None` to run one block per pair (enough blocks already, or few keys).
fn split_k(blocks: usize, keys: usize) -> Option<(usize, usize)> {
    if blocks >= 128 || keys <= 2 * SPLIT_KEYS {
        return None;
    }
    // Chunks in whole multiples of SPLIT_KEYS, so that the launch stays the same (and a
    // decode graph replays) for SPLIT_KEYS steps at a time, not one.
    let chunk = keys.div_ceil(MAX_SPLITS).div_ceil(SPLIT_KEYS).max(1) * SPLIT_KEYS;
    Some((keys.div_ceil(chunk), chunk))
}

/// One token's place in its sequence's device cache (`TokMeta` in kernels/common.cuh).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TokMeta {
    pos: i32,
    ctx: i32,
    pad: [i32; 2],
    k: u64,
    v: u64,
}

// SAFETY: plain old data of the kernels' layout (32 bytes, no padding of its own).
unsafe impl DeviceRepr for TokMeta {}
// SAFETY: all integers: zero bits are a valid value.
unsafe impl ValidAsZeroBits for TokMeta {}

/// A weight matrix in device memory, as the file stores it.
#[derive(Debug)]
pub struct CudaWeight {
    data: DevBuf<u8>,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    suffix: &'static str,
}

impl CudaWeight {
    /// The type of its rows.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }

    /// Bytes on the device.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// The device's activation buffers of forward passes, reused from one to the next.
#[derive(Default)]
pub struct CudaScratch {
    acts: [Option<DevBuf<f32>>; Act::Up as usize + 1],
    /// Values each buffer holds in this pass.
    lens: [usize; Act::Up as usize + 1],
    meta: Option<DevBuf<TokMeta>>,
    /// This scratch set's registration with the device (from its first pass).
    user: Option<GpuUser>,
    /// Whether this pass's launches are collected (in `calls`) to run as a graph at its end.
    deferring: bool,
    calls: Vec<KernelCall>,
    /// Buffers replaced while launches that address them wait in `calls`.
    retired: Vec<DevBuf<f32>>,
    /// The graphs of recent passes, the most recent first.
    graphs: Vec<Graph>,
    /// The start of this pass on the device, for its busy time.
    mark: Option<Mark>,
    /// Keys the longest sequence of the pass attends over.
    max_keys: usize,
    /// Split-K attention's partial results.
    part: Option<DevBuf<f32>>,
    /// Tiled attention's tiles: the token counts of the sequences they were built for, how
    /// many tiles, and the table (each tile's first token and count).
    tiles: Option<(Vec<usize>, usize, DevBuf<i32>)>,
    rows: Option<DevBuf<i32>>,
    logits_dev: Option<DevBuf<f32>>,
    host: Vec<f32>,
    /// Tokens in the pass.
    n: usize,
    /// The first failure of a step that cannot return one, reported by the next that can.
    err: Option<Error>,
    /// Logits of each sequence that asked for them, in batch order.
    pub logits: Vec<f32>,
}

impl std::fmt::Debug for CudaScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaScratch").field("n", &self.n).finish()
    }
}

/// The CUDA backend of one run of a model's layers on one device (one stage of the layer
/// split: stage 0 runs the first of the GPU layers).
pub struct Cuda {
    gpu: Arc<Gpu>,
    map: Arc<Mmap>,
    prepared: usize,
    /// Which stage, and how many layers it runs (its share of each sequence's device cache).
    stage: usize,
    layers: usize,
    /// Norm weights and biases, uploaded at first use, by their host address and length
    /// (they live as long as the model).
    consts: Mutex<HashMap<(usize, usize), DevBuf<f32>>>,
}

impl std::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cuda")
            .field("device", &self.gpu.device.index)
            .field("prepared", &self.prepared)
            .finish()
    }
}

fn i(v: usize) -> i32 {
    v as i32
}

impl Cuda {
    /// The backend of stage `stage` of the model in `file`, `layers` layers on `gpu`.
    pub fn new(file: &GgufFile, gpu: Arc<Gpu>, stage: usize, layers: usize) -> Cuda {
        Cuda {
            gpu,
            map: file.mapping(),
            prepared: 0,
            stage,
            layers,
            consts: Mutex::new(HashMap::new()),
        }
    }

    /// The device.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    fn ptr<T>(&self, b: &DevBuf<T>) -> u64 {
        self.gpu.ptr(b)
    }

    /// The device copy of `v` (a norm weight or bias of the model).
    fn constant(&self, v: &[f32]) -> Result<u64> {
        let key = (v.as_ptr() as usize, v.len());
        let mut consts = self.consts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = consts.get(&key) {
            return Ok(self.ptr(b));
        }
        let b = self.gpu.upload(v, "norm weights")?;
        let p = self.ptr(&b);
        consts.insert(key, b);
        Ok(p)
    }

    /// Buffer `a` with room for `len` values (its contents are lost when it grows).
    fn ensure(&self, s: &mut CudaScratch, a: Act, len: usize) -> Result<u64> {
        let slot = &mut s.acts[a as usize];
        if slot.as_ref().is_none_or(|b| b.len() < len) {
            if let Some(old) = slot.take() {
                if s.deferring {
                    s.retired.push(old);
                }
            }
            *slot = Some(self.gpu.zeros::<f32>(len.max(1), "activations")?);
        }
        s.lens[a as usize] = len;
        Ok(self.ptr(slot.as_ref().expect("allocated above")))
    }

    fn buf(&self, s: &CudaScratch, a: Act) -> Result<u64> {
        s.acts[a as usize]
            .as_ref()
            .map(|b| self.ptr(b))
            .ok_or_else(|| Error::Internal(format!("CUDA buffer {a:?} read before it was written")))
    }

    /// Runs `f`, keeping its first error for the next step that can report one.
    fn step(&self, s: &mut CudaScratch, f: impl FnOnce(&mut CudaScratch) -> Result<()>) {
        if s.err.is_none() {
            if let Err(e) = f(s) {
                s.err = Some(e);
            }
        }
    }

    /// Launches kernel `name` for this pass: now, or at the pass's end as part of its graph
    /// (see [`Cuda::flush`]).
    fn launch(
        &self,
        s: &mut CudaScratch,
        name: &str,
        grid: (usize, usize, usize),
        block: (u32, u32, u32),
        args: &[Param],
    ) -> Result<()> {
        let g = (grid.0 as u32, grid.1 as u32, grid.2 as u32);
        if s.deferring {
            s.calls.push(KernelCall {
                name: name.to_string(),
                grid: g,
                block,
                params: args.to_vec(),
            });
            return Ok(());
        }
        // SAFETY: every call passes the kernel's parameters in order with their types
        // (kernels/README.md), and device pointers to buffers of the sizes it reads and writes.
        unsafe { self.gpu.launch(name, g, block, args) }
    }

    /// Runs the launches this pass collected: by replaying the graph of an earlier pass with
    /// the same launches, or by capturing a new one (kept for the next passes).
    fn flush(&self, s: &mut CudaScratch) -> Result<()> {
        if !s.deferring {
            return Ok(());
        }
        s.deferring = false;
        let calls = std::mem::take(&mut s.calls);
        if let Some(k) = s.graphs.iter().position(|g| g.calls() == calls.as_slice()) {
            let g = s.graphs.remove(k);
            let r = self.gpu.replay(&g);
            s.graphs.insert(0, g);
            return r;
        }
        // SAFETY: the launches were built as for `Cuda::launch`; every buffer they address
        // lives in this scratch set, the model or a sequence's cache, and a replay happens only
        // for a later pass whose launches, buffers included, are the same.
        if let Some(g) = unsafe { self.gpu.capture(calls)? } {
            s.graphs.insert(0, g);
            s.graphs.truncate(GRAPHS_KEPT);
        }
        Ok(())
    }

    /// Counts this pass's device time (after its results are back).
    fn done(&self, s: &mut CudaScratch) -> Result<()> {
        match s.mark.take() {
            Some(m) => self.gpu.elapsed_since(&m),
            None => Ok(()),
        }
    }

    fn product(&self, s: &mut CudaScratch, w: &CudaWeight, x: u64, y: u64, n: usize) -> Result<()> {
        let (rows, cols, rb, ni) = (i(w.rows), i(w.cols), i(w.row_bytes), i(n));
        let wp = self.ptr(&w.data);
        let args: [Param; 7] = [
            Param::from(wp),
            Param::from(x),
            Param::from(y),
            Param::from(rows),
            Param::from(cols),
            Param::from(rb),
            Param::from(ni),
        ];
        if n <= MMV_MAX_TOKENS {
            let grid = (w.rows.div_ceil(4), n.div_ceil(8), 1);
            self.launch(s, &format!("mmv_{}", w.suffix), grid, (32, 4, 1), &args)
        } else {
            let grid = (w.rows.div_ceil(64), n.div_ceil(64), 1);
            self.launch(s, &format!("mm_{}", w.suffix), grid, (256, 1, 1), &args)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn norm_rows(
        &self,
        s: &mut CudaScratch,
        x: u64,
        y: u64,
        w: u64,
        width: usize,
        rows: usize,
        eps: f32,
    ) -> Result<()> {
        let wi = i(width);
        self.launch(
            s,
            "rms_norm",
            (rows, 1, 1),
            (256, 1, 1),
            &[
                Param::from(x),
                Param::from(y),
                Param::from(w),
                Param::from(wi),
                Param::from(eps),
            ],
        )
    }
}

fn elems(total: usize) -> (usize, usize, usize) {
    (total.div_ceil(256).max(1), 1, 1)
}

impl Backend for Cuda {
    type Weight = CudaWeight;
    type Scratch = CudaScratch;
    type Exec = ();

    fn prepare(&mut self, _file: &GgufFile, m: &Matrix) -> Result<CudaWeight> {
        let suffix = type_suffix(m.ty)
            .ok_or_else(|| Error::Unsupported(format!("{} weights on the GPU", m.ty.name())))?;
        let data = self.gpu.upload(m.data(&self.map), "weights")?;
        self.prepared += data.len();
        Ok(CudaWeight {
            data,
            ty: m.ty,
            rows: m.rows,
            cols: m.cols,
            row_bytes: m.row_bytes(),
            suffix,
        })
    }

    fn mapped_range(&self, _w: &CudaWeight) -> Option<(usize, usize)> {
        None
    }

    fn prepared_bytes(&self) -> usize {
        self.prepared
    }

    fn reserve(&self, s: &mut CudaScratch, seqs: &mut [SeqBatch<'_>]) -> Result<()> {
        let mut meta = Vec::new();
        for b in seqs.iter_mut() {
            let cache = &mut *b.cache;
            let cap = cache.capacity();
            self.ensure_kv(cache)?;
            let kv = cache.device[self.stage].as_ref().expect("allocated above");
            let (k, v) = (self.ptr(&kv.k), self.ptr(&kv.v));
            for t in 0..b.tokens.len() {
                meta.push(TokMeta {
                    pos: i(cache.len() + t),
                    ctx: i(cap),
                    pad: [0; 2],
                    k,
                    v,
                });
            }
        }
        s.n = meta.len();
        s.max_keys = meta.iter().map(|m| m.pos as usize + 1).max().unwrap_or(0);
        s.err = None;
        // Launches of a pass that failed before its end never run.
        s.calls.clear();
        s.retired.clear();
        s.deferring = false;
        // The positions in a buffer that keeps its address from pass to pass (graphs read it).
        if s.meta.as_ref().is_none_or(|m| m.len() < meta.len()) {
            s.meta = Some(
                self.gpu
                    .zeros::<TokMeta>(meta.len().max(GRAPH_MAX_TOKENS), "token positions")?,
            );
        }
        let dst = s.meta.as_mut().expect("allocated above");
        self.gpu.write(dst, &meta)?;
        if s.user.is_none() {
            s.user = Some(self.gpu.register());
        }
        s.deferring = s.n <= GRAPH_MAX_TOKENS;
        s.mark = Some(self.gpu.mark()?);
        Ok(())
    }

    fn embed(
        &self,
        s: &mut CudaScratch,
        seqs: &[SeqBatch<'_>],
        table: &Matrix,
        scale: Option<f32>,
    ) -> Result<()> {
        let mut host = std::mem::take(&mut s.host);
        host.clear();
        host.resize(s.n * table.cols, 0.0);
        let r = crate::backend::embed_rows(&self.map, table, seqs, scale, &mut host)
            .and_then(|()| self.upload_x(s, &host));
        s.host = host;
        r
    }

    fn rms_norm(
        &self,
        s: &mut CudaScratch,
        from: Act,
        to: Act,
        weight: &[f32],
        width: usize,
        eps: f32,
    ) {
        self.step(s, |s| {
            let rows = s.lens[from as usize] / width;
            let w = self.constant(weight)?;
            let x = self.buf(s, from)?;
            let y = if from == to {
                x
            } else {
                self.ensure(s, to, rows * width)?
            };
            self.norm_rows(s, x, y, w, width, rows, eps)
        })
    }

    fn rms_norm_heads(&self, s: &mut CudaScratch, buf: Act, weight: &[f32], eps: f32) {
        self.step(s, |s| {
            let rows = s.lens[buf as usize] / weight.len();
            let w = self.constant(weight)?;
            let x = self.buf(s, buf)?;
            self.norm_rows(s, x, x, w, weight.len(), rows, eps)
        })
    }

    fn add_bias(&self, s: &mut CudaScratch, buf: Act, bias: &[f32]) {
        self.step(s, |s| {
            let total = s.lens[buf as usize];
            let (b, x) = (self.constant(bias)?, self.buf(s, buf)?);
            let (wi, ti) = (i(bias.len()), i(total));
            self.launch(
                s,
                "add_bias",
                elems(total),
                (256, 1, 1),
                &[
                    Param::from(x),
                    Param::from(b),
                    Param::from(wi),
                    Param::from(ti),
                ],
            )
        })
    }

    fn add(&self, s: &mut CudaScratch, to: Act, from: Act) {
        self.step(s, |s| {
            let total = s.lens[to as usize];
            let (t, f, ti) = (self.buf(s, to)?, self.buf(s, from)?, i(total));
            self.launch(
                s,
                "add",
                elems(total),
                (256, 1, 1),
                &[Param::from(t), Param::from(f), Param::from(ti)],
            )
        })
    }

    fn matmul(
        &self,
        s: &mut CudaScratch,
        _exec: &(),
        w: &CudaWeight,
        from: Act,
        to: Act,
        n: usize,
    ) -> Result<()> {
        if let Some(e) = s.err.take() {
            return Err(e);
        }
        let x = self.buf(s, from)?;
        let y = self.ensure(s, to, n * w.rows)?;
        self.product(s, w, x, y, n)
    }

    fn rope_store(
        &self,
        s: &mut CudaScratch,
        _seqs: &mut [SeqBatch<'_>],
        il: usize,
        shape: AttnShape,
        rope: &Rope<'_>,
    ) {
        self.step(s, |s| {
            let meta = s.meta.as_ref().map(|m| self.ptr(m)).unwrap_or(0);
            let (q, k, v) = (
                self.buf(s, Act::Q)?,
                self.buf(s, Act::K)?,
                self.buf(s, Act::V)?,
            );
            let freqs = match rope.freqs {
                Some(f) => self.constant(f)?,
                None => 0u64,
            };
            let neox = i32::from(rope.layout == RopeLayout::Neox);
            let args: [Param; 15] = [
                Param::from(q),
                Param::from(k),
                Param::from(v),
                Param::from(meta),
                Param::from(i(s.n)),
                Param::from(i(il)),
                Param::from(i(shape.n_head)),
                Param::from(i(shape.n_head_kv)),
                Param::from(i(shape.head_dim_k)),
                Param::from(i(shape.head_dim_v)),
                Param::from(i(rope.dims)),
                Param::from(neox),
                Param::from(rope.base),
                Param::from(rope.freq_scale),
                Param::from(freqs),
            ];
            let n = s.n;
            self.launch(s, "rope_store", (n, 1, 1), (256, 1, 1), &args)
        })
    }

    fn attention(
        &self,
        s: &mut CudaScratch,
        _exec: &(),
        seqs: &[SeqBatch<'_>],
        il: usize,
        shape: AttnShape,
        window: Option<usize>,
    ) {
        /// Queries of a tile of `attention_tiled` (`TILE_Q` in kernels/attention.cuh).
        const TILE_Q: usize = 16;
        /// Passes with a sequence of this many tokens (a prompt) run tiled attention.
        const TILED_MIN_TOKENS: usize = TILE_Q;
        self.step(s, |s| {
            let n = s.n;
            let meta = s.meta.as_ref().map(|m| self.ptr(m)).unwrap_or(0);
            let q = self.buf(s, Act::Q)?;
            let out = self.ensure(s, Act::Attn, n * shape.n_head * shape.head_dim_v)?;
            let win = i(window.unwrap_or(0));
            if seqs.iter().any(|b| b.tokens.len() >= TILED_MIN_TOKENS) {
                // Tiles of up to TILE_Q consecutive tokens of one sequence; the table depends
                // on the sequences' token counts only, so the first layer of a pass builds it.
                let lens = seqs.iter().map(|b| b.tokens.len());
                let built = s.tiles.as_ref();
                if !built.is_some_and(|t| t.0.iter().copied().eq(lens.clone())) {
                    let (mut table, mut first) = (Vec::new(), 0);
                    for len in lens.clone() {
                        for start in (0..len).step_by(TILE_Q) {
                            table.extend([i(first + start), i((len - start).min(TILE_Q))]);
                        }
                        first += len;
                    }
                    s.tiles = None;
                    let buf = self.gpu.upload(&table, "attention tiles")?;
                    s.tiles = Some((lens.collect(), table.len() / 2, buf));
                }
                let (count, tiles) = s
                    .tiles
                    .as_ref()
                    .map(|t| (t.1, self.ptr(&t.2)))
                    .expect("built above");
                let args: [Param; 12] = [
                    Param::from(q),
                    Param::from(out),
                    Param::from(meta),
                    Param::from(tiles),
                    Param::from(i(count)),
                    Param::from(i(il)),
                    Param::from(i(shape.n_head)),
                    Param::from(i(shape.n_head_kv)),
                    Param::from(i(shape.head_dim_k)),
                    Param::from(i(shape.head_dim_v)),
                    Param::from(shape.kq_scale),
                    Param::from(win),
                ];
                let grid = (shape.n_head, count, 1);
                return self.launch(s, "attention_tiled", grid, (128, 1, 1), &args);
            }
            // Keys the window lets the longest sequence see.
            let keys = window.map_or(s.max_keys, |w| w.min(s.max_keys));
            if let Some((splits, chunk)) = split_k(n * shape.n_head, keys) {
                // The splits cover positions 0..max_keys; those before a window's start are empty.
                let (splits, chunk) = if window.is_some() {
                    let chunk = chunk.max(s.max_keys.div_ceil(MAX_SPLITS));
                    (s.max_keys.div_ceil(chunk), chunk)
                } else {
                    (splits, chunk)
                };
                let len = n * shape.n_head * splits * (shape.head_dim_v + 2);
                if s.part.as_ref().is_none_or(|b| b.len() < len) {
                    if let Some(old) = s.part.take() {
                        if s.deferring {
                            s.retired.push(old);
                        }
                    }
                    s.part = Some(self.gpu.zeros::<f32>(len, "attention partials")?);
                }
                let part = s.part.as_ref().map(|b| self.ptr(b)).unwrap_or(0);
                let args: [Param; 12] = [
                    Param::from(q),
                    Param::from(part),
                    Param::from(meta),
                    Param::from(i(n)),
                    Param::from(i(il)),
                    Param::from(i(shape.n_head)),
                    Param::from(i(shape.n_head_kv)),
                    Param::from(i(shape.head_dim_k)),
                    Param::from(i(shape.head_dim_v)),
                    Param::from(shape.kq_scale),
                    Param::from(win),
                    Param::from(i(chunk)),
                ];
                self.launch(
                    s,
                    "attention_partial",
                    (shape.n_head, n, splits),
                    (128, 1, 1),
                    &args,
                )?;
                let args: [Param; 6] = [
                    Param::from(part),
                    Param::from(out),
                    Param::from(i(n)),
                    Param::from(i(shape.n_head)),
                    Param::from(i(shape.head_dim_v)),
                    Param::from(i(splits)),
                ];
                return self.launch(
                    s,
                    "attention_combine",
                    (shape.n_head, n, 1),
                    (128, 1, 1),
                    &args,
                );
            }
            let args: [Param; 11] = [
                Param::from(q),
                Param::from(out),
                Param::from(meta),
                Param::from(i(n)),
                Param::from(i(il)),
                Param::from(i(shape.n_head)),
                Param::from(i(shape.n_head_kv)),
                Param::from(i(shape.head_dim_k)),
                Param::from(i(shape.head_dim_v)),
                Param::from(shape.kq_scale),
                Param::from(win),
            ];
            self.launch(s, "attention", (shape.n_head, n, 1), (128, 1, 1), &args)
        })
    }

    fn glu(&self, s: &mut CudaScratch, activation: Activation) {
        self.step(s, |s| {
            let total = s.lens[Act::Gate as usize];
            let (g, u, ti) = (self.buf(s, Act::Gate)?, self.buf(s, Act::Up)?, i(total));
            let name = match activation {
                Activation::Gelu => "geglu",
                Activation::Silu => "swiglu",
            };
            self.launch(
                s,
                name,
                elems(total),
                (256, 1, 1),
                &[Param::from(g), Param::from(u), Param::from(ti)],
            )
        })
    }

    fn clear_logits(&self, s: &mut CudaScratch) {
        s.logits.clear();
    }

    fn logits(
        &self,
        s: &mut CudaScratch,
        _exec: &(),
        seqs: &[SeqBatch<'_>],
        output: &CudaWeight,
        norm: &[f32],
        width: usize,
        eps: f32,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        if let Some(e) = s.err.take() {
            return Err(e);
        }
        let mut rows = Vec::new();
        let mut end = 0;
        for b in seqs {
            end += b.tokens.len();
            if b.want_logits && !b.tokens.is_empty() {
                rows.push(i(end - 1));
            }
        }
        let m = rows.len();
        // The pass's positions are committed: its launches run even when it stops here.
        if m == 0 {
            self.flush(s)?;
            return self.done(s);
        }
        if cancelled() {
            self.flush(s)?;
            self.done(s)?;
            return Err(Error::Cancelled);
        }
        if s.rows.as_ref().is_none_or(|r| r.len() < m) {
            s.rows = Some(
                self.gpu
                    .zeros::<i32>(m.max(GRAPH_MAX_TOKENS), "token rows")?,
            );
        }
        self.gpu
            .write(s.rows.as_mut().expect("allocated above"), &rows)?;
        let idx = s.rows.as_ref().map(|r| self.ptr(r)).unwrap_or(0);
        let x = self.buf(s, Act::X)?;
        let xn = self.ensure(s, Act::Xn, m * width)?;
        let (wi, mi) = (i(width), i(m));
        self.launch(
            s,
            "gather_rows",
            (m, 1, 1),
            (256, 1, 1),
            &[
                Param::from(x),
                Param::from(xn),
                Param::from(idx),
                Param::from(wi),
                Param::from(mi),
            ],
        )?;
        let nw = self.constant(norm)?;
        self.norm_rows(s, xn, xn, nw, width, m, eps)?;
        let len = m * output.rows;
        if s.logits_dev.as_ref().is_none_or(|b| b.len() < len) {
            if let Some(old) = s.logits_dev.take() {
                if s.deferring {
                    s.retired.push(old);
                }
            }
            s.logits_dev = Some(self.gpu.zeros::<f32>(len, "logits")?);
        }
        let y = s.logits_dev.as_ref().map(|b| self.ptr(b)).unwrap_or(0);
        self.product(s, output, xn, y, m)?;
        self.flush(s)?;
        let dev = s.logits_dev.as_ref().expect("allocated above");
        s.logits.resize(len, 0.0);
        self.gpu.read(dev, &mut s.logits[..len])?;
        self.done(s)
    }
}

impl Cuda {
    /// Allocates this stage's part of `cache` on the device unless it has it (for the whole
    /// context: a sequence's device storage never grows after its first pass).
    ///
    /// # Errors
    /// [`Error::OutOfDeviceMemory`] when it does not fit (nothing stays allocated then).
    pub fn ensure_kv(&self, cache: &mut crate::backend::KvCache) -> Result<()> {
        if cache.device.len() <= self.stage {
            cache.device.resize_with(self.stage + 1, || None);
        }
        if cache.device[self.stage].is_none() {
            let (kw, vw, cap) = (cache.k_width(), cache.v_width(), cache.capacity());
            let what = format!(
                "the KV cache of a {cap}-token sequence ({} layers)",
                self.layers
            );
            let alloc = || -> Result<DeviceKv> {
                Ok(DeviceKv {
                    k: self.gpu.zeros::<u16>(self.layers * cap * kw, &what)?,
                    v: self.gpu.zeros::<u16>(self.layers * cap * vw, &what)?,
                })
            };
            match alloc() {
                Ok(kv) => cache.device[self.stage] = Some(kv),
                // Said of the whole cache (keys and values), with what is free without it.
                Err(Error::OutOfDeviceMemory { device, what, .. }) => {
                    return Err(Error::OutOfDeviceMemory {
                        device,
                        what,
                        required: (self.layers * cap * (kw + vw) * 2) as u64,
                        free: self.gpu.free_bytes().unwrap_or(0),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A stand-in for the output projection of a stage that does not compute the logits (a
    /// later stage does): nothing on the device.
    pub fn unused_output(&self, m: &Matrix) -> Result<CudaWeight> {
        Ok(CudaWeight {
            data: self.gpu.zeros::<u8>(1, "weights")?,
            ty: m.ty,
            rows: 0,
            cols: m.cols,
            row_bytes: m.row_bytes(),
            suffix: type_suffix(m.ty).unwrap_or("f32"),
        })
    }

    /// `out` = [`Act::X`], the residual stream after this stage's layers (for the next stage,
    /// on another device).
    pub fn download_x(&self, s: &mut CudaScratch, out: &mut Vec<f32>) -> Result<()> {
        if let Some(e) = s.err.take() {
            return Err(e);
        }
        self.flush(s)?;
        let len = s.lens[Act::X as usize];
        let buf = s.acts[Act::X as usize]
            .as_ref()
            .ok_or_else(|| Error::Internal("CUDA buffer X read before it was written".into()))?;
        out.resize(len, 0.0);
        self.gpu.read(buf, out)?;
        self.done(s)
    }

    /// [`Act::X`] = `x` (the residual stream the CPU's layers computed, or the embeddings).
    pub fn upload_x(&self, s: &mut CudaScratch, x: &[f32]) -> Result<()> {
        self.ensure(s, Act::X, x.len())?;
        let dst = s.acts[Act::X as usize].as_mut().expect("allocated above");
        self.gpu.write(dst, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_k_covers_every_key_in_at_most_64_splits() {
        // Short contexts and wide batches run one block per (token, head).
        assert_eq!(split_k(4, 100), None);
        assert_eq!(split_k(4, 2 * SPLIT_KEYS), None);
        assert_eq!(split_k(512, 30_000), None);
        for keys in [257, 1000, 4096, 8191, 32_768, 131_072] {
            let (splits, chunk) = split_k(4, keys).expect("long decode contexts split");
            assert!((2..=MAX_SPLITS).contains(&splits), "{keys}: {splits}");
            assert!(splits * chunk >= keys, "{keys}: {splits} x {chunk}");
            assert!((splits - 1) * chunk < keys, "{keys}: no split is empty");
        }
    }

    #[test]
    fn the_kernels_token_metadata_is_32_bytes() {
        assert_eq!(std::mem::size_of::<TokMeta>(), 32);
    }
}
