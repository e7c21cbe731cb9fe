//! Every kernel against its CPU scalar twin, on random data, on a real device: the check
//! `woolly gpu-check kernels` runs (and `make gpu-check` on a machine with an NVIDIA GPU).
//!
//! Weights are random blocks of each type with finite, small scales, at sizes that are not
//! multiples of the kernels' tiles; the reference is the CPU's scalar dequantization
//! ([`crate::quant::dequantize_row`]) and products computed from it in f64.

use cudarc::driver::{LaunchConfig, PushKernelArg};
use half::{bf16, f16};
use serde_json::{json, Value};

use super::{device_error, Gpu, WEIGHT_TYPES};
use crate::gguf::GgmlType;
use crate::kernels::cpu::ops;
use crate::quant::random::{random_weights, XorShift};
use crate::{quant, Result};

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
    let scale = want.iter().fold(1e-6f64, |m, &w| m.max(w.abs()));
    got.iter()
        .zip(want)
        .map(|(&g, &w)| {
            if g.is_finite() {
                (g as f64 - w).abs() / scale
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max)
}

fn launch_cfg(grid: (u32, u32, u32), block: (u32, u32, u32)) -> LaunchConfig {
    LaunchConfig {
        grid_dim: grid,
        block_dim: block,
        shared_mem_bytes: 0,
    }
}

/// One weight type: dequantization, both products (1, 3 and 9 tokens through `mmv`, 70
/// through `mm`) and embedding rows, against the CPU.
fn check_type(gpu: &Gpu, ty: GgmlType, suffix: &str, rng: &mut XorShift) -> Result<Value> {
    let err = |e| device_error(gpu.device.index, e);
    let (rows, cols) = (
        77usize,
        2 * 256 + if ty.block_size() == 32 { 32 } else { 0 },
    );
    let row_bytes = cols / ty.block_size() * ty.type_size();
    let w = weights(ty, rows, cols, rng);
    let mut deq = vec![0f32; rows * cols];
    for (r, out) in deq.chunks_exact_mut(cols).enumerate() {
        quant::dequantize_row(ty, &w[r * row_bytes..(r + 1) * row_bytes], out)?;
    }
    let dw = gpu.upload(&w, "check weights")?;
    let stream = gpu.stream();
    let (ri, ci, rbi) = (rows as i32, cols as i32, row_bytes as i32);
    let mut result = serde_json::Map::new();

    // dequant
    let mut out = gpu.zeros::<f32>(rows * cols, "check output")?;
    let f = gpu.function(&format!("dequant_{suffix}"))?;
    // SAFETY: the arguments match the kernel's parameters (kernels/README.md), and every
    // buffer holds what the launch reads or writes.
    unsafe {
        stream
            .launch_builder(f)
            .arg(&dw)
            .arg(&mut out)
            .arg(&ri)
            .arg(&ci)
            .arg(&rbi)
            .launch(launch_cfg((rows as u32, 1, 1), (256, 1, 1)))
    }
    .map_err(err)?;
    let got = gpu.download(&out)?;
    let want: Vec<f64> = deq.iter().map(|&v| v as f64).collect();
    result.insert("dequant".into(), json!(rel_err(&got, &want)));

    // products
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
        let dx = gpu.upload(&x, "check activations")?;
        let mut dy = gpu.zeros::<f32>(n * rows, "check output")?;
        let f = gpu.function(&format!("{family}_{suffix}"))?;
        let cfg = if family == "mmv" {
            launch_cfg(
                (rows.div_ceil(4) as u32, n.div_ceil(8) as u32, 1),
                (32, 4, 1),
            )
        } else {
            launch_cfg(
                (rows.div_ceil(64) as u32, n.div_ceil(64) as u32, 1),
                (256, 1, 1),
            )
        };
        let ni = n as i32;
        // SAFETY: as above.
        unsafe {
            stream
                .launch_builder(f)
                .arg(&dw)
                .arg(&dx)
                .arg(&mut dy)
                .arg(&ri)
                .arg(&ci)
                .arg(&rbi)
                .arg(&ni)
                .launch(cfg)
        }
        .map_err(err)?;
        let got = gpu.download(&dy)?;
        result.insert(format!("{family}_n{n}"), json!(rel_err(&got, &want)));
    }

    // embedding rows
    let ids: Vec<i32> = vec![5, 0, 76, 5, 31];
    let scale = 1.5f32;
    let dids = gpu.upload(&ids, "check ids")?;
    let mut de = gpu.zeros::<f32>(ids.len() * cols, "check output")?;
    let f = gpu.function(&format!("get_rows_{suffix}"))?;
    let ni = ids.len() as i32;
    // SAFETY: as above.
    unsafe {
        stream
            .launch_builder(f)
            .arg(&dw)
            .arg(&dids)
            .arg(&mut de)
            .arg(&ci)
            .arg(&rbi)
            .arg(&ni)
            .arg(&scale)
            .launch(launch_cfg((ids.len() as u32, 1, 1), (256, 1, 1)))
    }
    .map_err(err)?;
    let got = gpu.download(&de)?;
    let want: Vec<f64> = ids
        .iter()
        .flat_map(|&i| deq[i as usize * cols..(i as usize + 1) * cols].iter())
        .map(|&v| v as f64 * scale as f64)
        .collect();
    result.insert("get_rows".into(), json!(rel_err(&got, &want)));
    Ok(Value::Object(result))
}

/// RMSNorm and the gated activations against [`ops`].
fn check_ops(gpu: &Gpu, rng: &mut XorShift) -> Result<Value> {
    let err = |e| device_error(gpu.device.index, e);
    let stream = gpu.stream();
    let (rows, width) = (5usize, 640usize);
    let x: Vec<f32> = (0..rows * width).map(|_| rng.next_f32() * 3.0).collect();
    let w: Vec<f32> = (0..width).map(|_| 1.0 + rng.next_f32() * 0.5).collect();
    let eps = 1e-6f32;
    let mut want = x.clone();
    want.chunks_exact_mut(width)
        .for_each(|r| ops::rms_norm(r, &w, eps));
    let dx = gpu.upload(&x, "check input")?;
    let dw = gpu.upload(&w, "check weights")?;
    let mut dy = gpu.zeros::<f32>(rows * width, "check output")?;
    let wi = width as i32;
    // SAFETY: as in check_type.
    unsafe {
        stream
            .launch_builder(gpu.function("rms_norm")?)
            .arg(&dx)
            .arg(&mut dy)
            .arg(&dw)
            .arg(&wi)
            .arg(&eps)
            .launch(launch_cfg((rows as u32, 1, 1), (256, 1, 1)))
    }
    .map_err(err)?;
    let want64: Vec<f64> = want.iter().map(|&v| v as f64).collect();
    let rms = rel_err(&gpu.download(&dy)?, &want64);

    let total = 3000usize;
    let gate: Vec<f32> = (0..total).map(|_| rng.next_f32() * 4.0).collect();
    let up: Vec<f32> = (0..total).map(|_| rng.next_f32() * 2.0).collect();
    let mut glu = serde_json::Map::new();
    for name in ["geglu", "swiglu"] {
        let mut want = gate.clone();
        if name == "geglu" {
            ops::geglu(&mut want, &up);
        } else {
            ops::swiglu(&mut want, &up);
        }
        let mut dg = gpu.upload(&gate, "check input")?;
        let du = gpu.upload(&up, "check input")?;
        let ti = total as i32;
        // SAFETY: as in check_type.
        unsafe {
            stream
                .launch_builder(gpu.function(name)?)
                .arg(&mut dg)
                .arg(&du)
                .arg(&ti)
                .launch(launch_cfg((total.div_ceil(256) as u32, 1, 1), (256, 1, 1)))
        }
        .map_err(err)?;
        let want64: Vec<f64> = want.iter().map(|&v| v as f64).collect();
        glu.insert(name.into(), json!(rel_err(&gpu.download(&dg)?, &want64)));
    }
    Ok(json!({ "rms_norm": rms, "glu": glu }))
}

/// The largest relative error a kernel may show against its twin: f32 accumulation in
/// another order over a few hundred terms.
pub const TOLERANCE: f64 = 1e-4;

/// Checks every weight type's kernels and the element-wise ones on device `index`: a JSON
/// report with each error, whether it is within [`TOLERANCE`], and `"ok"` overall.
///
/// # Errors
/// When the device cannot be opened or a launch fails (a failing comparison is not an error:
/// the report says so).
pub fn check_kernels(index: usize) -> Result<Value> {
    let gpu = Gpu::open(index)?;
    let mut rng = XorShift(0x5EED);
    let mut types = serde_json::Map::new();
    let mut worst = 0f64;
    for (ty, suffix) in WEIGHT_TYPES {
        let v = check_type(&gpu, ty, suffix, &mut rng)?;
        for e in v.as_object().into_iter().flat_map(|o| o.values()) {
            worst = worst.max(e.as_f64().unwrap_or(f64::INFINITY));
        }
        types.insert(suffix.into(), v);
    }
    let ops = check_ops(&gpu, &mut rng)?;
    for e in [
        &ops["rms_norm"],
        &ops["glu"]["geglu"],
        &ops["glu"]["swiglu"],
    ] {
        worst = worst.max(e.as_f64().unwrap_or(f64::INFINITY));
    }
    gpu.synchronize()?;
    Ok(json!({
        "device": gpu.device,
        "types": types,
        "ops": ops,
        "worst_relative_error": worst,
        "tolerance": TOLERANCE,
        "ok": worst <= TOLERANCE,
        "not_checked_yet": ["rope_store", "attention", "attention_partial", "attention_combine", "gather_rows", "softmax_rows"],
    }))
}
