//! Dequantization of one row, block by block, with the same float operations (and order) as
//! GGML's `dequantize_row_*` and gguf-py's `dequantize_blocks`, so results are bit-identical to
//! both. (GGML built with FMA contraction may fuse `a * b + c`/`a * b - c` in Q4_1, Q5_1, Q2_K,
//! Q4_K and Q5_K; those differ from the unfused result by at most 1 ulp.)

use super::blocks::*;
use super::{bf16_to_f32, f16_to_f32};
use crate::gguf::{GgmlType, QK_K};

/// Dequantizes `dst.len()` elements of `ty` from `src`. The caller has checked that `ty` is
/// supported and that `src` holds exactly that many elements.
pub(super) fn dequantize(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    use GgmlType::*;
    match ty {
        F32 => {
            for (o, c) in dst.iter_mut().zip(blocks::<4>(src)) {
                *o = f32::from_le_bytes(*c);
            }
        }
        F16 => {
            for (o, c) in dst.iter_mut().zip(blocks::<2>(src)) {
                *o = f16_to_f32(u16::from_le_bytes(*c));
            }
        }
        BF16 => {
            for (o, c) in dst.iter_mut().zip(blocks::<2>(src)) {
                *o = bf16_to_f32(u16::from_le_bytes(*c));
            }
        }
        Q4_0 => per_block::<{ BlockQ4_0::SIZE }, 32>(src, dst, q4_0),
        Q4_1 => per_block::<{ BlockQ4_1::SIZE }, 32>(src, dst, q4_1),
        Q5_0 => per_block::<{ BlockQ5_0::SIZE }, 32>(src, dst, q5_0),
        Q5_1 => per_block::<{ BlockQ5_1::SIZE }, 32>(src, dst, q5_1),
        Q8_0 => per_block::<{ BlockQ8_0::SIZE }, 32>(src, dst, q8_0),
        Q8_1 => per_block::<{ BlockQ8_1::SIZE }, 32>(src, dst, q8_1),
        Q2_K => per_block::<{ BlockQ2K::SIZE }, QK_K>(src, dst, q2_k),
        Q3_K => per_block::<{ BlockQ3K::SIZE }, QK_K>(src, dst, q3_k),
        Q4_K => per_block::<{ BlockQ4K::SIZE }, QK_K>(src, dst, q4_k),
        Q5_K => per_block::<{ BlockQ5K::SIZE }, QK_K>(src, dst, q5_k),
        Q6_K => per_block::<{ BlockQ6K::SIZE }, QK_K>(src, dst, q6_k),
        Q8_K => per_block::<{ BlockQ8K::SIZE }, QK_K>(src, dst, q8_k),
        // The public entry points reject every other type before calling here.
        _ => dst.fill(f32::NAN),
    }
}

#[inline(always)]
fn per_block<const S: usize, const E: usize>(
    src: &[u8],
    dst: &mut [f32],
    f: impl Fn(&[u8; S], &mut [f32; E]),
) {
    for (b, y) in blocks::<S>(src).zip(dst.chunks_exact_mut(E)) {
        let y = <&mut [f32; E]>::try_from(y).expect("chunks_exact_mut yields E elements");
        f(b, y);
    }
}

/// `x = (q - 8) · d`
fn q4_0(b: &[u8; 18], y: &mut [f32; 32]) {
    let d = read_f16(b, BlockQ4_0::D);
    let qs = field::<16>(b, BlockQ4_0::QS);
    for j in 0..16 {
        y[j] = ((qs[j] & 0x0f) as i32 - 8) as f32 * d;
        y[j + 16] = ((qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

/// `x = q · d + m`
fn q4_1(b: &[u8; 20], y: &mut [f32; 32]) {
    let (d, m) = (read_f16(b, BlockQ4_1::D), read_f16(b, BlockQ4_1::M));
    let qs = field::<16>(b, BlockQ4_1::QS);
    for j in 0..16 {
        y[j] = (qs[j] & 0x0f) as f32 * d + m;
        y[j + 16] = (qs[j] >> 4) as f32 * d + m;
    }
}

/// `x = (q - 16) · d`
fn q5_0(b: &[u8; 22], y: &mut [f32; 32]) {
    let d = read_f16(b, BlockQ5_0::D);
    let v = q5_values(read_u32(b, BlockQ5_0::QH), field::<16>(b, BlockQ5_0::QS));
    for (o, &q) in y.iter_mut().zip(&v) {
        *o = (q as i32 - 16) as f32 * d;
    }
}

/// `x = q · d + m`
fn q5_1(b: &[u8; 24], y: &mut [f32; 32]) {
    let (d, m) = (read_f16(b, BlockQ5_1::D), read_f16(b, BlockQ5_1::M));
    let v = q5_values(read_u32(b, BlockQ5_1::QH), field::<16>(b, BlockQ5_1::QS));
    for (o, &q) in y.iter_mut().zip(&v) {
        *o = q as f32 * d + m;
    }
}

/// `x = q · d`
fn q8_0(b: &[u8; 34], y: &mut [f32; 32]) {
    let d = read_f16(b, BlockQ8_0::D);
    for (o, &q) in y.iter_mut().zip(field::<32>(b, BlockQ8_0::QS)) {
        *o = q as i8 as f32 * d;
    }
}

/// `x = q · d` (the `s` field is redundant).
fn q8_1(b: &[u8; 36], y: &mut [f32; 32]) {
    let d = read_f16(b, BlockQ8_1::D);
    for (o, &q) in y.iter_mut().zip(field::<32>(b, BlockQ8_1::QS)) {
        *o = q as i8 as f32 * d;
    }
}

/// `x = (d · sc) · q - (dmin · m)` per sub-block of 16.
fn q2_k(b: &[u8; 84], y: &mut [f32; QK_K]) {
    let (d, dmin) = (read_f16(b, BlockQ2K::D), read_f16(b, BlockQ2K::DMIN));
    let scales = field::<16>(b, BlockQ2K::SCALES);
    let q = q2_values(field::<64>(b, BlockQ2K::QS));
    for (s, (ys, qs)) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
        let dl = d * (scales[s] & 0x0f) as f32;
        let ml = dmin * (scales[s] >> 4) as f32;
        for (o, &v) in ys.iter_mut().zip(qs) {
            *o = dl * v as f32 - ml;
        }
    }
}

/// `x = (d · (sc - 32)) · q` per sub-block of 16.
fn q3_k(b: &[u8; 110], y: &mut [f32; QK_K]) {
    let d = read_f16(b, BlockQ3K::D);
    let scales = q3_k_scales(field::<12>(b, BlockQ3K::SCALES));
    let q = q3_k_values(
        field::<32>(b, BlockQ3K::HMASK),
        field::<64>(b, BlockQ3K::QS),
    );
    for (s, (ys, qs)) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
        let dl = d * (scales[s] as i32 - 32) as f32;
        for (o, &v) in ys.iter_mut().zip(qs) {
            *o = dl * v as f32;
        }
    }
}

/// `x = (d · sc) · q - (dmin · m)` per sub-block of 32, for Q4_K and Q5_K.
#[inline(always)]
fn k4_like(d: f32, dmin: f32, scales: &[u8; 12], q: &[u8; QK_K], y: &mut [f32; QK_K]) {
    let (sc, mn) = k4_scales_mins(scales);
    for (s, (ys, qs)) in y.chunks_exact_mut(32).zip(q.chunks_exact(32)).enumerate() {
        let dl = d * sc[s] as f32;
        let ml = dmin * mn[s] as f32;
        for (o, &v) in ys.iter_mut().zip(qs) {
            *o = dl * v as f32 - ml;
        }
    }
}

fn q4_k(b: &[u8; 144], y: &mut [f32; QK_K]) {
    let q = q4_k_values(field::<128>(b, BlockQ4K::QS));
    let (d, dmin) = (read_f16(b, BlockQ4K::D), read_f16(b, BlockQ4K::DMIN));
    k4_like(d, dmin, field::<12>(b, BlockQ4K::SCALES), &q, y);
}

fn q5_k(b: &[u8; 176], y: &mut [f32; QK_K]) {
    let q = q5_k_values(field::<32>(b, BlockQ5K::QH), field::<128>(b, BlockQ5K::QS));
    let (d, dmin) = (read_f16(b, BlockQ5K::D), read_f16(b, BlockQ5K::DMIN));
    k4_like(d, dmin, field::<12>(b, BlockQ5K::SCALES), &q, y);
}

/// `x = (d · sc) · q` per sub-block of 16, `sc` signed.
fn q6_k(b: &[u8; 210], y: &mut [f32; QK_K]) {
    let d = read_f16(b, BlockQ6K::D);
    let scales = field::<16>(b, BlockQ6K::SCALES);
    let q = q6_k_values(field::<128>(b, BlockQ6K::QL), field::<64>(b, BlockQ6K::QH));
    for (s, (ys, qs)) in y.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
        let dl = d * scales[s] as i8 as f32;
        for (o, &v) in ys.iter_mut().zip(qs) {
            *o = dl * v as f32;
        }
    }
}

/// `x = d · q` with an f32 `d`.
fn q8_k(b: &[u8; 292], y: &mut [f32; QK_K]) {
    let d = read_f32(b, BlockQ8K::D);
    for (o, &q) in y.iter_mut().zip(field::<QK_K>(b, BlockQ8K::QS)) {
        *o = d * q as i8 as f32;
    }
}
