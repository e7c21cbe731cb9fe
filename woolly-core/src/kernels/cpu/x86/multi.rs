//! One Q8_0 weight row against several Q8_0 activation rows (prompt processing): the weight
//! block is loaded and its absolute value taken once for four tokens.

use std::arch::x86_64::*;

use super::avx2::{f16_at, hsum_ps, load256};
use crate::quant::blocks::{BlockQ8_0, QK};

/// `out[t] = w · a_t`, `a_t` at `a[t * stride..]`, for `out.len()` tokens. The caller guarantees
/// (checked here) that every row holds `n / 32` whole blocks.
pub fn q8_0_multi(n: usize, w: &[u8], a: &[u8], stride: usize, out: &mut [f32], vnni: bool) {
    let nb = n / QK;
    let ntok = out.len();
    assert!(w.len() >= nb * BlockQ8_0::SIZE);
    assert!(ntok == 0 || a.len() >= (ntok - 1) * stride + nb * BlockQ8_0::SIZE);
    // Safety: the asserts keep every read inside the slices; the kernels were selected after
    // feature detection (`vnni` only when AVX-512 VNNI is present).
    unsafe {
        if vnni {
            q8_0_multi_vnni(nb, w.as_ptr(), a.as_ptr(), stride, out);
        } else {
            q8_0_multi_avx2(nb, w.as_ptr(), a.as_ptr(), stride, out);
        }
    }
}

macro_rules! multi_body {
    ($nb:expr, $w:expr, $a:expr, $stride:expr, $out:expr, $dot:expr) => {{
        let (nb, w, a, stride, out) = ($nb, $w, $a, $stride, $out);
        let ntok = out.len();
        let mut t = 0;
        while t + 4 <= ntok {
            let mut acc = [_mm256_setzero_ps(); 4];
            for b in 0..nb {
                let xb = w.add(b * BlockQ8_0::SIZE);
                let x = load256(xb.add(BlockQ8_0::QS));
                let ax = _mm256_sign_epi8(x, x);
                let dx = f16_at(xb);
                for (k, acc_k) in acc.iter_mut().enumerate() {
                    let yb = a.add((t + k) * stride + b * BlockQ8_0::SIZE);
                    let sy = _mm256_sign_epi8(load256(yb.add(BlockQ8_0::QS)), x);
                    let s = $dot(ax, sy);
                    let d = _mm256_set1_ps(dx * f16_at(yb));
                    *acc_k = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), *acc_k);
                }
            }
            for k in 0..4 {
                out[t + k] = hsum_ps(acc[k]);
            }
            t += 4;
        }
        while t < ntok {
            let mut acc = _mm256_setzero_ps();
            for b in 0..nb {
                let xb = w.add(b * BlockQ8_0::SIZE);
                let yb = a.add(t * stride + b * BlockQ8_0::SIZE);
                let x = load256(xb.add(BlockQ8_0::QS));
                let sy = _mm256_sign_epi8(load256(yb.add(BlockQ8_0::QS)), x);
                let s = $dot(_mm256_sign_epi8(x, x), sy);
                let d = _mm256_set1_ps(f16_at(xb) * f16_at(yb));
                acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
            }
            out[t] = hsum_ps(acc);
            t += 1;
        }
    }};
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_multi_avx2(nb: usize, w: *const u8, a: *const u8, stride: usize, out: &mut [f32]) {
    let ones = _mm256_set1_epi16(1);
    multi_body!(nb, w, a, stride, out, |ax, sy| _mm256_madd_epi16(
        _mm256_maddubs_epi16(ax, sy),
        ones
    ))
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q8_0_multi_vnni(nb: usize, w: *const u8, a: *const u8, stride: usize, out: &mut [f32]) {
    multi_body!(nb, w, a, stride, out, |ax, sy| _mm256_dpbusd_epi32(
        _mm256_setzero_si256(),
        ax,
        sy
    ))
}

/// `out[k] = w_k · a` for four Q8_0 weight rows `w_k` starting `stride` bytes apart in `w`, against
/// one Q8_0 activation row (token generation): the activation block and its scale are loaded
/// once for the four rows, and the four accumulations run as independent chains.
pub fn q8_0_rows4(n: usize, w: &[u8], stride: usize, a: &[u8], out: &mut [f32; 4], vnni: bool) {
    let nb = n / QK;
    assert!(a.len() >= nb * BlockQ8_0::SIZE);
    assert!(w.len() >= 3 * stride + nb * BlockQ8_0::SIZE);
    // Safety: as for `q8_0_multi`.
    unsafe {
        if vnni {
            q8_0_rows4_vnni(nb, w.as_ptr(), stride, a.as_ptr(), out);
        } else {
            q8_0_rows4_avx2(nb, w.as_ptr(), stride, a.as_ptr(), out);
        }
    }
}

macro_rules! rows4_body {
    ($nb:expr, $w:expr, $stride:expr, $a:expr, $out:expr, $dot:expr) => {{
        let (nb, w, stride, a, out) = ($nb, $w, $stride, $a, $out);
        let mut acc = [_mm256_setzero_ps(); 4];
        for b in 0..nb {
            let yb = a.add(b * BlockQ8_0::SIZE);
            let y = load256(yb.add(BlockQ8_0::QS));
            let dy = f16_at(yb);
            for (k, acc_k) in acc.iter_mut().enumerate() {
                let xb = w.add(k * stride + b * BlockQ8_0::SIZE);
                let x = load256(xb.add(BlockQ8_0::QS));
                let s = $dot(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
                let d = _mm256_set1_ps(f16_at(xb) * dy);
                *acc_k = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), *acc_k);
            }
        }
        for k in 0..4 {
            out[k] = hsum_ps(acc[k]);
        }
    }};
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_rows4_avx2(
    nb: usize,
    w: *const u8,
    stride: usize,
    a: *const u8,
    out: &mut [f32; 4],
) {
    let ones = _mm256_set1_epi16(1);
    rows4_body!(nb, w, stride, a, out, |ax, sy| _mm256_madd_epi16(
        _mm256_maddubs_epi16(ax, sy),
        ones
    ))
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q8_0_rows4_vnni(
    nb: usize,
    w: *const u8,
    stride: usize,
    a: *const u8,
    out: &mut [f32; 4],
) {
    rows4_body!(nb, w, stride, a, out, |ax, sy| _mm256_dpbusd_epi32(
        _mm256_setzero_si256(),
        ax,
        sy
    ))
}
