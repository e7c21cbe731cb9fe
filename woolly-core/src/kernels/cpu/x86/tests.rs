//! Every x86 kernel against its scalar twin on random rows (property tests with a fixed seed per
//! case, many cases).

use super::*;
use crate::kernels::cpu::scalar;
use crate::quant::{dequantize_row, quantize_row, vec_dot_type};
use crate::testing::{random_weights, scale_fields, XorShift};

/// Checks every SIMD kernel this CPU has for `ty` against the scalar one.
pub(super) fn check_type(ty: GgmlType, cases: usize) {
    let Some(reference) = scalar::kernel(ty) else {
        return;
    };
    let kernels = all_kernels(ty);
    let mut rng = XorShift(0x9e3779b97f4a7c15 ^ ty as u64);
    let bs = ty.block_size();
    let act = vec_dot_type(ty);
    for case in 0..cases {
        let nblocks = 1 + case % 8;
        let n = nblocks * if bs == 1 { 32 } else { bs } + if bs == 1 { case % 7 } else { 0 };
        let mut w = random_weights(ty, n, &mut rng, 0.01);
        let mut x: Vec<f32> = (0..n).map(|_| rng.next_f32()).collect();
        if case < 16 && bs > 1 {
            // Extremes: every quant bit set (or clear) against activations at ±127, which
            // pushes the 16-bit pair sums to their limits.
            let ts = ty.type_size();
            let fill = if case % 2 == 0 { 0xff } else { 0x00 };
            for block in w.chunks_exact_mut(ts) {
                let saved: Vec<(usize, [u8; 2])> = scale_fields(ty)
                    .iter()
                    .map(|&o| (o, [block[o], block[o + 1]]))
                    .collect();
                block.fill(fill);
                for (o, v) in saved {
                    block[o..o + 2].copy_from_slice(&v);
                }
            }
            for (i, v) in x.iter_mut().enumerate() {
                *v = if (i + case / 2) % 3 == 0 { -1.0 } else { 1.0 };
            }
        }
        let mut a = vec![0u8; act.row_bytes(n as u64).unwrap() as usize];
        quantize_row(act, &x, &mut a).unwrap();
        let mut wd = vec![0f32; n];
        let mut ad = vec![0f32; n];
        dequantize_row(ty, &w, &mut wd).unwrap();
        dequantize_row(act, &a, &mut ad).unwrap();
        let scale: f64 = wd.iter().zip(&ad).map(|(p, q)| (p * q).abs() as f64).sum();
        let want = reference(n, &w, &a);
        for (name, k) in &kernels {
            let got = k(n, &w, &a);
            assert!(
                ((got - want) as f64).abs() <= 1e-5 * scale + 1e-6,
                "{ty} {name} case {case} (n {n}): {got} vs scalar {want}"
            );
            // Short operands: only the whole blocks present are read.
            if bs > 1 && nblocks > 1 {
                let half_w = &w[..w.len() / nblocks * (nblocks - 1)];
                let got = k(n, half_w, &a);
                let want = reference(n - bs, half_w, &a);
                assert!(
                    ((got - want) as f64).abs() <= 1e-5 * scale + 1e-6,
                    "{ty} {name} short row case {case}"
                );
            }
        }
    }
}

#[test]
fn simd_kernels_match_their_scalar_twins() {
    use GgmlType::*;
    for ty in [
        F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
    ] {
        check_type(ty, 300);
    }
}

#[test]
fn dispatch_prefers_simd_and_can_be_turned_off() {
    let f = Features::detect();
    if !f.avx2() {
        return;
    }
    let simd = crate::kernels::cpu::vec_dot_kernel(GgmlType::Q8_0).unwrap();
    assert_ne!(
        simd as usize,
        scalar::kernel(GgmlType::Q8_0).unwrap() as usize
    );
    assert_ne!(crate::kernels::cpu::simd_level(), "scalar");
}

#[test]
fn vector_ops_match_their_scalar_twins() {
    use crate::kernels::cpu::scalar::vec as scalar_vec;
    if !Features::detect().avx2() {
        return;
    }
    let mut rng = XorShift(42);
    for n in [0usize, 1, 7, 8, 31, 32, 33, 256, 259] {
        let a: Vec<f32> = (0..n).map(|_| rng.next_f32() * 4.0).collect();
        let b: Vec<f32> = (0..n).map(|_| rng.next_f32() * 4.0).collect();
        let scale: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
        assert!((vec::dot(&a, &b) - scalar_vec::dot(&a, &b)).abs() <= 1e-5 * scale + 1e-6);
        let w = rng.next_f32();
        let mut x1: Vec<f32> = a.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
        let mut x2 = x1.clone();
        vec::f16_axpy(&mut x1, &b, w);
        scalar_vec::f16_axpy(&mut x2, &b, w);
        assert_eq!(x1, x2, "axpy n {n}");
        vec::f16_scale(&mut x1, 0.37);
        scalar_vec::f16_scale(&mut x2, 0.37);
        assert_eq!(x1, x2, "scale n {n}");
        let mut y1 = a.clone();
        let mut y2 = a.clone();
        vec::round_to_f16(&mut y1);
        scalar_vec::round_to_f16(&mut y2);
        assert_eq!(y1, y2);
    }
}

/// Packed matrices give what the scalar kernel gives row by row, for one and several tokens.
#[test]
fn packed_products_match_the_scalar_kernels() {
    use crate::kernels::cpu::{q8_0_block_sums, PackedMatrix};
    if !Features::detect().avx2() {
        return;
    }
    let mut rng = XorShift(7);
    for ty in [GgmlType::Q8_0, GgmlType::Q5_0] {
        let reference = scalar::kernel(ty).unwrap();
        for (rows, cols, ntok) in [
            (8usize, 32usize, 1usize),
            (16, 64, 1),
            (24, 640, 3),
            (2048 + 8, 96, 5),
        ] {
            let data = random_weights(ty, rows * cols, &mut rng, 0.01);
            let rb = data.len() / rows;
            let mut released = 0;
            let p = PackedMatrix::new(ty, &data, rows, cols, |r| released += r.len()).unwrap();
            assert_eq!(released, data.len(), "every byte is reported copied once");
            let x: Vec<f32> = (0..cols * ntok).map(|_| rng.next_f32()).collect();
            let arb = cols / 32 * 34;
            let mut a = vec![0u8; arb * ntok];
            for t in 0..ntok {
                quantize_row(
                    GgmlType::Q8_0,
                    &x[t * cols..(t + 1) * cols],
                    &mut a[t * arb..(t + 1) * arb],
                )
                .unwrap();
            }
            let mut ysums = Vec::new();
            q8_0_block_sums(&a, ntok, arb, cols / 32, &mut ysums);
            // The first group alone, then the rest: token-major within each call.
            let mut first = vec![0f32; 8 * ntok];
            let mut rest = vec![0f32; (rows - 8) * ntok];
            p.gemm(&a, arb, ntok, &ysums, 0, &mut first);
            p.gemm(&a, arb, ntok, &ysums, 8, &mut rest);
            let mut out = vec![0f32; rows * ntok];
            for t in 0..ntok {
                for r in 0..rows {
                    out[r * ntok + t] = if r < 8 {
                        first[t * 8 + r]
                    } else {
                        rest[t * (rows - 8) + r - 8]
                    };
                }
            }
            for r in 0..rows {
                for t in 0..ntok {
                    let w = &data[r * rb..(r + 1) * rb];
                    let at = &a[t * arb..(t + 1) * arb];
                    let want = reference(cols, w, at);
                    let mut wd = vec![0f32; cols];
                    let mut ad = vec![0f32; cols];
                    dequantize_row(ty, w, &mut wd).unwrap();
                    dequantize_row(GgmlType::Q8_0, at, &mut ad).unwrap();
                    let scale: f64 = wd.iter().zip(&ad).map(|(p, q)| (p * q).abs() as f64).sum();
                    let got = out[r * ntok + t];
                    assert!(
                        ((got - want) as f64).abs() <= 1e-5 * scale + 1e-6,
                        "{ty} rows {rows} cols {cols} row {r} token {t}: {got} vs {want}"
                    );
                }
            }
        }
    }
    // Shapes without a packed layout.
    assert!(PackedMatrix::new(GgmlType::Q8_0, &[0u8; 34 * 4], 4, 32, |_| {}).is_none());
    assert!(PackedMatrix::new(GgmlType::Q4_K, &[0u8; 144 * 8], 8, 256, |_| {}).is_none());
}

/// The multi-token products (prompt processing) give what the scalar kernel gives per token.
#[test]
fn multi_token_products_match_the_scalar_kernels() {
    use crate::kernels::cpu::dot_multi;
    let mut rng = XorShift(99);
    for ty in [
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q5_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::Q5_K,
        GgmlType::F16,
    ] {
        let reference = scalar::kernel(ty).unwrap();
        let act = vec_dot_type(ty);
        for (nblocks, ntok) in [(1usize, 1usize), (2, 4), (3, 7), (1, 9)] {
            let n = nblocks * 256;
            let w = random_weights(ty, n, &mut rng, 0.01);
            let arb = act.row_bytes(n as u64).unwrap() as usize;
            let mut a = vec![0u8; arb * ntok];
            for t in 0..ntok {
                let x: Vec<f32> = (0..n).map(|_| rng.next_f32()).collect();
                quantize_row(act, &x, &mut a[t * arb..(t + 1) * arb]).unwrap();
            }
            let mut out = vec![0f32; ntok];
            let mut scratch = Vec::new();
            dot_multi(ty, n, &w, &a, arb, &mut out, &mut scratch);
            for t in 0..ntok {
                let at = &a[t * arb..(t + 1) * arb];
                let want = reference(n, &w, at);
                let mut wd = vec![0f32; n];
                let mut ad = vec![0f32; n];
                dequantize_row(ty, &w, &mut wd).unwrap();
                dequantize_row(act, at, &mut ad).unwrap();
                let scale: f64 = wd.iter().zip(&ad).map(|(p, q)| (p * q).abs() as f64).sum();
                assert!(
                    ((out[t] - want) as f64).abs() <= 1e-5 * scale + 1e-6,
                    "{ty} blocks {nblocks} token {t}/{ntok}: {} vs {want}",
                    out[t]
                );
            }
        }
    }
}

#[test]
fn simd_quantizers_agree_with_the_reference() {
    if !Features::detect().avx2() {
        return;
    }
    let mut rng = XorShift(5);
    for case in 0..200 {
        let n = 256 * (1 + case % 3);
        let scale = [1e-3f32, 1.0, 50.0][case % 3];
        let mut x: Vec<f32> = (0..n).map(|_| rng.next_f32() * scale).collect();
        if case % 7 == 0 {
            x[..32].fill(0.0); // an all-zero Q8_0 block
        }
        if case % 11 == 0 {
            // Ties between +amax and -amax: the first one wins.
            x[3] = -scale * 2.0;
            x[200] = scale * 2.0;
        }
        // Q8_K: bit for bit.
        let mut want = vec![0u8; n / 256 * 292];
        let mut got = vec![0u8; n / 256 * 292];
        quantize_row(GgmlType::Q8_K, &x, &mut want).unwrap();
        quantize::q8_k(&x, &mut got);
        assert_eq!(got, want, "Q8_K case {case}");
        // Q8_0: same scales, quants within one step.
        let mut want = vec![0u8; n / 32 * 34];
        let mut got = vec![0u8; n / 32 * 34];
        quantize_row(GgmlType::Q8_0, &x, &mut want).unwrap();
        quantize::q8_0(&x, &mut got);
        for (b, (g, w)) in got.chunks(34).zip(want.chunks(34)).enumerate() {
            assert_eq!(g[..2], w[..2], "Q8_0 scale, case {case} block {b}");
            for (j, (&q1, &q2)) in g[2..].iter().zip(&w[2..]).enumerate() {
                let diff = (q1 as i8 as i32 - q2 as i8 as i32).abs();
                assert!(diff <= 1, "case {case} block {b} quant {j}: {q1} vs {q2}");
            }
        }
    }
}

#[test]
fn gemm_acc_is_bit_identical_to_its_scalar_twin() {
    use crate::kernels::cpu::scalar::vec as scalar_vec;
    if !Features::detect().avx2() {
        return;
    }
    let mut rng = XorShift(77);
    for (m, k, n) in [
        (1usize, 1usize, 16usize),
        (5, 7, 32),
        (64, 256, 64),
        (3, 64, 256),
        (2, 3, 12),
    ] {
        let a: Vec<f32> = (0..m * k).map(|_| rng.next_f32()).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.next_f32()).collect();
        let c0: Vec<f32> = (0..m * n).map(|_| rng.next_f32()).collect();
        let mut c1 = c0.clone();
        let mut c2 = c0.clone();
        vec::gemm_acc(&mut c1, &a, &b, m, k, n);
        scalar_vec::gemm_acc(&mut c2, &a, &b, m, k, n);
        assert_eq!(c1, c2, "{m}x{k}x{n}");
    }
}
