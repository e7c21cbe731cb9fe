//! AArch64 NEON dot products (NEON is part of every AArch64 CPU, so no detection is needed).
//!
//! Each kernel keeps its scalar twin's arithmetic exactly: the same integer sums (lane by lane
//! where the twin keeps eight lanes) and the same float expression per block, in the same
//! order, so results are bit-identical to [`super::scalar`] (the tests assert equality). Types
//! without a NEON kernel here use the scalar one.

use std::arch::aarch64::*;

use super::VecDotFn;
use crate::gguf::{GgmlType, QK_K};
use crate::quant::blocks::{
    blocks, field, k4_scales_mins, q6_k_values, read_f16, read_f32, read_u32, BlockQ4K, BlockQ4_0,
    BlockQ5_0, BlockQ6K, BlockQ8K, BlockQ8_0, QK,
};

/// The NEON kernel for `ty`, if there is one.
pub fn kernel(ty: GgmlType) -> Option<VecDotFn> {
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

/// Σ x·y over 32 signed bytes (two 16-byte halves each), exactly.
#[inline(always)]
fn dot32(x0: int8x16_t, x1: int8x16_t, y0: int8x16_t, y1: int8x16_t) -> i32 {
    // SAFETY: NEON is always present on AArch64; these intrinsics only touch registers.
    unsafe {
        let p0 = vmull_s8(vget_low_s8(x0), vget_low_s8(y0));
        let p1 = vmull_high_s8(x0, y0);
        let p2 = vmull_s8(vget_low_s8(x1), vget_low_s8(y1));
        let p3 = vmull_high_s8(x1, y1);
        let s = vaddq_s32(
            vaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1)),
            vaddq_s32(vpaddlq_s16(p2), vpaddlq_s16(p3)),
        );
        vaddvq_s32(s)
    }
}

/// 16 bytes at `b[off..]` as signed bytes.
#[inline(always)]
fn load_s8(b: &[u8], off: usize) -> int8x16_t {
    let s: &[u8; 16] = b[off..off + 16].try_into().expect("16 bytes");
    // SAFETY: reads exactly the 16 bytes of `s`.
    unsafe { vreinterpretq_s8_u8(vld1q_u8(s.as_ptr())) }
}

/// The two halves (elements 0..16 and 16..32) of a legacy block's nibbles.
#[inline(always)]
fn nibbles(b: &[u8], off: usize) -> (uint8x16_t, uint8x16_t) {
    let s: &[u8; 16] = b[off..off + 16].try_into().expect("16 bytes");
    // SAFETY: reads exactly the 16 bytes of `s`.
    unsafe {
        let v = vld1q_u8(s.as_ptr());
        (vandq_u8(v, vdupq_n_u8(0x0f)), vshrq_n_u8(v, 4))
    }
}

fn dot_q4_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    let xs = blocks::<{ BlockQ4_0::SIZE }>(w);
    let ys = blocks::<{ BlockQ8_0::SIZE }>(a);
    for (x, y) in xs.zip(ys).take(n / QK) {
        let (lo, hi) = nibbles(x, BlockQ4_0::QS);
        // SAFETY: register-only NEON arithmetic.
        let (x0, x1) = unsafe {
            let eight = vdupq_n_s8(8);
            (
                vsubq_s8(vreinterpretq_s8_u8(lo), eight),
                vsubq_s8(vreinterpretq_s8_u8(hi), eight),
            )
        };
        let sumi = dot32(
            x0,
            x1,
            load_s8(y, BlockQ8_0::QS),
            load_s8(y, BlockQ8_0::QS + 16),
        );
        sumf += sumi as f32 * read_f16(x, BlockQ4_0::D) * read_f16(y, BlockQ8_0::D);
    }
    sumf
}

fn dot_q5_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    let xs = blocks::<{ BlockQ5_0::SIZE }>(w);
    let ys = blocks::<{ BlockQ8_0::SIZE }>(a);
    let bit_masks: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];
    for (x, y) in xs.zip(ys).take(n / QK) {
        let qh = read_u32(x, BlockQ5_0::QH).to_le_bytes();
        let (lo, hi) = nibbles(x, BlockQ5_0::QS);
        // SAFETY: register-only NEON arithmetic and a load of the 16-byte mask array.
        let (x0, x1) = unsafe {
            let masks = vld1q_u8(bit_masks.as_ptr());
            // Byte j of the first half takes bit j of qh; of the second half, bit 16 + j.
            let h0 = vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1]));
            let h1 = vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3]));
            let b0 = vandq_u8(vtstq_u8(h0, masks), vdupq_n_u8(0x10));
            let b1 = vandq_u8(vtstq_u8(h1, masks), vdupq_n_u8(0x10));
            let sixteen = vdupq_n_s8(16);
            (
                vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, b0)), sixteen),
                vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(hi, b1)), sixteen),
            )
        };
        let sumi = dot32(
            x0,
            x1,
            load_s8(y, BlockQ8_0::QS),
            load_s8(y, BlockQ8_0::QS + 16),
        );
        sumf += (read_f16(x, BlockQ5_0::D) * read_f16(y, BlockQ8_0::D)) * sumi as f32;
    }
    sumf
}

fn dot_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    let xs = blocks::<{ BlockQ8_0::SIZE }>(w);
    let ys = blocks::<{ BlockQ8_0::SIZE }>(a);
    for (x, y) in xs.zip(ys).take(n / QK) {
        let sumi = dot32(
            load_s8(x, BlockQ8_0::QS),
            load_s8(x, BlockQ8_0::QS + 16),
            load_s8(y, BlockQ8_0::QS),
            load_s8(y, BlockQ8_0::QS + 16),
        );
        sumf += sumi as f32 * (read_f16(x, BlockQ8_0::D) * read_f16(y, BlockQ8_0::D));
    }
    sumf
}

/// Adds `scale · x[p] · y[p]` for 16 elements into the eight lanes (`p % 8`) of `lanes`.
#[inline(always)]
fn lanes_add(lanes: &mut [int32x4_t; 2], x: int8x16_t, y: int8x16_t, scale: i16) {
    // SAFETY: register-only NEON arithmetic.
    unsafe {
        let p0 = vmull_s8(vget_low_s8(x), vget_low_s8(y));
        let p1 = vmull_high_s8(x, y);
        for p in [p0, p1] {
            lanes[0] = vmlal_n_s16(lanes[0], vget_low_s16(p), scale);
            lanes[1] = vmlal_high_n_s16(lanes[1], p, scale);
        }
    }
}

/// `sums[l] += d · lanes[l]`, multiply then add as the scalar twin does.
#[inline(always)]
fn lanes_accumulate(sums: &mut [float32x4_t; 2], lanes: &[int32x4_t; 2], d: f32) {
    // SAFETY: register-only NEON arithmetic.
    unsafe {
        let dv = vdupq_n_f32(d);
        for k in 0..2 {
            sums[k] = vaddq_f32(sums[k], vmulq_f32(dv, vcvtq_f32_s32(lanes[k])));
        }
    }
}

/// The eight lanes added in lane order, as the scalar twin does.
#[inline(always)]
fn lanes_total(start: f32, sums: &[float32x4_t; 2]) -> f32 {
    let mut out = [0f32; 8];
    // SAFETY: stores 4 + 4 floats into the 8-element array.
    unsafe {
        vst1q_f32(out.as_mut_ptr(), sums[0]);
        vst1q_f32(out.as_mut_ptr().add(4), sums[1]);
    }
    let mut s = start;
    for v in out {
        s += v;
    }
    s
}

fn dot_q4_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: register-only NEON setup.
    let mut sums = unsafe { [vdupq_n_f32(0.0); 2] };
    let mut sumf = 0f32;
    let xs = blocks::<{ BlockQ4K::SIZE }>(w);
    let ys = blocks::<{ BlockQ8K::SIZE }>(a);
    for (x, y) in xs.zip(ys).take(n / QK_K) {
        let (sc, mins) = k4_scales_mins(field::<12>(x, BlockQ4K::SCALES));
        let bsums = field::<32>(y, BlockQ8K::BSUMS);
        let mut sumi = 0i32;
        for j in 0..QK_K / 16 {
            let b = i16::from_le_bytes([bsums[2 * j], bsums[2 * j + 1]]) as i32;
            sumi += b * mins[j / 2] as i32;
        }
        // SAFETY: register-only NEON setup.
        let mut lanes = unsafe { [vdupq_n_s32(0); 2] };
        for c in 0..4 {
            for half in 0..2 {
                let (lo, hi) = nibbles(x, BlockQ4K::QS + 32 * c + 16 * half);
                let ylo = load_s8(y, BlockQ8K::QS + 64 * c + 16 * half);
                let yhi = load_s8(y, BlockQ8K::QS + 64 * c + 32 + 16 * half);
                // SAFETY: register-only reinterpretation.
                let (lo, hi) = unsafe { (vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi)) };
                lanes_add(&mut lanes, lo, ylo, sc[2 * c] as i16);
                lanes_add(&mut lanes, hi, yhi, sc[2 * c + 1] as i16);
            }
        }
        let dy = read_f32(y, BlockQ8K::D);
        lanes_accumulate(&mut sums, &lanes, read_f16(x, BlockQ4K::D) * dy);
        sumf -= read_f16(x, BlockQ4K::DMIN) * dy * sumi as f32;
    }
    lanes_total(sumf, &sums)
}

fn dot_q6_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    // SAFETY: register-only NEON setup.
    let mut sums = unsafe { [vdupq_n_f32(0.0); 2] };
    let xs = blocks::<{ BlockQ6K::SIZE }>(w);
    let ys = blocks::<{ BlockQ8K::SIZE }>(a);
    for (x, y) in xs.zip(ys).take(n / QK_K) {
        let v = q6_k_values(field::<128>(x, BlockQ6K::QL), field::<64>(x, BlockQ6K::QH));
        let scales = field::<16>(x, BlockQ6K::SCALES);
        // SAFETY: register-only NEON setup.
        let mut lanes = unsafe { [vdupq_n_s32(0); 2] };
        for (g, &s) in scales.iter().enumerate() {
            // SAFETY: reads the 16 values of group g.
            let xv = unsafe { vld1q_s8(v[16 * g..16 * g + 16].as_ptr()) };
            lanes_add(
                &mut lanes,
                xv,
                load_s8(y, BlockQ8K::QS + 16 * g),
                s as i8 as i16,
            );
        }
        lanes_accumulate(
            &mut sums,
            &lanes,
            read_f16(x, BlockQ6K::D) * read_f32(y, BlockQ8K::D),
        );
    }
    lanes_total(0.0, &sums)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::cpu::scalar;
    use crate::quant::{quantize_row, vec_dot_type};
    use crate::testing::{random_weights, XorShift};

    #[test]
    fn neon_kernels_are_bit_identical_to_their_scalar_twins() {
        use GgmlType::*;
        let mut rng = XorShift(3);
        for ty in [Q4_0, Q5_0, Q8_0, Q4_K, Q6_K] {
            let k = kernel(ty).unwrap();
            let reference = scalar::kernel(ty).unwrap();
            let act = vec_dot_type(ty);
            for case in 0..200 {
                let n = ty.block_size().max(256) * (1 + case % 4);
                // Random quants, finite and moderate f16 scales at every scale field.
                let w = random_weights(ty, n, &mut rng, 0.01);
                let x: Vec<f32> = (0..n).map(|_| rng.next_f32()).collect();
                let mut a = vec![0u8; act.row_bytes(n as u64).unwrap() as usize];
                quantize_row(act, &x, &mut a).unwrap();
                assert_eq!(
                    k(n, &w, &a).to_bits(),
                    reference(n, &w, &a).to_bits(),
                    "{ty} case {case}"
                );
            }
        }
    }
}
