//! AVX2 + FMA + F16C dot products for the remaining weight types: Q4_1 and Q5_1 (against Q8_1),
//! Q2_K, Q3_K and Q5_K (against Q8_K), and BF16.
//!
//! As in [`super::avx2`], the integer sums are exactly the scalar twins' (weights are unsigned
//! bytes, so `vpmaddubsw` takes them as its unsigned operand and the activations as the signed
//! one; Q3_K's signed values are handled as `low - offset` with two `vpmaddubsw`), weighted by
//! the sub-block scales with `vpmaddwd`; only the float accumulation order differs (lanes, FMA).
//! None of these kernels relies on activations avoiding -128.

use std::arch::x86_64::*;

use super::super::VecDotFn;
use super::avx2::{
    bytes_from_bits, f16_at, f32_at, hsum_ps, load256, nblocks, nibbles_32, q8k_mins_sum,
};
use crate::gguf::{GgmlType, QK_K};
use crate::quant::blocks::{
    k4_scales_mins, BlockQ2K, BlockQ3K, BlockQ4_1, BlockQ5K, BlockQ5_1, BlockQ8K, BlockQ8_1, QK,
};

pub(super) fn kernel(ty: GgmlType) -> Option<VecDotFn> {
    use GgmlType::*;
    Some(match ty {
        BF16 => dot_bf16,
        Q4_1 => dot_q4_1,
        Q5_1 => dot_q5_1,
        Q2_K => dot_q2_k,
        Q3_K => dot_q3_k,
        Q5_K => dot_q5_k,
        _ => return None,
    })
}

// Safety of the wrappers below: `kernel` hands them out only after `Features::detect` found
// AVX2, FMA and F16C, and `nblocks` (or the element count for BF16) keeps every read inside the
// slices.

fn dot_bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let n = n.min(w.len() / 2).min(a.len() / 2);
    unsafe { bf16_dot(n, w.as_ptr(), a.as_ptr()) }
}
fn dot_q4_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = nblocks(n, QK, w, BlockQ4_1::SIZE, a, BlockQ8_1::SIZE);
    unsafe { q4_1(nb, w.as_ptr(), a.as_ptr()) }
}
fn dot_q5_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let nb = nblocks(n, QK, w, BlockQ5_1::SIZE, a, BlockQ8_1::SIZE);
    unsafe { q5_1(nb, w.as_ptr(), a.as_ptr()) }
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

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The eight bf16 at `p`, widened to f32 (exact: bf16 is the top half of an f32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16x8(p: *const u8) -> __m256 {
    let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
    _mm256_castsi256_ps(_mm256_slli_epi32(h, 16))
}

/// The little-endian bf16 at `p`, widened.
#[inline(always)]
unsafe fn bf16_at(p: *const u8) -> f32 {
    f32::from_bits((u16::from_le_bytes([*p, *p.add(1)]) as u32) << 16)
}

/// The little-endian u32 at `p`.
#[inline(always)]
unsafe fn u32_at(p: *const u8) -> u32 {
    u32::from_le_bytes([*p, *p.add(1), *p.add(2), *p.add(3)])
}

/// Eight i16 (one 128-bit half) copied into both lanes of a 256-bit vector.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn both_lanes(v: __m128i) -> __m256i {
    _mm256_broadcastsi128_si256(v)
}

/// From `s`, eight i16 scales repeated in both lanes: the low lane filled with scale `j`, the
/// high lane with scale `j + 1` (`j` in `0..7`), for `vpmaddwd` against the sixteen i16 pair
/// sums of 32 bytes whose first 16 belong to sub-block `j` and last 16 to `j + 1`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale_pair(s: __m256i, j: usize) -> __m256i {
    let lo = ((2 * j) | ((2 * j + 1) << 8)) as i16;
    let hi = lo + 0x0202;
    _mm256_shuffle_epi8(s, _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo)))
}

/// The four groups of 32 two-bit values (`0..4`) packed in 32 bytes: group `k` is bits
/// `2k..2k+2` of each byte.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn crumbs(q: __m256i) -> [__m256i; 4] {
    let m3 = _mm256_set1_epi8(3);
    [
        _mm256_and_si256(q, m3),
        _mm256_and_si256(_mm256_srli_epi16(q, 2), m3),
        _mm256_and_si256(_mm256_srli_epi16(q, 4), m3),
        _mm256_and_si256(_mm256_srli_epi16(q, 6), m3),
    ]
}

/// Bytes equal to `val` where `bits` has bit `b` set (bit `b` of each byte), else 0.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn where_bit(bits: __m256i, b: usize, val: __m256i) -> __m256i {
    let m = _mm256_set1_epi8((1u8 << b) as i8);
    _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(bits, m), m), val)
}

/// Σ x·y of 32 unsigned weight bytes against 32 signed activation bytes, as eight i32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mul_sum_u8_i8(x: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))
}

/// The sixteen Q3_K scales minus 32 (`-32..32`, as i8) from the 12 packed bytes at `p`
/// (the word-wise unpacking of [`crate::quant::blocks::q3_k_scales`]).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q3_k_scales_i8(p: *const u8) -> __m128i {
    const M1: u32 = 0x0303_0303;
    const M2: u32 = 0x0f0f_0f0f;
    let (a0, a1, tmp) = (u32_at(p), u32_at(p.add(4)), u32_at(p.add(8)));
    let s = _mm_set_epi32(
        (((a1 >> 4) & M2) | (((tmp >> 6) & M1) << 4)) as i32,
        (((a0 >> 4) & M2) | (((tmp >> 4) & M1) << 4)) as i32,
        ((a1 & M2) | (((tmp >> 2) & M1) << 4)) as i32,
        ((a0 & M2) | ((tmp & M1) << 4)) as i32,
    );
    _mm_sub_epi8(s, _mm_set1_epi8(32))
}

// ---------------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------------

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_dot(n: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (k, s) in acc.iter_mut().enumerate() {
            let off = 2 * (i + 8 * k);
            *s = _mm256_fmadd_ps(bf16x8(w.add(off)), bf16x8(a.add(off)), *s);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(bf16x8(w.add(2 * i)), bf16x8(a.add(2 * i)), acc[0]);
        i += 8;
    }
    let mut sum = hsum_ps(_mm256_add_ps(
        _mm256_add_ps(acc[0], acc[1]),
        _mm256_add_ps(acc[2], acc[3]),
    ));
    while i < n {
        sum += bf16_at(w.add(2 * i)) * bf16_at(a.add(2 * i));
        i += 1;
    }
    sum
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0f32;
    for i in 0..nb {
        let x = w.add(i * BlockQ4_1::SIZE);
        let y = a.add(i * BlockQ8_1::SIZE);
        summs += f16_at(x.add(BlockQ4_1::M)) * f16_at(y.add(BlockQ8_1::S));
        let d = _mm256_set1_ps(f16_at(x.add(BlockQ4_1::D)) * f16_at(y.add(BlockQ8_1::D)));
        let qx = nibbles_32(x.add(BlockQ4_1::QS));
        let qy = load256(y.add(BlockQ8_1::QS));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(mul_sum_u8_i8(qx, qy)), acc);
    }
    hsum_ps(acc) + summs
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_1(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0f32;
    let bit4 = _mm256_set1_epi8(0x10);
    for i in 0..nb {
        let x = w.add(i * BlockQ5_1::SIZE);
        let y = a.add(i * BlockQ8_1::SIZE);
        summs += f16_at(x.add(BlockQ5_1::M)) * f16_at(y.add(BlockQ8_1::S));
        let d = _mm256_set1_ps(f16_at(x.add(BlockQ5_1::D)) * f16_at(y.add(BlockQ8_1::D)));
        let hi = _mm256_and_si256(bytes_from_bits(u32_at(x.add(BlockQ5_1::QH))), bit4);
        let qx = _mm256_or_si256(nibbles_32(x.add(BlockQ5_1::QS)), hi);
        let qy = load256(y.add(BlockQ8_1::QS));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(mul_sum_u8_i8(qx, qy)), acc);
    }
    hsum_ps(acc) + summs
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q2_k(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let m4 = _mm_set1_epi8(0x0f);
    for i in 0..nb {
        let x = w.add(i * BlockQ2K::SIZE);
        let y = a.add(i * BlockQ8K::SIZE);
        let dy = f32_at(y.add(BlockQ8K::D));
        let dall = _mm256_set1_ps(dy * f16_at(x.add(BlockQ2K::D)));
        let dmin = _mm256_set1_ps(dy * f16_at(x.add(BlockQ2K::DMIN)));
        let sc = _mm_loadu_si128(x.add(BlockQ2K::SCALES) as *const __m128i);
        // Σ_s bsums[s] · (scales[s] >> 4), as eight i32.
        let mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4));
        let summs = _mm256_madd_epi16(load256(y.add(BlockQ8K::BSUMS)), mins);
        let scales = _mm_and_si128(sc, m4);
        let halves = [
            both_lanes(_mm_cvtepu8_epi16(scales)),
            both_lanes(_mm_cvtepu8_epi16(_mm_srli_si128(scales, 8))),
        ];
        let mut sumi = _mm256_setzero_si256();
        for (h, s16) in halves.iter().enumerate() {
            let q2 = crumbs(load256(x.add(BlockQ2K::QS + 32 * h)));
            for (k, v) in q2.iter().enumerate() {
                let q8 = load256(y.add(BlockQ8K::QS + 128 * h + 32 * k));
                let p = _mm256_maddubs_epi16(*v, q8);
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(*s16, 2 * k)));
            }
        }
        acc = _mm256_fmadd_ps(dall, _mm256_cvtepi32_ps(sumi), acc);
        acc = _mm256_fnmadd_ps(dmin, _mm256_cvtepi32_ps(summs), acc);
    }
    hsum_ps(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q3_k(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let four = _mm256_set1_epi8(4);
    for i in 0..nb {
        let x = w.add(i * BlockQ3K::SIZE);
        let y = a.add(i * BlockQ8K::SIZE);
        let scales = q3_k_scales_i8(x.add(BlockQ3K::SCALES));
        let halves = [
            both_lanes(_mm_cvtepi8_epi16(scales)),
            both_lanes(_mm_cvtepi8_epi16(_mm_srli_si128(scales, 8))),
        ];
        let hmask = load256(x.add(BlockQ3K::HMASK));
        let mut sumi = _mm256_setzero_si256();
        for (h, s16) in halves.iter().enumerate() {
            let q2 = crumbs(load256(x.add(BlockQ3K::QS + 32 * h)));
            for (k, v) in q2.iter().enumerate() {
                // Value = low - 4 where the high bit (bit 4h + k of hmask[l]) is clear.
                let off = _mm256_andnot_si256(where_bit(hmask, 4 * h + 3 - k, four), four);
                let q8 = load256(y.add(BlockQ8K::QS + 128 * h + 32 * k));
                let p =
                    _mm256_sub_epi16(_mm256_maddubs_epi16(*v, q8), _mm256_maddubs_epi16(off, q8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(*s16, 2 * k)));
            }
        }
        let d = _mm256_set1_ps(f16_at(x.add(BlockQ3K::D)) * f32_at(y.add(BlockQ8K::D)));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_k(nb: usize, w: *const u8, a: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins_total = 0f32;
    let m4 = _mm256_set1_epi8(0x0f);
    let bit4 = _mm256_set1_epi8(0x10);
    for i in 0..nb {
        let x = w.add(i * BlockQ5K::SIZE);
        let y = a.add(i * BlockQ8K::SIZE);
        let scales = &*(x.add(BlockQ5K::SCALES) as *const [u8; 12]);
        let (sc, mn) = k4_scales_mins(scales);
        let dy = f32_at(y.add(BlockQ8K::D));
        mins_total += f16_at(x.add(BlockQ5K::DMIN)) * dy * q8k_mins_sum(y, &mn) as f32;
        let qh = load256(x.add(BlockQ5K::QH));
        let qs = x.add(BlockQ5K::QS);
        let q8 = y.add(BlockQ8K::QS);
        let mut sumi = _mm256_setzero_si256();
        for c in 0..4 {
            let q4 = load256(qs.add(32 * c));
            // Element 64c + l has its fifth bit in bit 2c of qh[l], element 64c + 32 + l in
            // bit 2c + 1.
            let lo = _mm256_or_si256(_mm256_and_si256(q4, m4), where_bit(qh, 2 * c, bit4));
            let hi = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4),
                where_bit(qh, 2 * c + 1, bit4),
            );
            let p_lo = _mm256_maddubs_epi16(lo, load256(q8.add(64 * c)));
            let p_hi = _mm256_maddubs_epi16(hi, load256(q8.add(64 * c + 32)));
            let p_lo = _mm256_madd_epi16(p_lo, _mm256_set1_epi16(sc[2 * c] as i16));
            let p_hi = _mm256_madd_epi16(p_hi, _mm256_set1_epi16(sc[2 * c + 1] as i16));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p_lo, p_hi));
        }
        let d = _mm256_set1_ps(f16_at(x.add(BlockQ5K::D)) * dy);
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc) - mins_total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::cpu::scalar;
    use crate::quant::{dequantize_row, quantize_row, vec_dot_type};
    use half::{bf16, f16};

    const TYPES: [GgmlType; 6] = [
        GgmlType::Q4_1,
        GgmlType::Q5_1,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q5_K,
        GgmlType::BF16,
    ];

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        /// Uniform in [-1, 1).
        fn f32(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    fn have_features() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }

    /// Byte offsets of the f16 scale fields of a block.
    fn scale_fields(ty: GgmlType) -> &'static [usize] {
        use GgmlType::*;
        match ty {
            Q4_1 => &[BlockQ4_1::D, BlockQ4_1::M],
            Q5_1 => &[BlockQ5_1::D, BlockQ5_1::M],
            Q2_K => &[BlockQ2K::D, BlockQ2K::DMIN],
            Q3_K => &[BlockQ3K::D],
            Q5_K => &[BlockQ5K::D, BlockQ5K::DMIN],
            _ => &[],
        }
    }

    /// A random row of `n` elements of `ty`: random bytes with small finite scales (BF16: random
    /// values in [-1, 1]). `fill`, when given, replaces the random quant bytes.
    fn random_weights(ty: GgmlType, n: usize, rng: &mut Rng, fill: Option<u8>) -> Vec<u8> {
        if ty == GgmlType::BF16 {
            return (0..n)
                .flat_map(|_| {
                    let v = match fill {
                        Some(0) => -1.0,
                        Some(_) => 1.0,
                        None => rng.f32(),
                    };
                    bf16::from_f32(v).to_le_bytes()
                })
                .collect();
        }
        let ts = ty.type_size();
        let mut b: Vec<u8> = (0..n / ty.block_size() * ts)
            .map(|_| fill.unwrap_or(rng.next() as u8))
            .collect();
        for block in b.chunks_exact_mut(ts) {
            for &off in scale_fields(ty) {
                let v = f16::from_f32(rng.f32() * 0.01);
                block[off..off + 2].copy_from_slice(&v.to_le_bytes());
            }
        }
        b
    }

    /// `n` activations of `ty`'s activation format from values in [-1, 1] (or all ±1).
    fn activations(ty: GgmlType, n: usize, rng: &mut Rng, extreme: bool) -> Vec<u8> {
        let act = vec_dot_type(ty);
        let x: Vec<f32> = (0..n)
            .map(|_| {
                let v = rng.f32();
                if extreme {
                    v.signum()
                } else {
                    v
                }
            })
            .collect();
        let mut a = vec![0u8; act.row_bytes(n as u64).unwrap() as usize];
        quantize_row(act, &x, &mut a).unwrap();
        a
    }

    /// Σ |w_i · a_i| over the dequantized rows: the scale of the allowed rounding difference.
    fn abs_sum(ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f64 {
        let mut wd = vec![0f32; n];
        let mut ad = vec![0f32; n];
        dequantize_row(ty, w, &mut wd).unwrap();
        dequantize_row(vec_dot_type(ty), a, &mut ad).unwrap();
        wd.iter().zip(&ad).map(|(p, q)| (p * q).abs() as f64).sum()
    }

    fn close(got: f32, want: f32, scale: f64) -> bool {
        ((got - want) as f64).abs() <= 1e-5 * scale + 1e-6
    }

    /// Elements in a row of `nblocks` blocks (BF16: 32 per "block" plus a ragged tail).
    fn row_len(ty: GgmlType, nblocks: usize, case: usize) -> usize {
        match ty.block_size() {
            1 => nblocks * 32 + case % 7,
            bs => nblocks * bs,
        }
    }

    fn check_type(ty: GgmlType, cases: usize) {
        let reference = scalar::kernel(ty).unwrap();
        let k = kernel(ty).unwrap();
        let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (ty as u64).wrapping_mul(0x9e37_79b9));
        for case in 0..cases {
            let nb = 1 + case % 8;
            let n = row_len(ty, nb, case);
            // The first cases use the extreme bytes (all quants at their minimum or maximum,
            // activations at ±127) to exercise the i16 ranges of the pair sums.
            let fill = match case {
                0..=7 => Some(0xff),
                8..=15 => Some(0),
                _ => None,
            };
            let w = random_weights(ty, n, &mut rng, fill);
            let a = activations(ty, n, &mut rng, fill.is_some());
            let scale = abs_sum(ty, n, &w, &a);
            let want = reference(n, &w, &a);
            let got = k(n, &w, &a);
            assert!(
                close(got, want, scale),
                "{ty} case {case} (n {n}): {got} vs scalar {want} (scale {scale})"
            );
        }
    }

    #[test]
    fn q4_1_matches_scalar() {
        if have_features() {
            check_type(GgmlType::Q4_1, 300);
        }
    }

    #[test]
    fn q5_1_matches_scalar() {
        if have_features() {
            check_type(GgmlType::Q5_1, 300);
        }
    }

    #[test]
    fn q2_k_matches_scalar() {
        if have_features() {
            check_type(GgmlType::Q2_K, 300);
        }
    }

    #[test]
    fn q3_k_matches_scalar() {
        if have_features() {
            check_type(GgmlType::Q3_K, 300);
        }
    }

    #[test]
    fn q5_k_matches_scalar() {
        if have_features() {
            check_type(GgmlType::Q5_K, 300);
        }
    }

    #[test]
    fn bf16_matches_scalar() {
        if have_features() {
            check_type(GgmlType::BF16, 300);
        }
    }

    /// Operands shorter than `n` elements: only the whole blocks both hold are read. The bytes
    /// right after each slice (in the same allocation) are 0xff, which makes every scale NaN, so
    /// a read past the end would poison the result.
    #[test]
    fn short_rows_read_only_the_blocks_present() {
        if !have_features() {
            return;
        }
        let mut rng = Rng(0x5851_f42d_4c95_7f2d);
        for ty in TYPES {
            let reference = scalar::kernel(ty).unwrap();
            let k = kernel(ty).unwrap();
            let bs = ty.block_size();
            // Bytes per unit (a block, or an element for BF16) of each operand.
            let (wu, au) = (ty.type_size(), vec_dot_type(ty).type_size());
            for case in 0..40 {
                let nb = 2 + case % 7;
                let n = row_len(ty, nb, case);
                let w = random_weights(ty, n, &mut rng, None);
                let a = activations(ty, n, &mut rng, false);
                let scale = abs_sum(ty, n, &w, &a);
                // Whole units kept of each operand, and the stray bytes of a partial unit left
                // at the end of the slice.
                let unit = if bs == 1 { 1 } else { bs };
                let units = n / unit;
                let (keep_w, keep_a) = match case % 3 {
                    0 => (units - 1 - case % (units - 1), units),
                    1 => (units, units - 1 - case % (units - 1)),
                    _ => (1 + case % (units - 1), 1 + (case / 3) % (units - 1)),
                };
                let stray = if bs == 1 { 1 } else { case % 5 };
                let mut wbuf = w[..keep_w * wu].to_vec();
                wbuf.resize(wbuf.len() + 2 * wu + 64, 0xff);
                let mut abuf = a[..keep_a * au].to_vec();
                abuf.resize(abuf.len() + 2 * au + 64, 0xff);
                let ws_ = &wbuf[..keep_w * wu + stray.min(wu - 1)];
                let as_s = &abuf[..keep_a * au + stray.min(au - 1)];
                let got = k(n, ws_, as_s);
                let want = reference(keep_w.min(keep_a) * unit, &w, &a);
                assert!(
                    got.is_finite() && close(got, want, scale),
                    "{ty} case {case}: {got} vs scalar {want} over {} units",
                    keep_w.min(keep_a)
                );
                // A shorter `n` than the operands hold: only `n / block` blocks are read.
                let short_n = (keep_w.min(keep_a) * unit).max(1) - 1 + unit / 2;
                let got = k(short_n, &w, &a);
                let want = reference(short_n, &w, &a);
                assert!(
                    close(got, want, scale),
                    "{ty} case {case} n {short_n}: {got} vs scalar {want}"
                );
            }
        }
    }

    #[test]
    fn kernel_covers_these_types_only() {
        for ty in TYPES {
            assert!(kernel(ty).is_some(), "{ty}");
        }
        for ty in [
            GgmlType::F32,
            GgmlType::Q4_0,
            GgmlType::Q4_K,
            GgmlType::Q8_K,
        ] {
            assert!(kernel(ty).is_none(), "{ty}");
        }
    }
}
