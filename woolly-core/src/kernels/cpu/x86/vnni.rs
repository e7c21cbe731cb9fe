//! AVX-512 VNNI dot products (256-bit `vpdpbusd` via AVX-512VL) for the quant types of the
//! default model: one instruction per 32 byte products where AVX2 needs `vpmaddubsw` then
//! `vpmaddwd`. Same exact integer sums as the scalar twins.

use std::arch::x86_64::*;

use super::super::VecDotFn;
use super::avx2::{
    f16_at, f32_at, hsum_ps, load256, nblocks, nibbles_32, q5_0_values, q6_k_half, q8k_mins_sum,
};
use crate::gguf::{GgmlType, QK_K};
use crate::quant::blocks::{
    k4_scales_mins, BlockQ4K, BlockQ4_0, BlockQ5_0, BlockQ6K, BlockQ8K, BlockQ8_0, QK,
};

pub(super) fn kernel(ty: GgmlType) -> Option<VecDotFn> {
    use GgmlType::*;
    Some(match ty {
        Q4_0 => dot_q4_0,
        Q5_0 => dot_q5_0,
        Q8_0 => dot_q8_0,
        Q4_K => dot_q4_k,
        Q6_K => dot_q6_k,
        _ => return None,
    })
}

// Safety: handed out only after `Features::detect` found AVX2, FMA, F16C, AVX-512F/BW/VL and
// VNNI; `nblocks` keeps every read inside the slices.

fn dot_q4_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = nblocks(n, QK, w, BlockQ4_0::SIZE, a, BlockQ8_0::SIZE);
    unsafe { q4_0(nb, w.as_ptr(), a.as_ptr()) }
}
fn dot_q5_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = nblocks(n, QK, w, BlockQ5_0::SIZE, a, BlockQ8_0::SIZE);
    unsafe { q5_0(nb, w.as_ptr(), a.as_ptr()) }
}
fn dot_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = nblocks(n, QK, w, BlockQ8_0::SIZE, a, BlockQ8_0::SIZE);
    unsafe { q8_0(nb, w.as_ptr(), a.as_ptr()) }
}
fn dot_q4_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = nblocks(n, QK_K, w, BlockQ4K::SIZE, a, BlockQ8K::SIZE);
    unsafe { q4_k(nb, w.as_ptr(), a.as_ptr()) }
}
fn dot_q6_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = nblocks(n, QK_K, w, BlockQ6K::SIZE, a, BlockQ8K::SIZE);
    unsafe { q6_k(nb, w.as_ptr(), a.as_ptr()) }
}

/// Σ x·y of signed bytes in groups of four, through the sign trick.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot_i8(x: __m256i, y: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(
        _mm256_setzero_si256(),
        _mm256_sign_epi8(x, x),
        _mm256_sign_epi8(y, x),
    )
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_0(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let off8 = _mm256_set1_epi8(8);
    for i in 0..nb {
        let x = w.add(i * BlockQ4_0::SIZE);
        let y = a.add(i * BlockQ8_0::SIZE);
        let d = _mm256_set1_ps(f16_at(x) * f16_at(y));
        let qx = _mm256_sub_epi8(nibbles_32(x.add(BlockQ4_0::QS)), off8);
        let s = dot_i8(qx, load256(y.add(BlockQ8_0::QS)));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    hsum_ps(acc)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q5_0(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        let x = w.add(i * BlockQ5_0::SIZE);
        let y = a.add(i * BlockQ8_0::SIZE);
        let d = _mm256_set1_ps(f16_at(x.add(BlockQ5_0::D)) * f16_at(y));
        let s = dot_i8(q5_0_values(x), load256(y.add(BlockQ8_0::QS)));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
    }
    hsum_ps(acc)
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q8_0(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 2];
    for i in 0..nb {
        let x = w.add(i * BlockQ8_0::SIZE);
        let y = a.add(i * BlockQ8_0::SIZE);
        let d = _mm256_set1_ps(f16_at(x) * f16_at(y));
        let s = dot_i8(load256(x.add(BlockQ8_0::QS)), load256(y.add(BlockQ8_0::QS)));
        acc[i & 1] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc[i & 1]);
    }
    hsum_ps(_mm256_add_ps(acc[0], acc[1]))
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_k(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins_total = 0f32;
    let m4 = _mm256_set1_epi8(0x0f);
    for i in 0..nb {
        let x = w.add(i * BlockQ4K::SIZE);
        let y = a.add(i * BlockQ8K::SIZE);
        let (sc, mn) = k4_scales_mins(&*(x.add(BlockQ4K::SCALES) as *const [u8; 12]));
        let dy = f32_at(y.add(BlockQ8K::D));
        mins_total += f16_at(x.add(BlockQ4K::DMIN)) * dy * q8k_mins_sum(y, &mn) as f32;
        let qs = x.add(BlockQ4K::QS);
        let q8 = y.add(BlockQ8K::QS);
        let mut sumi = _mm256_setzero_si256();
        for c in 0..4 {
            let q4 = load256(qs.add(32 * c));
            let lo = _mm256_and_si256(q4, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            let p_lo = _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, load256(q8.add(64 * c)));
            let p_hi =
                _mm256_dpbusd_epi32(_mm256_setzero_si256(), hi, load256(q8.add(64 * c + 32)));
            let p_lo = _mm256_mullo_epi32(p_lo, _mm256_set1_epi32(sc[2 * c] as i32));
            let p_hi = _mm256_mullo_epi32(p_hi, _mm256_set1_epi32(sc[2 * c + 1] as i32));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
        }
        let d = _mm256_set1_ps(f16_at(x.add(BlockQ4K::D)) * dy);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc) - mins_total
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q6_k(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let m32 = _mm256_set1_epi8(32);
    for i in 0..nb {
        let x = w.add(i * BlockQ6K::SIZE);
        let y = a.add(i * BlockQ8K::SIZE);
        let sc = x.add(BlockQ6K::SCALES) as *const i8;
        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            let q = q6_k_half(x.add(BlockQ6K::QL + 64 * h), x.add(BlockQ6K::QH + 32 * h));
            for (g, qg) in q.iter().enumerate() {
                let y8 = load256(y.add(BlockQ8K::QS + 128 * h + 32 * g));
                let p = _mm256_sub_epi32(
                    _mm256_dpbusd_epi32(_mm256_setzero_si256(), *qg, y8),
                    _mm256_dpbusd_epi32(_mm256_setzero_si256(), m32, y8),
                );
                let s0 = *sc.add(8 * h + 2 * g) as i32;
                let s1 = *sc.add(8 * h + 2 * g + 1) as i32;
                let scale = _mm256_set_m128i(_mm_set1_epi32(s1), _mm_set1_epi32(s0));
                sumi = _mm256_add_epi32(sumi, _mm256_mullo_epi32(p, scale));
            }
        }
        let d = _mm256_set1_ps(f16_at(x.add(BlockQ6K::D)) * f32_at(y.add(BlockQ8K::D)));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc)
}
