//! Quantization of activation rows into the formats the dot products take (see
//! [`super::vec_dot_type`]), following GGML's reference (`quantize_row_*_ref`) rounding exactly.
//!
//! - **Q8_0 / Q8_1** (`quantize_row_q8_0_ref`, `quantize_row_q8_1_ref`): per block of 32,
//!   `amax = max |x|`, `d = amax / 127`, `id = 1 / d` (0 when `d == 0`),
//!   `q = roundf(x · id)` (round half away from zero); `d` is stored as f16. Q8_1 also stores
//!   `s = f16(Σq · d)` with the f32 `d`.
//!   *Not* what llama.cpp's AVX/AVX2 `quantize_row_q8_0/1` do: they use `id = 127 / amax` and
//!   round half to even (`_mm256_round_ps`), and NEON rounds half to even (`vcvtnq_s32_f32`), so
//!   a quant can differ by one where `x · id` lands on (or within an ulp of) a half.
//! - **Q8_K** (`quantize_row_q8_K_ref`, which x86 and ARM builds both use): per block of 256,
//!   `max` = the first element with the largest `|x|` (sign kept), `iscale = -127 / max`,
//!   `q = min(127, nearest_int(iscale · x))` with round half to even, `d = 1 / iscale` (so `d`
//!   is negative when `max` is positive and the quants are negated), `bsums[j]` = sum of quants
//!   `16j..16j+16`. An all-zero block stores `d = 0` and zero quants (GGML leaves `bsums`
//!   untouched there; we zero them).
//! - **F16**: round to nearest even (what F16C and `ggml_compute_fp32_to_fp16` do).
//! - **BF16**: `ggml_compute_fp32_to_bf16`: NaN is kept and made quiet, otherwise round to
//!   nearest even.

use super::blocks::*;
use super::{f32_to_bf16, f32_to_f16};
use crate::gguf::{GgmlType, QK_K};

/// Quantizes `src` into `dst` in `act`. The caller has checked the type and the lengths.
pub(super) fn quantize(act: GgmlType, src: &[f32], dst: &mut [u8]) {
    use GgmlType::*;
    match act {
        F32 => {
            for (c, &x) in blocks_mut::<4>(dst).zip(src) {
                *c = x.to_le_bytes();
            }
        }
        F16 => {
            for (c, &x) in blocks_mut::<2>(dst).zip(src) {
                *c = f32_to_f16(x).to_le_bytes();
            }
        }
        BF16 => {
            for (c, &x) in blocks_mut::<2>(dst).zip(src) {
                *c = f32_to_bf16(x).to_le_bytes();
            }
        }
        Q8_0 => {
            for (b, x) in blocks_mut::<{ BlockQ8_0::SIZE }>(dst).zip(src.chunks_exact(QK)) {
                q8_0_block(x, b);
            }
        }
        Q8_1 => {
            for (b, x) in blocks_mut::<{ BlockQ8_1::SIZE }>(dst).zip(src.chunks_exact(QK)) {
                q8_1_block(x, b);
            }
        }
        Q8_K => {
            for (b, x) in blocks_mut::<{ BlockQ8K::SIZE }>(dst).zip(src.chunks_exact(QK_K)) {
                q8_k_block(x, b);
            }
        }
        // The public entry point rejects every other type before calling here.
        _ => dst.fill(0),
    }
}

/// `d` and `id` of a Q8_0/Q8_1 block, as `quantize_row_q8_0_ref` computes them.
#[inline(always)]
fn q8_scale(x: &[f32]) -> (f32, f32) {
    // C's `MAX(amax, fabsf(v))`, NaN behaviour included.
    let amax = x
        .iter()
        .fold(0f32, |m, v| if m > v.abs() { m } else { v.abs() });
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    (d, id)
}

/// Rounds half away from zero and converts like C's `(int8_t)roundf(v)` for in-range values
/// (out-of-range and NaN saturate instead of being undefined).
#[inline(always)]
fn round_i8(v: f32) -> i8 {
    v.round() as i8
}

fn q8_0_block(x: &[f32], b: &mut [u8; 34]) {
    let (d, id) = q8_scale(x);
    b[BlockQ8_0::D..BlockQ8_0::D + 2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
    for (o, &v) in b[BlockQ8_0::QS..].iter_mut().zip(x) {
        *o = round_i8(v * id) as u8;
    }
}

fn q8_1_block(x: &[f32], b: &mut [u8; 36]) {
    let (d, id) = q8_scale(x);
    let mut sum = 0i32;
    for (o, &v) in b[BlockQ8_1::QS..].iter_mut().zip(x) {
        let q = round_i8(v * id);
        sum += q as i32;
        *o = q as u8;
    }
    b[BlockQ8_1::D..BlockQ8_1::D + 2].copy_from_slice(&f32_to_f16(d).to_le_bytes());
    b[BlockQ8_1::S..BlockQ8_1::S + 2].copy_from_slice(&f32_to_f16(sum as f32 * d).to_le_bytes());
}

/// GGML's `nearest_int`: round half to even (for `|v| <= 2^22`, the only range it accepts).
#[inline(always)]
fn nearest_int(v: f32) -> i32 {
    v.round_ties_even() as i32
}

fn q8_k_block(x: &[f32], b: &mut [u8; 292]) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        b.fill(0);
        return;
    }
    let iscale = -127.0 / max;
    let qs = &mut b[BlockQ8K::QS..BlockQ8K::QS + QK_K];
    for (o, &v) in qs.iter_mut().zip(x) {
        *o = nearest_int(iscale * v).clamp(-128, 127) as i8 as u8;
    }
    for j in 0..QK_K / 16 {
        let s: i32 = b[BlockQ8K::QS + 16 * j..BlockQ8K::QS + 16 * j + 16]
            .iter()
            .map(|&q| q as i8 as i32)
            .sum();
        let at = BlockQ8K::BSUMS + 2 * j;
        b[at..at + 2].copy_from_slice(&(s as i16).to_le_bytes());
    }
    b[BlockQ8K::D..BlockQ8K::D + 4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
}
