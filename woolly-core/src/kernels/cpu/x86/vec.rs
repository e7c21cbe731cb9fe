//! AVX2 + FMA + F16C float vector operations for attention and the element-wise ops.

use std::arch::x86_64::*;

use super::avx2::hsum_ps;
use crate::kernels::cpu::scalar::vec as scalar_vec;

/// Σ a·b.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    // Safety: handed out only after AVX2/FMA/F16C were detected; reads stay below `n`.
    unsafe { dot_impl(n, a.as_ptr(), b.as_ptr()) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_impl(n: usize, a: *const f32, b: *const f32) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, s) in acc.iter_mut().enumerate() {
            *s = _mm256_fmadd_ps(
                _mm256_loadu_ps(a.add(i + 8 * k)),
                _mm256_loadu_ps(b.add(i + 8 * k)),
                *s,
            );
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(a.add(i)), _mm256_loadu_ps(b.add(i)), acc[0]);
        i += 8;
    }
    let mut sum = hsum_ps(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ));
    while i < n {
        sum += *a.add(i) * *b.add(i);
        i += 1;
    }
    sum
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn round_f16(v: __m256) -> __m256 {
    _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v))
}

/// `acc[i] = f16(acc[i] · s)`.
pub fn f16_scale(acc: &mut [f32], s: f32) {
    // Safety: as for `dot`; writes stay inside `acc`.
    unsafe { f16_scale_impl(acc, s) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_scale_impl(acc: &mut [f32], s: f32) {
    let n = acc.len();
    let p = acc.as_mut_ptr();
    let vs = _mm256_set1_ps(s);
    let mut i = 0;
    while i + 8 <= n {
        _mm256_storeu_ps(
            p.add(i),
            round_f16(_mm256_mul_ps(_mm256_loadu_ps(p.add(i)), vs)),
        );
        i += 8;
    }
    for x in &mut acc[i..] {
        *x = half::f16::from_f32(*x * s).to_f32();
    }
}

/// `acc[i] = f16(acc[i] + v[i] · w)`.
pub fn f16_axpy(acc: &mut [f32], v: &[f32], w: f32) {
    let n = acc.len().min(v.len());
    // Safety: as for `dot`; reads and writes stay below `n`.
    unsafe { f16_axpy_impl(&mut acc[..n], &v[..n], w) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_axpy_impl(acc: &mut [f32], v: &[f32], w: f32) {
    let n = acc.len();
    let p = acc.as_mut_ptr();
    let q = v.as_ptr();
    let vw = _mm256_set1_ps(w);
    let mut i = 0;
    while i + 8 <= n {
        let r = _mm256_fmadd_ps(_mm256_loadu_ps(q.add(i)), vw, _mm256_loadu_ps(p.add(i)));
        _mm256_storeu_ps(p.add(i), round_f16(r));
        i += 8;
    }
    for (x, &y) in acc[i..].iter_mut().zip(&v[i..]) {
        *x = half::f16::from_f32(y.mul_add(w, *x)).to_f32();
    }
}

/// Rounds every element to the nearest f16 (as an f16 KV cache stores it).
pub fn round_to_f16(x: &mut [f32]) {
    // Safety: as for `dot`.
    unsafe { round_to_f16_impl(x) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn round_to_f16_impl(x: &mut [f32]) {
    let n = x.len();
    let p = x.as_mut_ptr();
    let mut i = 0;
    while i + 8 <= n {
        _mm256_storeu_ps(p.add(i), round_f16(_mm256_loadu_ps(p.add(i))));
        i += 8;
    }
    for v in &mut x[i..] {
        *v = half::f16::from_f32(*v).to_f32();
    }
}

/// `c[i][j] += Σ_kk a[i][kk] · b[kk][j]` for row-major `c` (m × n), `a` (m × k), `b` (k × n),
/// each element a sequential chain of fused multiply-adds over `kk` (bit-identical to the
/// scalar twin). Falls back to the scalar twin when `n` is not a multiple of 16.
pub fn gemm_acc(c: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize) {
    assert!(c.len() >= m * n && a.len() >= m * k && b.len() >= k * n);
    if !n.is_multiple_of(16) {
        return scalar_vec::gemm_acc(c, a, b, m, k, n);
    }
    // Safety: the assert keeps every access in bounds; AVX2/FMA were detected by the dispatch.
    unsafe { gemm_acc_impl(c.as_mut_ptr(), a.as_ptr(), b.as_ptr(), m, k, n) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn gemm_acc_impl(c: *mut f32, a: *const f32, b: *const f32, m: usize, k: usize, n: usize) {
    let mut i = 0;
    while i < m {
        let rows = (m - i).min(4);
        let mut j = 0;
        while j < n {
            // A block of up to 4 rows × 16 columns of `c` in registers.
            let mut acc = [[_mm256_setzero_ps(); 2]; 4];
            for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
                acc_r[0] = _mm256_loadu_ps(c.add((i + r) * n + j));
                acc_r[1] = _mm256_loadu_ps(c.add((i + r) * n + j + 8));
            }
            for kk in 0..k {
                let b0 = _mm256_loadu_ps(b.add(kk * n + j));
                let b1 = _mm256_loadu_ps(b.add(kk * n + j + 8));
                for (r, acc_r) in acc.iter_mut().enumerate().take(rows) {
                    let p = _mm256_set1_ps(*a.add((i + r) * k + kk));
                    acc_r[0] = _mm256_fmadd_ps(b0, p, acc_r[0]);
                    acc_r[1] = _mm256_fmadd_ps(b1, p, acc_r[1]);
                }
            }
            for (r, acc_r) in acc.iter().enumerate().take(rows) {
                _mm256_storeu_ps(c.add((i + r) * n + j), acc_r[0]);
                _mm256_storeu_ps(c.add((i + r) * n + j + 8), acc_r[1]);
            }
            j += 16;
        }
        i += rows;
    }
}
