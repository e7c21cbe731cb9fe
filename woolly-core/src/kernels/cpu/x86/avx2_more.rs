//! AVX2 + FMA + F16C dot products for the weight types the default model does not use: Q4_1,
//! Q5_1 (against Q8_1), Q2_K, Q3_K, Q5_K (against Q8_K) and BF16. Same exact integer sums as
//! the scalar twins; only the float accumulation order differs.

use std::arch::x86_64::*;

use super::super::VecDotFn;
use super::avx2::{
    bytes_from_bits, f16_at, f32_at, hsum_ps, load256, nblocks, nibbles_32, q8k_mins_sum,
};
use crate::gguf::{GgmlType, QK_K};
use crate::quant::blocks::{
    k4_scales_mins, q3_k_scales, BlockQ2K, BlockQ3K, BlockQ4_1, BlockQ5K, BlockQ5_1, BlockQ8K,
    BlockQ8_1, QK,
};

pub(super) fn kernel(ty: GgmlType) -> Option<VecDotFn> {
    use GgmlType::*;
    Some(match ty {
        Q4_1 => dot_q4_1,
        Q5_1 => dot_q5_1,
        Q2_K => dot_q2_k,
        Q3_K => dot_q3_k,
        Q5_K => dot_q5_k,
        BF16 => dot_bf16,
        _ => return None,
    })
}

// Safety of the wrappers: `kernel` hands them out only after AVX2, FMA and F16C were detected,
// and `nblocks` (or the length clamp) keeps every read inside the slices.

fn dot_q4_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = nblocks(n, QK, w, BlockQ4_1::SIZE, a, BlockQ8_1::SIZE);
    unsafe { legacy_1::<false>(nb, w.as_ptr(), a.as_ptr()) }
}
fn dot_q5_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = nblocks(n, QK, w, BlockQ5_1::SIZE, a, BlockQ8_1::SIZE);
    unsafe { legacy_1::<true>(nb, w.as_ptr(), a.as_ptr()) }
}
fn dot_q2_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = nblocks(n, QK_K, w, BlockQ2K::SIZE, a, BlockQ8K::SIZE);
    unsafe { q2_k(nb, w.as_ptr(), a.as_ptr()) }
}
fn dot_q3_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = nblocks(n, QK_K, w, BlockQ3K::SIZE, a, BlockQ8K::SIZE);
    unsafe { q3_k(nb, w.as_ptr(), a.as_ptr()) }
}
fn dot_q5_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = nblocks(n, QK_K, w, BlockQ5K::SIZE, a, BlockQ8K::SIZE);
    unsafe { q5_k(nb, w.as_ptr(), a.as_ptr()) }
}
fn dot_bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let n = n.min(w.len() / 2).min(a.len() / 2);
    unsafe { bf16_dot(n, w.as_ptr(), a.as_ptr()) }
}

/// Σ u·y for unsigned bytes `u` (< 128) and signed `y`, as eight i32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mul_sum_u8_i8(u: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), _mm256_set1_epi16(1))
}

/// Q4_1 (`FIVE = false`) or Q5_1 against Q8_1: `(dx·dy)·Σ q·y + mx·sy` per block.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn legacy_1<const FIVE: bool>(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let (size, d_off, m_off, qs_off) = if FIVE {
        (BlockQ5_1::SIZE, BlockQ5_1::D, BlockQ5_1::M, BlockQ5_1::QS)
    } else {
        (BlockQ4_1::SIZE, BlockQ4_1::D, BlockQ4_1::M, BlockQ4_1::QS)
    };
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0f32;
    for i in 0..nb {
        let x = w.add(i * size);
        let y = a.add(i * BlockQ8_1::SIZE);
        let mut u = nibbles_32(x.add(qs_off));
        if FIVE {
            let qh = u32::from_le_bytes([
                *x.add(BlockQ5_1::QH),
                *x.add(BlockQ5_1::QH + 1),
                *x.add(BlockQ5_1::QH + 2),
                *x.add(BlockQ5_1::QH + 3),
            ]);
            let hi = _mm256_and_si256(bytes_from_bits(qh), _mm256_set1_epi8(0x10));
            u = _mm256_or_si256(u, hi);
        }
        let s = mul_sum_u8_i8(u, load256(y.add(BlockQ8_1::QS)));
        let d = _mm256_set1_ps(f16_at(x.add(d_off)) * f16_at(y.add(BlockQ8_1::D)));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
        mins += f16_at(x.add(m_off)) * f16_at(y.add(BlockQ8_1::S));
    }
    hsum_ps(acc) + mins
}

/// Per-16-element scales for one 32-element group: `lo` for its first 16, `hi` for the rest.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale_pair(lo: i16, hi: i16) -> __m256i {
    _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q2_k(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0f32;
    let m3 = _mm256_set1_epi8(3);
    for i in 0..nb {
        let x = w.add(i * BlockQ2K::SIZE);
        let y = a.add(i * BlockQ8K::SIZE);
        let sc = x.add(BlockQ2K::SCALES);
        let dy = f32_at(y.add(BlockQ8K::D));
        let mut summs = 0i32;
        for s in 0..16 {
            let b = y.add(BlockQ8K::BSUMS + 2 * s);
            summs += i16::from_le_bytes([*b, *b.add(1)]) as i32 * (*sc.add(s) >> 4) as i32;
        }
        let mut isum = _mm256_setzero_si256();
        for h in 0..2 {
            let q = load256(x.add(BlockQ2K::QS + 32 * h));
            for k in 0..4 {
                let v = match k {
                    0 => _mm256_and_si256(q, m3),
                    1 => _mm256_and_si256(_mm256_srli_epi16(q, 2), m3),
                    2 => _mm256_and_si256(_mm256_srli_epi16(q, 4), m3),
                    _ => _mm256_and_si256(_mm256_srli_epi16(q, 6), m3),
                };
                let s0 = 8 * h + 2 * k;
                let p = _mm256_maddubs_epi16(v, load256(y.add(BlockQ8K::QS + 128 * h + 32 * k)));
                let scales =
                    scale_pair((*sc.add(s0) & 0x0f) as i16, (*sc.add(s0 + 1) & 0x0f) as i16);
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, scales));
            }
        }
        let dall = _mm256_set1_ps(dy * f16_at(x.add(BlockQ2K::D)));
        acc = _mm256_fmadd_ps(dall, _mm256_cvtepi32_ps(isum), acc);
        mins += dy * f16_at(x.add(BlockQ2K::DMIN)) * summs as f32;
    }
    hsum_ps(acc) - mins
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q3_k(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let m3 = _mm256_set1_epi8(3);
    let one = _mm256_set1_epi8(1);
    for i in 0..nb {
        let x = w.add(i * BlockQ3K::SIZE);
        let y = a.add(i * BlockQ8K::SIZE);
        let scales = q3_k_scales(&*(x.add(BlockQ3K::SCALES) as *const [u8; 12]));
        let hm = load256(x.add(BlockQ3K::HMASK));
        // Values are u - 4 with u = low two bits | high bit << 2 (0..8): Σ (u - 4)·y per
        // sub-block is Σ u·y - 4·bsum.
        let mut corr = 0i32;
        for (s, &sc) in scales.iter().enumerate() {
            let b = y.add(BlockQ8K::BSUMS + 2 * s);
            corr += (sc as i32 - 32) * 4 * i16::from_le_bytes([*b, *b.add(1)]) as i32;
        }
        let mut isum = _mm256_setzero_si256();
        for h in 0..2 {
            let q = load256(x.add(BlockQ3K::QS + 32 * h));
            for k in 0..4 {
                let m = 4 * h + k;
                let low = match k {
                    0 => _mm256_and_si256(q, m3),
                    1 => _mm256_and_si256(_mm256_srli_epi16(q, 2), m3),
                    2 => _mm256_and_si256(_mm256_srli_epi16(q, 4), m3),
                    _ => _mm256_and_si256(_mm256_srli_epi16(q, 6), m3),
                };
                let hb = match m {
                    0 => hm,
                    1 => _mm256_srli_epi16(hm, 1),
                    2 => _mm256_srli_epi16(hm, 2),
                    3 => _mm256_srli_epi16(hm, 3),
                    4 => _mm256_srli_epi16(hm, 4),
                    5 => _mm256_srli_epi16(hm, 5),
                    6 => _mm256_srli_epi16(hm, 6),
                    _ => _mm256_srli_epi16(hm, 7),
                };
                let u = _mm256_or_si256(low, _mm256_slli_epi16(_mm256_and_si256(hb, one), 2));
                let p = _mm256_maddubs_epi16(u, load256(y.add(BlockQ8K::QS + 32 * m)));
                let s0 = 2 * m;
                let sp = scale_pair(scales[s0] as i16 - 32, scales[s0 + 1] as i16 - 32);
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, sp));
            }
        }
        let total = _mm256_sub_epi32(isum, _mm256_setr_epi32(corr, 0, 0, 0, 0, 0, 0, 0));
        let d = _mm256_set1_ps(f16_at(x.add(BlockQ3K::D)) * f32_at(y.add(BlockQ8K::D)));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(total), acc);
    }
    hsum_ps(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_k(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins_total = 0f32;
    let m4 = _mm256_set1_epi8(0x0f);
    let one = _mm256_set1_epi8(1);
    for i in 0..nb {
        let x = w.add(i * BlockQ5K::SIZE);
        let y = a.add(i * BlockQ8K::SIZE);
        let (sc, mn) = k4_scales_mins(&*(x.add(BlockQ5K::SCALES) as *const [u8; 12]));
        let dy = f32_at(y.add(BlockQ8K::D));
        mins_total += f16_at(x.add(BlockQ5K::DMIN)) * dy * q8k_mins_sum(y, &mn) as f32;
        let qh = load256(x.add(BlockQ5K::QH));
        let mut sumi = _mm256_setzero_si256();
        for c in 0..4 {
            let q = load256(x.add(BlockQ5K::QS + 32 * c));
            for half in 0..2 {
                let m = 2 * c + half;
                let nib = if half == 0 {
                    _mm256_and_si256(q, m4)
                } else {
                    _mm256_and_si256(_mm256_srli_epi16(q, 4), m4)
                };
                let hb = match m {
                    0 => qh,
                    1 => _mm256_srli_epi16(qh, 1),
                    2 => _mm256_srli_epi16(qh, 2),
                    3 => _mm256_srli_epi16(qh, 3),
                    4 => _mm256_srli_epi16(qh, 4),
                    5 => _mm256_srli_epi16(qh, 5),
                    6 => _mm256_srli_epi16(qh, 6),
                    _ => _mm256_srli_epi16(qh, 7),
                };
                let u = _mm256_or_si256(nib, _mm256_slli_epi16(_mm256_and_si256(hb, one), 4));
                let p = _mm256_maddubs_epi16(u, load256(y.add(BlockQ8K::QS + 32 * m)));
                sumi =
                    _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_set1_epi16(sc[m] as i16)));
            }
        }
        let d = _mm256_set1_ps(f16_at(x.add(BlockQ5K::D)) * dy);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc) - mins_total
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_dot(n: usize, w: *const u8, a: *const u8) -> f32 {
    let widen = |p: *const u8| {
        _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i)),
            16,
        ))
    };
    let mut acc = [_mm256_setzero_ps(); 2];
    let mut i = 0;
    while i + 16 <= n {
        for (k, s) in acc.iter_mut().enumerate() {
            let off = 2 * (i + 8 * k);
            *s = _mm256_fmadd_ps(widen(w.add(off)), widen(a.add(off)), *s);
        }
        i += 16;
    }
    let mut sum = hsum_ps(_mm256_add_ps(acc[0], acc[1]));
    let bf = |p: *const u8| f32::from_bits((u16::from_le_bytes([*p, *p.add(1)]) as u32) << 16);
    while i < n {
        sum += bf(w.add(2 * i)) * bf(a.add(2 * i));
        i += 1;
    }
    sum
}
