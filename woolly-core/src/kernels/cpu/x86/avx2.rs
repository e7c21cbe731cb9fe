//! AVX2 + FMA + F16C dot products for the float types and the quant types of the default model
//! (Q8_0, Q5_0, Q4_K, Q6_K), plus Q4_0.
//!
//! Integer products go through `vpmaddubsw` (unsigned × signed bytes to i16 pairs) and `vpmaddwd`
//! (to i32), exactly as the scalar twins' integer sums; signed × signed bytes use the sign trick
//! `|x| · sign(y, x)`, valid because activations never hold -128 (the quantizers clamp to ±127).

use std::arch::x86_64::*;

use super::super::VecDotFn;
use crate::gguf::{GgmlType, QK_K};
use crate::quant::blocks::{
    k4_scales_mins, BlockQ4K, BlockQ4_0, BlockQ5_0, BlockQ6K, BlockQ8K, BlockQ8_0, QK,
};

pub(super) fn kernel(ty: GgmlType) -> Option<VecDotFn> {
    use GgmlType::*;
    Some(match ty {
        F32 => dot_f32,
        F16 => dot_f16,
        Q4_0 => dot_q4_0,
        Q5_0 => dot_q5_0,
        Q8_0 => dot_q8_0,
        Q4_K => dot_q4_k,
        Q6_K => dot_q6_k,
        _ => return None,
    })
}

/// Whole blocks of `size` bytes covering `n / per` elements that both operands really hold.
#[inline(always)]
pub(super) fn nblocks(n: usize, per: usize, w: &[u8], ws: usize, a: &[u8], as_: usize) -> usize {
    (n / per).min(w.len() / ws).min(a.len() / as_)
}

// Safety of the wrappers below: `kernel` hands them out only after `Features::detect` found
// AVX2, FMA and F16C, and `nblocks` keeps every read inside the slices.

fn dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let n = n.min(w.len() / 4).min(a.len() / 4);
    unsafe { f32_dot(n, w.as_ptr(), a.as_ptr()) }
}
fn dot_f16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let n = n.min(w.len() / 2).min(a.len() / 2);
    unsafe { f16_dot(n, w.as_ptr(), a.as_ptr()) }
}
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

/// The sum of the eight lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// The little-endian f16 at `p`, widened.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16_at(p: *const u8) -> f32 {
    let bits = u16::from_le_bytes([*p, *p.add(1)]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// The little-endian f32 at `p`.
#[inline(always)]
pub(super) unsafe fn f32_at(p: *const u8) -> f32 {
    f32::from_le_bytes([*p, *p.add(1), *p.add(2), *p.add(3)])
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn load256(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

/// Σ x·y over pairs of signed bytes, as eight i32 (each the sum of four products).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn mul_sum_i8(x: __m256i, y: __m256i) -> __m256i {
    let dot = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    _mm256_madd_epi16(dot, _mm256_set1_epi16(1))
}

/// The 32 four-bit values of a legacy block's 16 `qs` bytes in element order (low nibbles, then
/// high nibbles).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn nibbles_32(qs: *const u8) -> __m256i {
    let v = _mm_loadu_si128(qs as *const __m128i);
    let m4 = _mm_set1_epi8(0x0f);
    let lo = _mm_and_si128(v, m4);
    let hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
    _mm256_set_m128i(hi, lo)
}

/// Byte `k` is 0xff when bit `k` of `bits` is set, else 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn bytes_from_bits(bits: u32) -> __m256i {
    let shuf = _mm256_set_epi64x(
        0x0303030303030303,
        0x0202020202020202,
        0x0101010101010101,
        0x0000000000000000,
    );
    let b = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), shuf);
    let b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe_u64 as i64));
    _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1))
}

/// The 32 signed values (`-16..16`) of a Q5_0 block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q5_0_values(x: *const u8) -> __m256i {
    let qh = u32::from_le_bytes([
        *x.add(BlockQ5_0::QH),
        *x.add(BlockQ5_0::QH + 1),
        *x.add(BlockQ5_0::QH + 2),
        *x.add(BlockQ5_0::QH + 3),
    ]);
    let lo = nibbles_32(x.add(BlockQ5_0::QS));
    // Where the fifth bit is clear, or in 0xf0: the byte then reads as nibble - 16.
    let hi = _mm256_andnot_si256(bytes_from_bits(qh), _mm256_set1_epi8(0xf0u8 as i8));
    _mm256_or_si256(lo, hi)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_dot(n: usize, w: *const u8, a: *const u8) -> f32 {
    let (w, a) = (w as *const f32, a as *const f32);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, s) in acc.iter_mut().enumerate() {
            let x = _mm256_loadu_ps(w.add(i + 8 * k));
            let y = _mm256_loadu_ps(a.add(i + 8 * k));
            *s = _mm256_fmadd_ps(x, y, *s);
        }
        i += 32;
    }
    let mut sum = hsum_ps(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ));
    while i < n {
        sum += w.add(i).read_unaligned() * a.add(i).read_unaligned();
        i += 1;
    }
    sum
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_dot(n: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, s) in acc.iter_mut().enumerate() {
            let off = 2 * (i + 8 * k);
            let x = _mm256_cvtph_ps(_mm_loadu_si128(w.add(off) as *const __m128i));
            let y = _mm256_cvtph_ps(_mm_loadu_si128(a.add(off) as *const __m128i));
            *s = _mm256_fmadd_ps(x, y, *s);
        }
        i += 32;
    }
    let mut sum = hsum_ps(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ));
    while i < n {
        sum += f16_at(w.add(2 * i)) * f16_at(a.add(2 * i));
        i += 1;
    }
    sum
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let off8 = _mm256_set1_epi8(8);
    for i in 0..nb {
        let x = w.add(i * BlockQ4_0::SIZE);
        let y = a.add(i * BlockQ8_0::SIZE);
        let d = _mm256_set1_ps(f16_at(x) * f16_at(y));
        let qx = _mm256_sub_epi8(nibbles_32(x.add(BlockQ4_0::QS)), off8);
        let qy = load256(y.add(BlockQ8_0::QS));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(mul_sum_i8(qx, qy)), acc);
    }
    hsum_ps(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        let x = w.add(i * BlockQ5_0::SIZE);
        let y = a.add(i * BlockQ8_0::SIZE);
        let d = _mm256_set1_ps(f16_at(x.add(BlockQ5_0::D)) * f16_at(y));
        let qy = load256(y.add(BlockQ8_0::QS));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(mul_sum_i8(q5_0_values(x), qy)), acc);
    }
    hsum_ps(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0(nb: usize, w: *const u8, a: *const u8) -> f32 {
    // Two accumulators to overlap the FMA latency.
    let mut acc = [_mm256_setzero_ps(); 2];
    let mut i = 0;
    while i < nb {
        let k = i & 1;
        let x = w.add(i * BlockQ8_0::SIZE);
        let y = a.add(i * BlockQ8_0::SIZE);
        let d = _mm256_set1_ps(f16_at(x) * f16_at(y));
        let s = mul_sum_i8(load256(x.add(BlockQ8_0::QS)), load256(y.add(BlockQ8_0::QS)));
        acc[k] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc[k]);
        i += 1;
    }
    hsum_ps(_mm256_add_ps(acc[0], acc[1]))
}

/// Σ_j bsums[j] · mins[j / 2] of a Q8_K activation block against K4-style mins.
#[inline(always)]
pub(super) unsafe fn q8k_mins_sum(y: *const u8, mins: &[u8; 8]) -> i32 {
    let mut s = 0i32;
    for (j, &m) in mins.iter().enumerate() {
        let b = y.add(BlockQ8K::BSUMS + 4 * j);
        let s0 = i16::from_le_bytes([*b, *b.add(1)]) as i32;
        let s1 = i16::from_le_bytes([*b.add(2), *b.add(3)]) as i32;
        s += (s0 + s1) * m as i32;
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins_total = 0f32;
    let m4 = _mm256_set1_epi8(0x0f);
    for i in 0..nb {
        let x = w.add(i * BlockQ4K::SIZE);
        let y = a.add(i * BlockQ8K::SIZE);
        let scales = &*(x.add(BlockQ4K::SCALES) as *const [u8; 12]);
        let (sc, mn) = k4_scales_mins(scales);
        let dy = f32_at(y.add(BlockQ8K::D));
        mins_total += f16_at(x.add(BlockQ4K::DMIN)) * dy * q8k_mins_sum(y, &mn) as f32;
        let qs = x.add(BlockQ4K::QS);
        let q8 = y.add(BlockQ8K::QS);
        let mut sumi = _mm256_setzero_si256();
        for c in 0..4 {
            let q4 = load256(qs.add(32 * c));
            let lo = _mm256_and_si256(q4, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
            let p_lo = _mm256_maddubs_epi16(lo, load256(q8.add(64 * c)));
            let p_hi = _mm256_maddubs_epi16(hi, load256(q8.add(64 * c + 32)));
            let p_lo = _mm256_madd_epi16(p_lo, _mm256_set1_epi16(sc[2 * c] as i16));
            let p_hi = _mm256_madd_epi16(p_hi, _mm256_set1_epi16(sc[2 * c + 1] as i16));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
        }
        let d = _mm256_set1_ps(f16_at(x.add(BlockQ4K::D)) * dy);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc) - mins_total
}

/// The four groups of 32 six-bit values (`0..64`) of one 128-element half of a Q6_K block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q6_k_half(ql: *const u8, qh: *const u8) -> [__m256i; 4] {
    let m4 = _mm256_set1_epi8(0x0f);
    let m2 = _mm256_set1_epi8(0x03);
    let h = load256(qh);
    let l0 = load256(ql);
    let l1 = load256(ql.add(32));
    let high = |shift: i32| -> __m256i {
        // ((h >> shift) & 3) << 4, in 16-bit lanes (the mask drops what crosses bytes).
        let v = match shift {
            0 => h,
            2 => _mm256_srli_epi16(h, 2),
            4 => _mm256_srli_epi16(h, 4),
            _ => _mm256_srli_epi16(h, 6),
        };
        _mm256_slli_epi16(_mm256_and_si256(v, m2), 4)
    };
    [
        _mm256_or_si256(_mm256_and_si256(l0, m4), high(0)),
        _mm256_or_si256(_mm256_and_si256(l1, m4), high(2)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), high(4)),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), high(6)),
    ]
}

#[target_feature(enable = "avx2,fma,f16c")]
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
                let p =
                    _mm256_sub_epi16(_mm256_maddubs_epi16(*qg, y8), _mm256_maddubs_epi16(m32, y8));
                let s0 = *sc.add(8 * h + 2 * g) as i16;
                let s1 = *sc.add(8 * h + 2 * g + 1) as i16;
                let scale = _mm256_set_m128i(_mm_set1_epi16(s1), _mm_set1_epi16(s0));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale));
            }
        }
        let d = _mm256_set1_ps(f16_at(x.add(BlockQ6K::D)) * f32_at(y.add(BlockQ8K::D)));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc)
}
