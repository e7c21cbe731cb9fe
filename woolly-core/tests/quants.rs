//! Quantized formats against an external oracle, and the dot products against exact references.
//!
//! The fixtures in `tests/fixtures/quants/` come from `scripts/gen_quant_fixtures.py`, which uses
//! gguf-py (llama.cpp's Python package) as the oracle; see the script for how to regenerate them.
//!
//! - dequantization of random blocks of every weight type, and of the first rows of real tensors
//!   of the tiny reference models, must match gguf-py bit for bit;
//! - activation quantization must match gguf-py (Q8_0, F16, BF16) or the script's transcription
//!   of GGML's reference code (Q8_1, Q8_K) byte for byte;
//! - every dot product must match the f64 dot product of its dequantized operands to a tight
//!   tolerance (only f32 rounding of a few block-level terms separates them), and the f64 dot
//!   product with the unquantized activations within the activation format's quantization error.

use std::path::PathBuf;

use serde_json::Value;
use woolly_core::gguf::{GgmlType, GgufFile};
use woolly_core::kernels::cpu;
use woolly_core::quant::{
    dequantize_row, dequantize_row_unchecked, f16_to_f32, quantize_row, vec_dot_type,
};
use woolly_core::testing::{self, random_weights, XorShift};
use woolly_core::{Error, Result};

const WEIGHT_TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/quants"
    ))
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(fixtures().join("manifest.json"))
        .expect("tests/fixtures/quants/manifest.json (run scripts/gen_quant_fixtures.py)");
    serde_json::from_str(&text).expect("manifest.json is JSON")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn read_f32(name: &str) -> Vec<f32> {
    read(name)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn ty_named(name: &str) -> GgmlType {
    GgmlType::ALL
        .into_iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("unknown type {name}"))
}

fn entries<'a>(m: &'a Value, key: &str) -> &'a [Value] {
    m[key].as_array().map(Vec::as_slice).unwrap_or_default()
}

fn row_bytes(ty: GgmlType, n: usize) -> usize {
    ty.row_bytes(n as u64).expect("whole blocks") as usize
}

/// Asserts two f32 slices are bit-identical, reporting the first difference.
fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let diffs = got
        .iter()
        .zip(want)
        .filter(|(g, w)| g.to_bits() != w.to_bits())
        .count();
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: {diffs} of {} values differ; first at {i}: got {:e} want {:e}",
            got.len(),
            got[i],
            want[i]
        );
    }
}

// -------------------------------------------------------------------------------------------------
// Dequantization
// -------------------------------------------------------------------------------------------------

#[test]
fn dequantize_matches_gguf_py_bit_exactly() {
    let m = manifest();
    let cases = entries(&m, "dequantize");
    let mut seen: Vec<GgmlType> = cases
        .iter()
        .map(|c| ty_named(c["type"].as_str().unwrap()))
        .collect();
    seen.sort_by_key(|t| t.id());
    let mut all = WEIGHT_TYPES.to_vec();
    all.sort_by_key(|t| t.id());
    assert_eq!(seen, all, "the fixtures cover every weight type");

    for c in cases {
        let ty = ty_named(c["type"].as_str().unwrap());
        let n = c["elements"].as_u64().unwrap() as usize;
        let src = read(c["src"].as_str().unwrap());
        let want = read_f32(c["expected"].as_str().unwrap());
        assert_eq!(want.len(), n);

        let mut got = vec![f32::NAN; n];
        dequantize_row(ty, &src, &mut got).unwrap();
        assert_bits_eq(&format!("{ty}"), &got, &want);

        // Block by block gives the same values (no state crosses blocks), and so does the
        // unchecked variant.
        let (bs, ts) = (ty.block_size().max(64), ty.type_size());
        let per = bs / ty.block_size();
        let mut piecewise = vec![f32::NAN; n];
        for (s, d) in src.chunks(per * ts).zip(piecewise.chunks_mut(bs)) {
            dequantize_row(ty, s, d).unwrap();
        }
        assert_bits_eq(&format!("{ty} block by block"), &piecewise, &want);
        let mut unchecked = vec![f32::NAN; n];
        dequantize_row_unchecked(ty, &src, &mut unchecked);
        assert_bits_eq(&format!("{ty} unchecked"), &unchecked, &want);
    }
}

#[test]
fn tiny_model_tensors_dequantize_like_gguf_py() {
    let m = manifest();
    let cases = entries(&m, "models");
    assert!(
        !cases.is_empty(),
        "no model fixtures: run scripts/gen_quant_fixtures.py with the tiny models present"
    );
    let mut types = Vec::new();
    for c in cases {
        let model = testing::tiny_model(c["model"].as_str().unwrap());
        let name = c["tensor"].as_str().unwrap();
        let ty = ty_named(c["type"].as_str().unwrap());
        let ne0 = c["row_elements"].as_u64().unwrap() as usize;
        let rows = c["rows"].as_u64().unwrap() as usize;
        let want = read_f32(c["expected"].as_str().unwrap());

        let file = GgufFile::open(&model).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
        let info = file
            .tensor(name)
            .unwrap_or_else(|| panic!("{name} in {}", model.display()));
        assert_eq!(info.ggml_type, ty, "{name}");
        assert_eq!(info.dims[0] as usize, ne0, "{name}");
        let rb = row_bytes(ty, ne0);
        let data = file.tensor_data(info);
        assert!(data.len() >= rows * rb, "{name}: tensor data too short");

        let mut got = vec![f32::NAN; rows * ne0];
        for (r, out) in got.chunks_exact_mut(ne0).enumerate() {
            dequantize_row(ty, &data[r * rb..(r + 1) * rb], out).unwrap();
        }
        assert_bits_eq(&format!("{name} ({ty})"), &got, &want);
        types.push(ty);
    }
    // The tiny models hold these types; each must have been checked.
    for ty in [
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::F32,
    ] {
        assert!(
            types.contains(&ty),
            "no tiny-model tensor of type {ty} was checked"
        );
    }
}

// -------------------------------------------------------------------------------------------------
// Activation quantization
// -------------------------------------------------------------------------------------------------

#[test]
fn quantize_row_matches_the_oracle() {
    let m = manifest();
    let cases = entries(&m, "quantize");
    let mut types: Vec<GgmlType> = Vec::new();
    for c in cases {
        let act = ty_named(c["type"].as_str().unwrap());
        let x = read_f32(c["input"].as_str().unwrap());
        let want = read(c["expected"].as_str().unwrap());
        assert_eq!(x.len(), c["elements"].as_u64().unwrap() as usize);

        let mut got = vec![0xa5u8; row_bytes(act, x.len())];
        quantize_row(act, &x, &mut got).unwrap();
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            let ts = act.type_size();
            panic!(
                "{act} (oracle {}): byte {i} (block {}, offset {}) is {} instead of {}",
                c["oracle"],
                i / ts,
                i % ts,
                got[i],
                want[i]
            );
        }
        types.push(act);
    }
    for act in [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q8_K,
    ] {
        assert!(types.contains(&act), "no quantization fixture for {act}");
    }
}

#[test]
fn q8_k_block_sums_are_the_sums_of_the_quants() {
    let x = read_f32("act_input.f32");
    let mut q = vec![0u8; row_bytes(GgmlType::Q8_K, x.len())];
    quantize_row(GgmlType::Q8_K, &x, &mut q).unwrap();
    for b in q.chunks_exact(292) {
        for j in 0..16 {
            let sum: i32 = b[4 + 16 * j..4 + 16 * j + 16]
                .iter()
                .map(|&v| v as i8 as i32)
                .sum();
            let stored = i16::from_le_bytes([b[260 + 2 * j], b[261 + 2 * j]]) as i32;
            assert_eq!(sum, stored);
        }
    }
}

// -------------------------------------------------------------------------------------------------
// Dot products
// -------------------------------------------------------------------------------------------------

/// Roughly normal, times `scale` (the sum of four uniform values in [-1, 1), times 0.9).
fn activation(rng: &mut XorShift, scale: f32) -> f32 {
    let s: f32 = (0..4).map(|_| rng.next_f32()).sum::<f32>() * 0.9;
    s * scale
}

const F16_MIN_NORMAL: f64 = 6.103515625e-5;
/// 2^-24: the unit roundoff of f32 (and the spacing of f16 subnormals is 2^-24 too).
const U32: f64 = 1.0 / 16_777_216.0;

/// Largest error of rounding `v` to f16 (half an ulp; subnormals have a fixed spacing).
fn f16_rounding(v: f64) -> f64 {
    if v.abs() < F16_MIN_NORMAL {
        U32 / 2.0
    } else {
        v.abs() / 2048.0
    }
}

/// The largest error quantizing each element of `x` into `act` can introduce, from the
/// format's definition (appended to `out`).
fn activation_error_bounds(act: GgmlType, x: &[f32], out: &mut Vec<f64>) {
    use GgmlType::*;
    for blk in x.chunks(act.block_size()) {
        let amax = blk.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
        for &v in blk {
            let v = v.abs() as f64;
            out.push(match act {
                F32 => 0.0,
                F16 => f16_rounding(v),
                BF16 => v / 256.0 + 1e-38,
                Q8_0 | Q8_1 => {
                    // q = round(x / d) is off by half a step; the stored step f16(d) is off by
                    // its f16 rounding, multiplied by up to |q| steps.
                    let d = amax / 127.0;
                    if d == 0.0 {
                        0.0
                    } else {
                        let steps = (v / d + 0.5).min(127.0);
                        d / 2.0 * (1.0 + 1e-5) + steps * f16_rounding(d)
                    }
                }
                Q8_K => amax / 254.0 * (1.0 + 1e-5) + 1e-7 * v,
                _ => unreachable!(),
            });
        }
    }
}

/// For Q4_1/Q5_1 · Q8_1: Σ over blocks of `m · (s - f16(d) · Σq)`, exactly what the stored
/// `s = f16(d · Σq)` (computed from the f32 `d`) adds to the dot product compared with the
/// dequantized operands, whose activations are `q · f16(d)`.
fn q8_1_sum_correction(ty: GgmlType, w: &[u8], a: &[u8]) -> f64 {
    if vec_dot_type(ty) != GgmlType::Q8_1 {
        return 0.0;
    }
    let f16_at = |b: &[u8], i: usize| f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]])) as f64;
    w.chunks_exact(ty.type_size())
        .zip(a.chunks_exact(36))
        .map(|(x, y)| {
            let sum_q: i32 = y[4..].iter().map(|&q| q as i8 as i32).sum();
            f16_at(x, 2) * (f16_at(y, 2) - f16_at(y, 0) * sum_q as f64)
        })
        .sum()
}

/// Checks one dot product; returns its error relative to the tight tolerance (≤ 1 passes).
fn check_dot(ty: GgmlType, w: &[u8], x: &[f32], what: &str) -> f64 {
    let n = x.len();
    let act = vec_dot_type(ty);
    let mut a = vec![0u8; row_bytes(act, n)];
    quantize_row(act, x, &mut a).unwrap();
    let mut wf = vec![0f32; n];
    dequantize_row(ty, w, &mut wf).unwrap();
    let mut af = vec![0f32; n];
    dequantize_row(act, &a, &mut af).unwrap();

    let got = cpu::vec_dot(ty, n, w, &a);
    assert!(got.is_finite(), "{what}: {got}");
    let got = got as f64;

    // The kernels round a handful of f32 terms per block, each bounded by the block's
    // Σ|activation| · max|weight| (the largest weight magnitude also bounds the separate scale
    // and min parts of K-quant weights), then add up the blocks (or the eight lanes) in f32.
    let bs = ty.block_size();
    let scale: f64 = wf
        .chunks(bs.max(32))
        .zip(af.chunks(bs.max(32)))
        .map(|(wb, ab)| {
            let wmax = wb.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
            ab.iter().map(|v| v.abs() as f64).sum::<f64>() * wmax
        })
        .sum();
    let roundings = if bs == 1 { 3.0 } else { (n / bs) as f64 + 12.0 };
    let tol = 2.0 * roundings * U32 * scale + 1e-30;
    let correction = q8_1_sum_correction(ty, w, &a);
    let exact: f64 = wf
        .iter()
        .zip(&af)
        .map(|(&p, &q)| p as f64 * q as f64)
        .sum::<f64>()
        + correction;
    let rel = (got - exact).abs() / tol;
    assert!(
        rel <= 1.0,
        "{what}: vec_dot {got:e} vs f64 of the dequantized operands {exact:e} (tolerance {tol:e}, \
         Q8_1 sum correction {correction:e})"
    );

    // Against the unquantized activations: within what quantizing them can change.
    let mut bounds = Vec::with_capacity(n);
    activation_error_bounds(act, x, &mut bounds);
    let plain: f64 = wf.iter().zip(x).map(|(&p, &q)| p as f64 * q as f64).sum();
    let qerr: f64 = wf
        .iter()
        .zip(&bounds)
        .map(|(&p, &e)| p.abs() as f64 * e)
        .sum();
    let loose = qerr + tol + correction.abs();
    assert!(
        (got - plain).abs() <= loose,
        "{what}: vec_dot {got:e} vs f64 with unquantized activations {plain:e} (bound {loose:e})"
    );

    // Every entry point gives the same bits.
    let kernel = cpu::vec_dot_kernel(ty).unwrap();
    assert_eq!(kernel(n, w, &a).to_bits(), (got as f32).to_bits(), "{what}");
    assert_eq!(
        cpu::vec_dot_checked(ty, n, w, &a).unwrap().to_bits(),
        (got as f32).to_bits(),
        "{what}"
    );
    rel
}

#[test]
fn vec_dot_matches_the_dequantized_reference() {
    let mut rng = XorShift(0x5eed_1234_abcd_0001);
    let m = manifest();
    let mut worst = vec![];
    // The fixture blocks (random quants and scales, a few zero or subnormal scales) as weights
    // (not the float fixtures: their random bit patterns reach 1e38 and overflow products)...
    for c in entries(&m, "dequantize") {
        let ty = ty_named(c["type"].as_str().unwrap());
        if ty.block_size() == 1 {
            continue;
        }
        let n = c["elements"].as_u64().unwrap() as usize;
        let w = read(c["src"].as_str().unwrap());
        for trial in 0..4 {
            let scale = [1.0f32, 1e-3, 30.0, 1.0][trial];
            let x: Vec<f32> = (0..n).map(|_| activation(&mut rng, scale)).collect();
            worst.push((
                check_dot(ty, &w, &x, &format!("{ty} fixture, trial {trial}")),
                ty,
            ));
        }
    }
    // ... and freshly generated rows of several lengths.
    for ty in WEIGHT_TYPES {
        for blocks in [1usize, 3, 16] {
            let n = blocks
                * if ty.block_size() == 1 {
                    32
                } else {
                    ty.block_size()
                };
            for trial in 0..5 {
                let w = random_weights(ty, n, &mut rng, 0.02);
                let x: Vec<f32> = (0..n).map(|_| activation(&mut rng, 1.0)).collect();
                let what = format!("{ty}, {n} elements, trial {trial}");
                worst.push((check_dot(ty, &w, &x, &what), ty));
            }
        }
    }
    for ty in WEIGHT_TYPES {
        let rel = worst
            .iter()
            .filter(|w| w.1 == ty)
            .fold(0f64, |m, w| m.max(w.0));
        eprintln!("{ty}: largest error relative to the tight tolerance {rel:.4}");
    }
}

#[test]
fn matmul_rows_applies_vec_dot_to_each_row() {
    let mut rng = XorShift(77);
    for ty in WEIGHT_TYPES {
        let n = if ty.block_size() == 1 {
            64
        } else {
            2 * ty.block_size()
        };
        let rows = 5;
        let w: Vec<u8> = (0..rows)
            .flat_map(|_| random_weights(ty, n, &mut rng, 0.02))
            .collect();
        let x: Vec<f32> = (0..n).map(|_| activation(&mut rng, 1.0)).collect();
        let act = vec_dot_type(ty);
        let mut a = vec![0u8; row_bytes(act, n)];
        quantize_row(act, &x, &mut a).unwrap();
        let mut out = vec![f32::NAN; rows];
        cpu::matmul_rows(ty, &w, rows, n, &a, &mut out).unwrap();
        let rb = row_bytes(ty, n);
        for (r, &o) in out.iter().enumerate() {
            let want = cpu::vec_dot(ty, n, &w[r * rb..(r + 1) * rb], &a);
            assert_eq!(o.to_bits(), want.to_bits(), "{ty} row {r}");
        }
    }
}

/// Hand-checkable values: integer-valued blocks whose dot product is exact in f32.
#[test]
fn vec_dot_exact_small_cases() {
    // F32: Σ i·(-1)^i for i < 64 is -32.
    let n = 64;
    let x: Vec<f32> = (0..n)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let w: Vec<u8> = (0..n)
        .flat_map(|i| (i as f32).to_le_bytes())
        .collect::<Vec<u8>>();
    let mut a = vec![0u8; n * 4];
    quantize_row(GgmlType::F32, &x, &mut a).unwrap();
    assert_eq!(cpu::vec_dot(GgmlType::F32, n, &w, &a), -32.0);

    // A Q4_0 row with d = 1 and every nibble 9 (value +1) against Q8_0 activations of x = ±1
    // (amax 1, d = 1/127 rounded to f16, q = ±127): Σ = 0 exactly.
    let mut q4 = vec![0u8; 2 * 18];
    for b in q4.chunks_exact_mut(18) {
        b[..2].copy_from_slice(&half::f16::from_f32(1.0).to_le_bytes());
        b[2..].fill(0x99);
    }
    let mut a8 = vec![0u8; 2 * 34];
    quantize_row(GgmlType::Q8_0, &x, &mut a8).unwrap();
    assert_eq!(cpu::vec_dot(GgmlType::Q4_0, n, &q4, &a8), 0.0);
    // All +1 activations: 64 · 127 · f16(1/127).
    let ones = vec![1f32; n];
    quantize_row(GgmlType::Q8_0, &ones, &mut a8).unwrap();
    let d = f16_to_f32(u16::from_le_bytes([a8[0], a8[1]]));
    let want = 2.0 * ((32.0 * 127.0) * 1.0 * d);
    assert_eq!(cpu::vec_dot(GgmlType::Q4_0, n, &q4, &a8), want);
}

// -------------------------------------------------------------------------------------------------
// Edge cases
// -------------------------------------------------------------------------------------------------

fn is_invalid<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(Error::InvalidArgument(_)))
}

#[test]
fn wrong_lengths_are_errors_not_panics() {
    for ty in WEIGHT_TYPES {
        let bs = ty.block_size();
        let n = 2 * bs.max(32);
        let rb = row_bytes(ty, n);
        let w = vec![0u8; rb + 1];
        let mut out = vec![0f32; n];
        assert!(
            is_invalid(dequantize_row(ty, &w[..rb - 1], &mut out)),
            "{ty}"
        );
        assert!(is_invalid(dequantize_row(ty, &w, &mut out)), "{ty}");
        if bs > 1 {
            assert!(
                is_invalid(dequantize_row(ty, &w[..rb], &mut out[..n - 1])),
                "{ty}"
            );
        }
        let act = vec_dot_type(ty);
        let ab = row_bytes(act, n);
        let a = vec![0u8; ab + 1];
        let x = vec![0.5f32; n];
        assert!(
            is_invalid(quantize_row(act, &x, &mut vec![0u8; ab + 1])),
            "{act}"
        );
        assert!(
            is_invalid(quantize_row(act, &x, &mut vec![0u8; ab - 1])),
            "{act}"
        );
        if act.block_size() > 1 {
            assert!(
                is_invalid(quantize_row(act, &x[..n - 1], &mut vec![0u8; ab])),
                "{act}"
            );
        }
        assert!(
            is_invalid(cpu::vec_dot_checked(ty, n, &w, &a[..ab])),
            "{ty}"
        );
        assert!(
            is_invalid(cpu::vec_dot_checked(ty, n, &w[..rb], &a)),
            "{ty}"
        );
        if bs > 1 {
            assert!(
                is_invalid(cpu::vec_dot_checked(ty, n - 1, &w[..rb], &a[..ab])),
                "{ty}"
            );
        }
        let mut out2 = [0f32; 2];
        assert!(is_invalid(cpu::matmul_rows(
            ty,
            &w,
            1,
            n,
            &a[..ab],
            &mut out2[..1]
        )));
        assert!(is_invalid(cpu::matmul_rows(
            ty,
            &w[..rb],
            2,
            n,
            &a[..ab],
            &mut out2
        )));
        assert!(is_invalid(cpu::matmul_rows(
            ty,
            &w[..rb],
            1,
            n,
            &a[..ab],
            &mut out2
        )));
    }
    // Types without kernels are Unsupported, not panics.
    for ty in [GgmlType::IQ2_XXS, GgmlType::I32, GgmlType::MXFP4] {
        let n = 256;
        let mut out = vec![0f32; n];
        let w = vec![0u8; row_bytes(ty, n)];
        assert!(matches!(
            dequantize_row(ty, &w, &mut out),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            cpu::vec_dot_checked(ty, n, &w, &[0u8; 1024]),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            quantize_row(ty, &out, &mut vec![0u8; row_bytes(ty, n)]),
            Err(Error::Unsupported(_))
        ));
    }
}

#[test]
fn zero_length_rows_are_fine() {
    for ty in WEIGHT_TYPES {
        dequantize_row(ty, &[], &mut []).unwrap();
        let act = vec_dot_type(ty);
        quantize_row(act, &[], &mut []).unwrap();
        assert_eq!(cpu::vec_dot(ty, 0, &[], &[]), 0.0, "{ty}");
        assert_eq!(cpu::vec_dot_checked(ty, 0, &[], &[]).unwrap(), 0.0, "{ty}");
        cpu::matmul_rows(ty, &[], 0, 0, &[], &mut []).unwrap();
    }
}

#[test]
fn zero_weights_or_activations_give_zero() {
    let mut rng = XorShift(99);
    for ty in WEIGHT_TYPES {
        let n = if ty.block_size() == 1 {
            64
        } else {
            2 * ty.block_size()
        };
        let act = vec_dot_type(ty);
        // Zero activations against random weights.
        let w = random_weights(ty, n, &mut rng, 0.02);
        let mut a = vec![0u8; row_bytes(act, n)];
        quantize_row(act, &vec![0f32; n], &mut a).unwrap();
        assert_eq!(cpu::vec_dot(ty, n, &w, &a), 0.0, "{ty}");
        // All-zero weight bytes (scales 0) against random activations.
        let x: Vec<f32> = (0..n).map(|_| activation(&mut rng, 1.0)).collect();
        quantize_row(act, &x, &mut a).unwrap();
        assert_eq!(
            cpu::vec_dot(ty, n, &vec![0u8; row_bytes(ty, n)], &a),
            0.0,
            "{ty}"
        );
    }
}
