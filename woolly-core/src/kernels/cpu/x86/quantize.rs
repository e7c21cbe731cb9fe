//! AVX2 activation quantizers.
//!
//! - Q8_0: llama.cpp's x86 `quantize_row_q8_0` (what the reference outputs were computed with):
//!   `d = amax / 127`, `id = 127 / amax`, round half to even. It differs from the portable
//!   reference (`id = 1 / d`, round half away from zero) by one quant at rare ties.
//! - Q8_K: the portable reference itself, vectorized exactly (llama.cpp uses it on x86 too).

use std::arch::x86_64::*;

use crate::gguf::QK_K;
use crate::quant::blocks::{BlockQ8K, BlockQ8_0, QK};

/// Quantizes whole blocks of `src` into `dst` (Q8_0). Extra elements or bytes are ignored.
pub fn q8_0(src: &[f32], dst: &mut [u8]) {
    let nb = (src.len() / QK).min(dst.len() / BlockQ8_0::SIZE);
    // Safety: AVX2 was detected by the caller's dispatch; `nb` keeps accesses in bounds.
    unsafe { q8_0_impl(nb, src.as_ptr(), dst.as_mut_ptr()) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_impl(nb: usize, x: *const f32, y: *mut u8) {
    let sign = _mm256_set1_ps(-0.0);
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for i in 0..nb {
        let p = x.add(i * QK);
        let v = [
            _mm256_loadu_ps(p),
            _mm256_loadu_ps(p.add(8)),
            _mm256_loadu_ps(p.add(16)),
            _mm256_loadu_ps(p.add(24)),
        ];
        let mut m = _mm256_andnot_ps(sign, v[0]);
        for vk in &v[1..] {
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, *vk));
        }
        let m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        let amax = _mm_cvtss_f32(m4);
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let b = y.add(i * BlockQ8_0::SIZE);
        let dh =
            _mm_extract_epi16::<0>(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(d))) as u16;
        *b = dh as u8;
        *b.add(1) = (dh >> 8) as u8;
        let mul = _mm256_set1_ps(id);
        let r = |vk: __m256| {
            _mm256_cvtps_epi32(_mm256_round_ps::<
                { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
            >(_mm256_mul_ps(vk, mul)))
        };
        let i01 = _mm256_packs_epi32(r(v[0]), r(v[1]));
        let i23 = _mm256_packs_epi32(r(v[2]), r(v[3]));
        let q = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(i01, i23), perm);
        _mm256_storeu_si256(b.add(BlockQ8_0::QS) as *mut __m256i, q);
    }
}

/// Quantizes whole super-blocks of `src` into `dst` (Q8_K), bit-identical to the scalar
/// reference.
pub fn q8_k(src: &[f32], dst: &mut [u8]) {
    let nb = (src.len() / QK_K).min(dst.len() / BlockQ8K::SIZE);
    // Safety: AVX2 was detected by the caller's dispatch; `nb` keeps accesses in bounds.
    unsafe { q8_k_impl(nb, src.as_ptr(), dst.as_mut_ptr()) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_k_impl(nb: usize, x: *const f32, y: *mut u8) {
    let sign = _mm256_set1_ps(-0.0);
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for i in 0..nb {
        let p = x.add(i * QK_K);
        let b = y.add(i * BlockQ8K::SIZE);
        // amax, then the first element whose magnitude it is (the reference keeps the first).
        let mut m = _mm256_setzero_ps();
        for k in 0..QK_K / 8 {
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * k))));
        }
        let m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
        if amax == 0.0 || amax.is_nan() {
            // The scalar reference: all zero (NaN inputs also end here rather than in UB).
            std::ptr::write_bytes(b, 0, BlockQ8K::SIZE);
            continue;
        }
        let mut max = 0f32;
        for j in 0..QK_K {
            let v = *p.add(j);
            if v.abs() == amax {
                max = v;
                break;
            }
        }
        let iscale = -127.0 / max;
        let mul = _mm256_set1_ps(iscale);
        let hi = _mm256_set1_epi32(127);
        let qs = b.add(BlockQ8K::QS);
        for k in 0..QK_K / 32 {
            let r = |o: usize| {
                let v = _mm256_mul_ps(_mm256_loadu_ps(p.add(32 * k + o)), mul);
                let q = _mm256_cvtps_epi32(_mm256_round_ps::<
                    { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
                >(v));
                _mm256_min_epi32(q, hi)
            };
            let i01 = _mm256_packs_epi32(r(0), r(8));
            let i23 = _mm256_packs_epi32(r(16), r(24));
            let q = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(i01, i23), perm);
            _mm256_storeu_si256(qs.add(32 * k) as *mut __m256i, q);
            // Block sums of the two groups of 16.
            let lo16 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
            let hi16 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(q));
            for (g, v) in [lo16, hi16].into_iter().enumerate() {
                let s32 = _mm256_madd_epi16(v, _mm256_set1_epi16(1));
                let s4 = _mm_add_epi32(
                    _mm256_castsi256_si128(s32),
                    _mm256_extracti128_si256::<1>(s32),
                );
                let s2 = _mm_add_epi32(s4, _mm_shuffle_epi32::<0b01_00_11_10>(s4));
                let s1 = _mm_add_epi32(s2, _mm_shuffle_epi32::<0b10_11_00_01>(s2));
                let s = _mm_cvtsi128_si32(s1) as i16;
                let at = b.add(BlockQ8K::BSUMS + 2 * (2 * k + g));
                *at = s as u8;
                *at.add(1) = (s >> 8) as u8;
            }
        }
        let d = (1.0 / iscale).to_le_bytes();
        std::ptr::copy_nonoverlapping(d.as_ptr(), b.add(BlockQ8K::D), 4);
    }
}
