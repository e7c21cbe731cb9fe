//! Every kernel against its CPU scalar twin, on random data: the check `woolly gpu-check
//! kernels` runs on a real device (and `make gpu-check` on a machine with an NVIDIA GPU), and
//! `make test` runs on the kernels' own source built for the host (kernels/host, through
//! [`KernelDevice`]), so the kernels are checked on machines without a GPU too.
//!
//! Weights are random blocks of each type with finite, small scales, at sizes that are not
//! multiples of the kernels' tiles; the reference is the CPU's scalar dequantization
//! ([`crate::quant::dequantize_row`]), products computed from it in f64, and the CPU's
//! RMSNorm, activations, RoPE and softmax ([`ops`]).

use std::collections::HashMap;
use std::sync::Mutex;

use half::{bf16, f16};
use serde_json::{json, Value};

pub use super::Param;
use super::{DevBuf, Gpu, WEIGHT_TYPES};
use crate::gguf::GgmlType;
use crate::kernels::cpu::ops::{self, RopeLayout};
use crate::quant::random::{random_weights, XorShift};
use crate::{quant, Error, Result};

/// What the check needs of a device: buffers, and launches of the kernels by name with the
/// parameters of kernels/README.md. A GPU through the driver ([`GpuDevice`]), or the kernels
/// built for the host (woolly-core/tests/kernels_host.rs).
pub trait KernelDevice {
    /// The device, for the report.
    fn describe(&self) -> Value;
    /// A buffer holding `bytes`, alive as long as the device; its address.
    ///
    /// # Errors
    /// When the device has no room for it.
    fn alloc(&self, bytes: &[u8]) -> Result<u64>;
    /// The first `len` bytes of the buffer at `ptr` (after everything launched so far).
    ///
    /// # Errors
    /// When `ptr` is no buffer of this device or the copy fails.
    fn read(&self, ptr: u64, len: usize) -> Result<Vec<u8>>;
    /// Launches kernel `name` over `grid` blocks of `block` threads.
    ///
    /// # Errors
    /// When there is no such kernel or the launch fails.
    fn launch(
        &self,
        name: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        params: &[Param],
    ) -> Result<()>;
}

/// A GPU (or the host emulation, `emulator`) as a [`KernelDevice`].
pub struct GpuDevice {
    gpu: Gpu,
    buffers: Mutex<HashMap<u64, DevBuf<u8>>>,
}

impl GpuDevice {
    /// The device `gpu`, its buffers freed when this is dropped.
    pub fn new(gpu: Gpu) -> GpuDevice {
        GpuDevice {
            gpu,
            buffers: Mutex::new(HashMap::new()),
        }
    }
}

impl KernelDevice for GpuDevice {
    fn describe(&self) -> Value {
        json!(self.gpu.device)
    }

    fn alloc(&self, bytes: &[u8]) -> Result<u64> {
        let b = self.gpu.upload(bytes, "check buffers")?;
        let p = self.gpu.ptr(&b);
        self.buffers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(p, b);
        Ok(p)
    }

    fn read(&self, ptr: u64, len: usize) -> Result<Vec<u8>> {
        let buffers = self.buffers.lock().unwrap_or_else(|p| p.into_inner());
        let b = buffers
            .get(&ptr)
            .ok_or_else(|| Error::Internal(format!("no check buffer at {ptr:#x}")))?;
        let mut out = vec![0u8; len];
        self.gpu.read(b, &mut out)?;
        Ok(out)
    }

    fn launch(
        &self,
        name: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        params: &[Param],
    ) -> Result<()> {
        // SAFETY: the check passes each kernel's parameters in order with their types
        // (kernels/README.md), and addresses of buffers that hold what the launch reads and
        // writes.
        unsafe { self.gpu.launch(name, grid, block, params) }
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn read_f32(d: &dyn KernelDevice, ptr: u64, len: usize) -> Result<Vec<f32>> {
    Ok(d.read(ptr, len * 4)?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn read_f16(d: &dyn KernelDevice, ptr: u64, len: usize) -> Result<Vec<f32>> {
    Ok(d.read(ptr, len * 2)?
        .chunks_exact(2)
        .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect())
}

fn zeros(d: &dyn KernelDevice, floats: usize) -> Result<u64> {
    d.alloc(&vec![0u8; floats.max(1) * 4])
}

/// `rows` rows of `cols` random values of type `ty`: floats within ±0.1, blocks with small
/// scales, like a model's weights.
fn weights(ty: GgmlType, rows: usize, cols: usize, rng: &mut XorShift) -> Vec<u8> {
    let n = rows * cols;
    match ty {
        GgmlType::F32 => (0..n)
            .flat_map(|_| (rng.next_f32() * 0.1).to_le_bytes())
            .collect(),
        GgmlType::F16 => (0..n)
            .flat_map(|_| f16::from_f32(rng.next_f32() * 0.1).to_le_bytes())
            .collect(),
        GgmlType::BF16 => (0..n)
            .flat_map(|_| bf16::from_f32(rng.next_f32() * 0.1).to_le_bytes())
            .collect(),
        _ => random_weights(ty, n, rng, 0.004),
    }
}

/// The largest difference between `got` and `want`, relative to the largest `want`.
fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let scale = want.iter().fold(1e-6f64, |m, &w| m.max(w.abs()));
    got.iter()
        .zip(want)
        .map(|(&g, &w)| {
            if g.is_finite() == w.is_finite() && (g.is_finite() || g as f64 == w) {
                if g.is_finite() {
                    (g as f64 - w).abs() / scale
                } else {
                    0.0
                }
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max)
}

fn rel_err32(got: &[f32], want: &[f32]) -> f64 {
    let w: Vec<f64> = want.iter().map(|&v| v as f64).collect();
    rel_err(got, &w)
}

/// One weight type: dequantization, both products (1, 3 and 9 tokens through `mmv`, 70
/// through `mm`) and embedding rows, against the CPU.
fn check_type(
    d: &dyn KernelDevice,
    ty: GgmlType,
    suffix: &str,
    rng: &mut XorShift,
) -> Result<Value> {
    // Float rows of an odd width; quantized ones of two super-blocks (and one more legacy block).
    let (rows, cols) = match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => (77usize, 523usize),
        _ => (77, 2 * 256 + if ty.block_size() == 32 { 32 } else { 0 }),
    };
    let row_bytes = cols / ty.block_size() * ty.type_size();
    let w = weights(ty, rows, cols, rng);
    let mut deq = vec![0f32; rows * cols];
    for (r, out) in deq.chunks_exact_mut(cols).enumerate() {
        quant::dequantize_row(ty, &w[r * row_bytes..(r + 1) * row_bytes], out)?;
    }
    let dw = d.alloc(&w)?;
    let (ri, ci, rbi) = (
        Param::I32(rows as i32),
        Param::I32(cols as i32),
        Param::I32(row_bytes as i32),
    );
    let mut result = serde_json::Map::new();

    let out = zeros(d, rows * cols)?;
    d.launch(
        &format!("dequant_{suffix}"),
        (rows as u32, 1, 1),
        (256, 1, 1),
        &[Param::Ptr(dw), Param::Ptr(out), ri, ci, rbi],
    )?;
    result.insert(
        "dequant".into(),
        json!(rel_err32(&read_f32(d, out, rows * cols)?, &deq)),
    );

    for (family, n) in [("mmv", 1usize), ("mmv", 3), ("mmv", 9), ("mm", 70)] {
        let x: Vec<f32> = (0..n * cols).map(|_| rng.next_f32()).collect();
        let mut want = vec![0f64; n * rows];
        for t in 0..n {
            for r in 0..rows {
                let row = &deq[r * cols..(r + 1) * cols];
                let xt = &x[t * cols..(t + 1) * cols];
                want[t * rows + r] = row.iter().zip(xt).map(|(&a, &b)| a as f64 * b as f64).sum();
            }
        }
        let dx = d.alloc(&f32_bytes(&x))?;
        let dy = zeros(d, n * rows)?;
        let (grid, block) = if family == "mmv" {
            (
                (rows.div_ceil(4) as u32, n.div_ceil(8) as u32, 1),
                (32, 4, 1),
            )
        } else {
            (
                (rows.div_ceil(64) as u32, n.div_ceil(64) as u32, 1),
                (256, 1, 1),
            )
        };
        d.launch(
            &format!("{family}_{suffix}"),
            grid,
            block,
            &[
                Param::Ptr(dw),
                Param::Ptr(dx),
                Param::Ptr(dy),
                ri,
                ci,
                rbi,
                Param::I32(n as i32),
            ],
        )?;
        result.insert(
            format!("{family}_n{n}"),
            json!(rel_err(&read_f32(d, dy, n * rows)?, &want)),
        );
    }

    let ids: Vec<i32> = vec![5, 0, 76, 5, 31];
    let scale = 1.5f32;
    let dids = d.alloc(&i32_bytes(&ids))?;
    let de = zeros(d, ids.len() * cols)?;
    d.launch(
        &format!("get_rows_{suffix}"),
        (ids.len() as u32, 1, 1),
        (256, 1, 1),
        &[
            Param::Ptr(dw),
            Param::Ptr(dids),
            Param::Ptr(de),
            ci,
            rbi,
            Param::I32(ids.len() as i32),
            Param::F32(scale),
        ],
    )?;
    let want: Vec<f32> = ids
        .iter()
        .flat_map(|&i| deq[i as usize * cols..(i as usize + 1) * cols].iter())
        .map(|&v| v * scale)
        .collect();
    result.insert(
        "get_rows".into(),
        json!(rel_err32(&read_f32(d, de, ids.len() * cols)?, &want)),
    );
    Ok(Value::Object(result))
}

/// RMSNorm, the residual adds, the gated activations, row gathers and softmax against [`ops`].
fn check_ops(d: &dyn KernelDevice, rng: &mut XorShift) -> Result<serde_json::Map<String, Value>> {
    let mut out = serde_json::Map::new();
    let (rows, width) = (5usize, 640usize);
    let x: Vec<f32> = (0..rows * width).map(|_| rng.next_f32() * 3.0).collect();
    let w: Vec<f32> = (0..width).map(|_| 1.0 + rng.next_f32() * 0.5).collect();
    let eps = 1e-6f32;
    let mut want = x.clone();
    want.chunks_exact_mut(width)
        .for_each(|r| ops::rms_norm(r, &w, eps));
    let (dx, dw, dy) = (
        d.alloc(&f32_bytes(&x))?,
        d.alloc(&f32_bytes(&w))?,
        zeros(d, rows * width)?,
    );
    d.launch(
        "rms_norm",
        (rows as u32, 1, 1),
        (256, 1, 1),
        &[
            Param::Ptr(dx),
            Param::Ptr(dy),
            Param::Ptr(dw),
            Param::I32(width as i32),
            Param::F32(eps),
        ],
    )?;
    out.insert(
        "rms_norm".into(),
        json!(rel_err32(&read_f32(d, dy, rows * width)?, &want)),
    );

    // add, add_bias: x += x2; x += bias per row.
    let x2: Vec<f32> = (0..rows * width).map(|_| rng.next_f32()).collect();
    let bias: Vec<f32> = (0..width).map(|_| rng.next_f32()).collect();
    let mut want = x.clone();
    ops::add_in_place(&mut want, &x2);
    want.chunks_exact_mut(width)
        .for_each(|r| ops::add_in_place(r, &bias));
    let (dx, dx2, db) = (
        d.alloc(&f32_bytes(&x))?,
        d.alloc(&f32_bytes(&x2))?,
        d.alloc(&f32_bytes(&bias))?,
    );
    let total = Param::I32((rows * width) as i32);
    let grid = ((rows * width).div_ceil(256) as u32, 1, 1);
    d.launch(
        "add",
        grid,
        (256, 1, 1),
        &[Param::Ptr(dx), Param::Ptr(dx2), total],
    )?;
    d.launch(
        "add_bias",
        grid,
        (256, 1, 1),
        &[
            Param::Ptr(dx),
            Param::Ptr(db),
            Param::I32(width as i32),
            total,
        ],
    )?;
    out.insert(
        "add".into(),
        json!(rel_err32(&read_f32(d, dx, rows * width)?, &want)),
    );

    let total = 3000usize;
    let gate: Vec<f32> = (0..total).map(|_| rng.next_f32() * 12.0).collect();
    let up: Vec<f32> = (0..total).map(|_| rng.next_f32() * 2.0).collect();
    for name in ["geglu", "swiglu"] {
        let mut want = gate.clone();
        if name == "geglu" {
            ops::geglu(&mut want, &up);
        } else {
            ops::swiglu(&mut want, &up);
        }
        let (dg, du) = (d.alloc(&f32_bytes(&gate))?, d.alloc(&f32_bytes(&up))?);
        d.launch(
            name,
            (total.div_ceil(256) as u32, 1, 1),
            (256, 1, 1),
            &[Param::Ptr(dg), Param::Ptr(du), Param::I32(total as i32)],
        )?;
        out.insert(
            name.into(),
            json!(rel_err32(&read_f32(d, dg, total)?, &want)),
        );
    }

    // gather_rows: rows 4, 0 and 4 again.
    let idx = [4i32, 0, 4];
    let want: Vec<f32> = idx
        .iter()
        .flat_map(|&r| {
            x[r as usize * width..(r as usize + 1) * width]
                .iter()
                .copied()
        })
        .collect();
    let (dx, di, dy) = (
        d.alloc(&f32_bytes(&x))?,
        d.alloc(&i32_bytes(&idx))?,
        zeros(d, idx.len() * width)?,
    );
    d.launch(
        "gather_rows",
        (idx.len() as u32, 1, 1),
        (256, 1, 1),
        &[
            Param::Ptr(dx),
            Param::Ptr(dy),
            Param::Ptr(di),
            Param::I32(width as i32),
            Param::I32(idx.len() as i32),
        ],
    )?;
    out.insert(
        "gather_rows".into(),
        json!(rel_err32(&read_f32(d, dy, idx.len() * width)?, &want)),
    );

    // softmax_rows: random rows, one with masked entries and one masked entirely.
    let (srows, swidth) = (4usize, 1000usize);
    let mut s: Vec<f32> = (0..srows * swidth).map(|_| rng.next_f32() * 8.0).collect();
    s[swidth..2 * swidth]
        .iter_mut()
        .step_by(3)
        .for_each(|v| *v = f32::NEG_INFINITY);
    s[2 * swidth..3 * swidth].fill(f32::NEG_INFINITY);
    let mut want = s.clone();
    want.chunks_exact_mut(swidth).for_each(ops::softmax);
    let ds = d.alloc(&f32_bytes(&s))?;
    d.launch(
        "softmax_rows",
        (srows as u32, 1, 1),
        (256, 1, 1),
        &[
            Param::Ptr(ds),
            Param::I32(swidth as i32),
            Param::I32(srows as i32),
        ],
    )?;
    out.insert(
        "softmax_rows".into(),
        json!(rel_err32(&read_f32(d, ds, srows * swidth)?, &want)),
    );
    Ok(out)
}

/// `TokMeta` of kernels/common.cuh (32 bytes).
fn tok_meta(pos: usize, ctx: usize, k: u64, v: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    b.extend((pos as i32).to_le_bytes());
    b.extend((ctx as i32).to_le_bytes());
    b.extend([0u8; 8]);
    b.extend(k.to_le_bytes());
    b.extend(v.to_le_bytes());
    b
}

/// RoPE with the store into the f16 cache, then attention (whole, split-K and tiled) over that
/// cache, for two sequences in one batch (three tokens at positions 17..20 and two at 0..2)
/// with grouped heads, a partial rotation, both layouts and a sliding window, against the CPU's
/// RoPE and an f64 softmax over the cache's values ([`attention_want`]); then tiled attention
/// of longer prompts ([`check_attention_tiled`]).
fn check_attention(
    d: &dyn KernelDevice,
    rng: &mut XorShift,
) -> Result<serde_json::Map<String, Value>> {
    let mut out = serde_json::Map::new();
    let (n_head, n_head_kv, hdk, hdv, dims) = (4usize, 2usize, 72usize, 40usize, 64usize);
    let (layers, layer, ctx) = (2usize, 1usize, 24usize);
    let (kw, vw) = (n_head_kv * hdk, n_head_kv * hdv);
    let seqs: [(usize, usize); 2] = [(17, 3), (0, 2)];
    let n: usize = seqs.iter().map(|s| s.1).sum();
    let positions: Vec<(usize, usize)> = seqs
        .iter()
        .enumerate()
        .flat_map(|(s, &(first, len))| (first..first + len).map(move |p| (s, p)))
        .collect();
    let freqs: Vec<f32> = (0..dims / 2).map(|i| 1.0 + i as f32 / 16.0).collect();
    let mut worst_rope = 0f64;
    let mut worst_attn = 0f64;
    let mut worst_tiled = 0f64;
    for (layout, with_freqs, window) in [
        (RopeLayout::Neox, false, 0usize),
        (RopeLayout::Norm, true, 5),
    ] {
        let q: Vec<f32> = (0..n * n_head * hdk).map(|_| rng.next_f32()).collect();
        let k: Vec<f32> = (0..n * kw).map(|_| rng.next_f32()).collect();
        let v: Vec<f32> = (0..n * vw).map(|_| rng.next_f32()).collect();
        // Each sequence's cache, its earlier positions already filled.
        let mut caches = Vec::new();
        for _ in &seqs {
            let kc: Vec<u8> = (0..layers * ctx * kw)
                .flat_map(|_| f16::from_f32(rng.next_f32()).to_le_bytes())
                .collect();
            let vc: Vec<u8> = (0..layers * ctx * vw)
                .flat_map(|_| f16::from_f32(rng.next_f32()).to_le_bytes())
                .collect();
            caches.push((d.alloc(&kc)?, d.alloc(&vc)?));
        }
        let meta: Vec<u8> = positions
            .iter()
            .flat_map(|&(s, p)| tok_meta(p, ctx, caches[s].0, caches[s].1))
            .collect();
        let (dq, dk, dv, dm) = (
            d.alloc(&f32_bytes(&q))?,
            d.alloc(&f32_bytes(&k))?,
            d.alloc(&f32_bytes(&v))?,
            d.alloc(&meta)?,
        );
        let dfreqs = if with_freqs {
            d.alloc(&f32_bytes(&freqs))?
        } else {
            0
        };
        let (base, freq_scale) = (10000f32, 0.5f32);
        let common = [
            Param::I32(n as i32),
            Param::I32(layer as i32),
            Param::I32(n_head as i32),
            Param::I32(n_head_kv as i32),
            Param::I32(hdk as i32),
            Param::I32(hdv as i32),
        ];
        let mut params = vec![
            Param::Ptr(dq),
            Param::Ptr(dk),
            Param::Ptr(dv),
            Param::Ptr(dm),
        ];
        params.extend(common);
        params.extend([
            Param::I32(dims as i32),
            Param::I32(i32::from(layout == RopeLayout::Neox)),
            Param::F32(base),
            Param::F32(freq_scale),
            Param::Ptr(dfreqs),
        ]);
        d.launch("rope_store", (n as u32, 1, 1), (256, 1, 1), &params)?;

        // The CPU's rotation of q and k, and the cache rows they and v land in.
        let (mut q_want, mut k_want) = (q.clone(), k.clone());
        let (mut cos, mut sin) = (vec![0f32; dims / 2], vec![0f32; dims / 2]);
        for (t, &(_, p)) in positions.iter().enumerate() {
            let ff = with_freqs.then_some(freqs.as_slice());
            ops::rope_angles(p, dims, base, freq_scale, ff, &mut cos, &mut sin);
            ops::rope(
                &mut q_want[t * n_head * hdk..(t + 1) * n_head * hdk],
                hdk,
                layout,
                &cos,
                &sin,
            );
            ops::rope(&mut k_want[t * kw..(t + 1) * kw], hdk, layout, &cos, &sin);
        }
        let q_got = read_f32(d, dq, q.len())?;
        worst_rope = worst_rope.max(rel_err32(&q_got, &q_want));
        let mut kcache = Vec::new();
        let mut vcache = Vec::new();
        for &(kc, vc) in &caches {
            kcache.push(read_f16(d, kc, layers * ctx * kw)?);
            vcache.push(read_f16(d, vc, layers * ctx * vw)?);
        }
        for (t, &(s, p)) in positions.iter().enumerate() {
            let row = (layer * ctx + p) * kw;
            let k16: Vec<f32> = k_want[t * kw..(t + 1) * kw]
                .iter()
                .map(|&x| f16::from_f32(x).to_f32())
                .collect();
            worst_rope = worst_rope.max(rel_err32(&kcache[s][row..row + kw], &k16));
            let row = (layer * ctx + p) * vw;
            let v16: Vec<f32> = v[t * vw..(t + 1) * vw]
                .iter()
                .map(|&x| f16::from_f32(x).to_f32())
                .collect();
            worst_rope = worst_rope.max(rel_err32(&vcache[s][row..row + vw], &v16));
        }

        // Attention over what the device's caches now hold, from its rotated q.
        let kq_scale = 1.0 / (hdk as f32).sqrt();
        let heads = Heads {
            n_head,
            n_head_kv,
            hdk,
            hdv,
            layer,
            ctx,
        };
        let want = attention_want(
            &heads, &q_got, &positions, &kcache, &vcache, kq_scale, window,
        );
        let dout = zeros(d, n * n_head * hdv)?;
        let mut params = vec![Param::Ptr(dq), Param::Ptr(dout), Param::Ptr(dm)];
        params.extend(common);
        params.extend([Param::F32(kq_scale), Param::I32(window as i32)]);
        d.launch(
            "attention",
            (n_head as u32, n as u32, 1),
            (128, 1, 1),
            &params,
        )?;
        worst_attn = worst_attn.max(rel_err(&read_f32(d, dout, n * n_head * hdv)?, &want));

        // Split-K: chunks of 4 keys, five splits (some empty for the short sequence).
        let (chunk, splits) = (4usize, 5usize);
        let dpart = zeros(d, n * n_head * splits * (hdv + 2))?;
        let dout = zeros(d, n * n_head * hdv)?;
        let mut params = vec![Param::Ptr(dq), Param::Ptr(dpart), Param::Ptr(dm)];
        params.extend(common);
        params.extend([
            Param::F32(kq_scale),
            Param::I32(window as i32),
            Param::I32(chunk as i32),
        ]);
        d.launch(
            "attention_partial",
            (n_head as u32, n as u32, splits as u32),
            (128, 1, 1),
            &params,
        )?;
        d.launch(
            "attention_combine",
            (n_head as u32, n as u32, 1),
            (128, 1, 1),
            &[
                Param::Ptr(dpart),
                Param::Ptr(dout),
                Param::I32(n as i32),
                Param::I32(n_head as i32),
                Param::I32(hdv as i32),
                Param::I32(splits as i32),
            ],
        )?;
        worst_attn = worst_attn.max(rel_err(&read_f32(d, dout, n * n_head * hdv)?, &want));

        // Tiled: a tile per sequence (both shorter than a tile).
        let got = run_tiled(d, &heads, dq, dm, &seqs, kq_scale, window)?;
        worst_tiled = worst_tiled.max(rel_err(&got, &want));
    }
    out.insert("rope_store".into(), json!(worst_rope));
    out.insert("attention".into(), json!(worst_attn));
    out.insert(
        "attention_tiled".into(),
        json!(worst_tiled.max(check_attention_tiled(d, rng)?)),
    );
    Ok(out)
}

/// The head geometry of an attention check, and the cache layer it reads.
struct Heads {
    n_head: usize,
    n_head_kv: usize,
    hdk: usize,
    hdv: usize,
    layer: usize,
    ctx: usize,
}

/// Attention in f64 of each token `(sequence, position)` of `positions` (queries `q`,
/// `[token][n_head][hdk]`) over its sequence's caches (`[layer][ctx][kv width]`, as f32),
/// keys `max(0, pos + 1 - window) ..= pos` (all up to `pos` for window 0).
fn attention_want(
    g: &Heads,
    q: &[f32],
    positions: &[(usize, usize)],
    kcache: &[Vec<f32>],
    vcache: &[Vec<f32>],
    kq_scale: f32,
    window: usize,
) -> Vec<f64> {
    let (n_head, hdk, hdv, layer, ctx) = (g.n_head, g.hdk, g.hdv, g.layer, g.ctx);
    let (kw, vw) = (g.n_head_kv * hdk, g.n_head_kv * hdv);
    let mut want = vec![0f64; positions.len() * n_head * hdv];
    for (t, &(s, p)) in positions.iter().enumerate() {
        let lo = if window > 0 {
            (p + 1).saturating_sub(window)
        } else {
            0
        };
        for h in 0..n_head {
            let kvh = h / (n_head / g.n_head_kv);
            let qh = &q[(t * n_head + h) * hdk..(t * n_head + h + 1) * hdk];
            let scores: Vec<f64> = (lo..=p)
                .map(|j| {
                    let kr = &kcache[s][(layer * ctx + j) * kw + kvh * hdk..][..hdk];
                    qh.iter()
                        .zip(kr)
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum::<f64>()
                        * kq_scale as f64
                })
                .collect();
            let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let sum: f64 = e.iter().sum();
            let o = &mut want[(t * n_head + h) * hdv..(t * n_head + h + 1) * hdv];
            for (j, w) in (lo..=p).zip(&e) {
                let vr = &vcache[s][(layer * ctx + j) * vw + kvh * hdv..][..hdv];
                for (x, &y) in o.iter_mut().zip(vr) {
                    *x += w / sum * y as f64;
                }
            }
        }
    }
    want
}

/// Queries of a tile of `attention_tiled` (`TILE_Q` in kernels/attention.cuh).
const TILE_Q: usize = 16;

/// `attention_tiled` over the batch `seqs` (each `(first position, tokens)`, tokens in batch
/// order, `meta` one `TokMeta` a token), with the host's tile table: each sequence cut into
/// tiles of [`TILE_Q`] tokens from its first. Its output, `[token][n_head][hdv]`.
fn run_tiled(
    d: &dyn KernelDevice,
    g: &Heads,
    q: u64,
    meta: u64,
    seqs: &[(usize, usize)],
    kq_scale: f32,
    window: usize,
) -> Result<Vec<f32>> {
    let (mut table, mut first) = (Vec::new(), 0usize);
    for &(_, len) in seqs {
        for start in (0..len).step_by(TILE_Q) {
            table.extend([(first + start) as i32, (len - start).min(TILE_Q) as i32]);
        }
        first += len;
    }
    let tiles = table.len() / 2;
    let dtiles = d.alloc(&i32_bytes(&table))?;
    let dout = zeros(d, first * g.n_head * g.hdv)?;
    d.launch(
        "attention_tiled",
        (g.n_head as u32, tiles as u32, 1),
        (128, 1, 1),
        &[
            Param::Ptr(q),
            Param::Ptr(dout),
            Param::Ptr(meta),
            Param::Ptr(dtiles),
            Param::I32(tiles as i32),
            Param::I32(g.layer as i32),
            Param::I32(g.n_head as i32),
            Param::I32(g.n_head_kv as i32),
            Param::I32(g.hdk as i32),
            Param::I32(g.hdv as i32),
            Param::F32(kq_scale),
            Param::I32(window as i32),
        ],
    )?;
    read_f32(d, dout, first * g.n_head * g.hdv)
}

/// Tiled attention of prompt batches against [`attention_want`]: several sequences in one
/// pass, of token counts that are not multiples of a tile, one continuing a prompt after
/// earlier tokens (a first position past 0) and one decoding a single token; grouped heads
/// (four and two query heads a KV head, and one), odd head widths with `hdk != hdv` and the
/// widest heads, no window and windows shorter and longer than a key tile.
fn check_attention_tiled(d: &dyn KernelDevice, rng: &mut XorShift) -> Result<f64> {
    type Case = (usize, usize, usize, usize, usize, &'static [(usize, usize)]);
    let cases: [Case; 4] = [
        (8, 2, 80, 72, 0, &[(0, 37), (21, 16), (5, 3), (60, 1)]),
        (8, 2, 80, 72, 7, &[(0, 37), (21, 16), (5, 3), (60, 1)]),
        (4, 2, 72, 40, 20, &[(13, 33), (0, 17)]),
        (3, 3, 256, 256, 0, &[(30, 19), (0, 16)]),
    ];
    let mut worst = 0f64;
    for (n_head, n_head_kv, hdk, hdv, window, seqs) in cases {
        let (layers, layer) = (2usize, 1usize);
        let ctx = seqs.iter().map(|&(f, l)| f + l).max().unwrap_or(0) + 3;
        let heads = Heads {
            n_head,
            n_head_kv,
            hdk,
            hdv,
            layer,
            ctx,
        };
        let (kw, vw) = (n_head_kv * hdk, n_head_kv * hdv);
        let positions: Vec<(usize, usize)> = seqs
            .iter()
            .enumerate()
            .flat_map(|(s, &(first, len))| (first..first + len).map(move |p| (s, p)))
            .collect();
        let n = positions.len();
        // Queries of several units, so that some rows' weights peak.
        let q: Vec<f32> = (0..n * n_head * hdk)
            .map(|_| rng.next_f32() * 3.0)
            .collect();
        let (mut kcache, mut vcache, mut addrs) = (Vec::new(), Vec::new(), Vec::new());
        for _ in seqs {
            let kc: Vec<f32> = (0..layers * ctx * kw)
                .map(|_| f16::from_f32(rng.next_f32()).to_f32())
                .collect();
            let vc: Vec<f32> = (0..layers * ctx * vw)
                .map(|_| f16::from_f32(rng.next_f32()).to_f32())
                .collect();
            let f16_bytes = |v: &[f32]| -> Vec<u8> {
                v.iter()
                    .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                    .collect()
            };
            addrs.push((d.alloc(&f16_bytes(&kc))?, d.alloc(&f16_bytes(&vc))?));
            kcache.push(kc);
            vcache.push(vc);
        }
        let meta: Vec<u8> = positions
            .iter()
            .flat_map(|&(s, p)| tok_meta(p, ctx, addrs[s].0, addrs[s].1))
            .collect();
        let (dq, dm) = (d.alloc(&f32_bytes(&q))?, d.alloc(&meta)?);
        let kq_scale = 1.0 / (hdk as f32).sqrt();
        let want = attention_want(&heads, &q, &positions, &kcache, &vcache, kq_scale, window);
        let got = run_tiled(d, &heads, dq, dm, seqs, kq_scale, window)?;
        worst = worst.max(rel_err(&got, &want));
    }
    Ok(worst)
}

/// The largest relative error a kernel may show against its twin: f32 accumulation in
/// another order over a few hundred terms.
pub const TOLERANCE: f64 = 1e-4;

/// The same for kernels whose results are rounded to f16 (the cache rows of `rope_store`,
/// GEGLU): one f16 step where the twins' f32 values straddle a rounding boundary.
pub const F16_TOLERANCE: f64 = 1e-3;

fn tolerance(check: &str) -> f64 {
    if check == "rope_store" || check == "geglu" {
        F16_TOLERANCE
    } else {
        TOLERANCE
    }
}

/// Checks every kernel on `device`: a JSON report with each error, whether it is within
/// [`TOLERANCE`] (or [`F16_TOLERANCE`]), and `"ok"` overall.
///
/// # Errors
/// When a launch fails (a failing comparison is not an error: the report says so).
pub fn check_on(device: &dyn KernelDevice) -> Result<Value> {
    let mut rng = XorShift(0x5EED);
    let mut types = serde_json::Map::new();
    let mut worst = 0f64;
    let mut failed = Vec::new();
    for (ty, suffix) in WEIGHT_TYPES {
        let v = check_type(device, ty, suffix, &mut rng)?;
        for (k, e) in v.as_object().into_iter().flatten() {
            let e = e.as_f64().unwrap_or(f64::INFINITY);
            worst = worst.max(e);
            if e.is_nan() || e > TOLERANCE {
                failed.push(format!("{k}_{suffix}"));
            }
        }
        types.insert(suffix.into(), v);
    }
    let mut ops = check_ops(device, &mut rng)?;
    ops.extend(check_attention(device, &mut rng)?);
    for (k, e) in &ops {
        let e = e.as_f64().unwrap_or(f64::INFINITY);
        worst = worst.max(e);
        if e.is_nan() || e > tolerance(k) {
            failed.push(k.clone());
        }
    }
    Ok(json!({
        "device": device.describe(),
        "types": types,
        "ops": ops,
        "worst_relative_error": worst,
        "tolerance": TOLERANCE,
        "f16_tolerance": F16_TOLERANCE,
        "failed": failed,
        "ok": failed.is_empty(),
    }))
}

/// [`check_on`] CUDA device `index`.
///
/// # Errors
/// When the device cannot be opened or a launch fails.
pub fn check_kernels(index: usize) -> Result<Value> {
    let device = GpuDevice::new(Gpu::open(index)?);
    check_on(&device)
}
