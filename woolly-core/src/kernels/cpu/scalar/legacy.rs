//! Dot products of the legacy 32-element formats against Q8_0/Q8_1 activations, transcribing
//! llama.cpp's `ggml_vec_dot_{q4_0,q5_0,q8_0}_q8_0_generic` and
//! `ggml_vec_dot_{q4_1,q5_1}_q8_1_generic`: an exact i32 sum of products per block, then one
//! float expression per block, accumulated in f32 in block order. The float expressions keep
//! llama.cpp's association, which differs between types:
//!
//! | weights | per-block term |
//! |---------|----------------|
//! | Q4_0    | `(sumi · dx) · dy` |
//! | Q5_0    | `(dx · dy) · sumi` |
//! | Q8_0    | `sumi · (dx · dy)` |
//! | Q4_1, Q5_1 | `(dx · dy) · sumi + mx · sy` |

use crate::quant::blocks::{
    blocks, field, q5_values, read_f16, read_u32, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1,
    BlockQ8_0, BlockQ8_1, QK,
};

/// The 32 activation quants of a Q8_0 block.
#[inline(always)]
fn q8_0_qs(y: &[u8; BlockQ8_0::SIZE]) -> &[u8; QK] {
    field::<QK>(y, BlockQ8_0::QS)
}

/// The 32 activation quants of a Q8_1 block.
#[inline(always)]
fn q8_1_qs(y: &[u8; BlockQ8_1::SIZE]) -> &[u8; QK] {
    field::<QK>(y, BlockQ8_1::QS)
}

/// Σ (v[j] - offset) · q8[j] over a block of 32 unpacked values.
#[inline(always)]
fn isum(v: &[u8; QK], offset: i32, q8: &[u8; QK]) -> i32 {
    let mut s = 0i32;
    for j in 0..QK {
        s += (v[j] as i32 - offset) * q8[j] as i8 as i32;
    }
    s
}

/// The 32 four-bit values of a Q4_0/Q4_1 `qs` array, in element order.
#[inline(always)]
fn q4_values(qs: &[u8; 16]) -> [u8; QK] {
    let mut v = [0u8; QK];
    for j in 0..16 {
        v[j] = qs[j] & 0x0f;
        v[j + 16] = qs[j] >> 4;
    }
    v
}

/// Q4_0 weights · Q8_0 activations.
pub fn dot_q4_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    let xs = blocks::<{ BlockQ4_0::SIZE }>(w);
    let ys = blocks::<{ BlockQ8_0::SIZE }>(a);
    for (x, y) in xs.zip(ys).take(n / QK) {
        let v = q4_values(field::<16>(x, BlockQ4_0::QS));
        let sumi = isum(&v, 8, q8_0_qs(y));
        sumf += sumi as f32 * read_f16(x, BlockQ4_0::D) * read_f16(y, BlockQ8_0::D);
    }
    sumf
}

/// Q4_1 weights · Q8_1 activations.
pub fn dot_q4_1_q8_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    let xs = blocks::<{ BlockQ4_1::SIZE }>(w);
    let ys = blocks::<{ BlockQ8_1::SIZE }>(a);
    for (x, y) in xs.zip(ys).take(n / QK) {
        let v = q4_values(field::<16>(x, BlockQ4_1::QS));
        let sumi = isum(&v, 0, q8_1_qs(y));
        let (dx, mx) = (read_f16(x, BlockQ4_1::D), read_f16(x, BlockQ4_1::M));
        let (dy, sy) = (read_f16(y, BlockQ8_1::D), read_f16(y, BlockQ8_1::S));
        sumf += (dx * dy) * sumi as f32 + mx * sy;
    }
    sumf
}

/// Q5_0 weights · Q8_0 activations.
pub fn dot_q5_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    let xs = blocks::<{ BlockQ5_0::SIZE }>(w);
    let ys = blocks::<{ BlockQ8_0::SIZE }>(a);
    for (x, y) in xs.zip(ys).take(n / QK) {
        let v = q5_values(read_u32(x, BlockQ5_0::QH), field::<16>(x, BlockQ5_0::QS));
        let sumi = isum(&v, 16, q8_0_qs(y));
        sumf += (read_f16(x, BlockQ5_0::D) * read_f16(y, BlockQ8_0::D)) * sumi as f32;
    }
    sumf
}

/// Q5_1 weights · Q8_1 activations.
pub fn dot_q5_1_q8_1(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    let xs = blocks::<{ BlockQ5_1::SIZE }>(w);
    let ys = blocks::<{ BlockQ8_1::SIZE }>(a);
    for (x, y) in xs.zip(ys).take(n / QK) {
        let v = q5_values(read_u32(x, BlockQ5_1::QH), field::<16>(x, BlockQ5_1::QS));
        let sumi = isum(&v, 0, q8_1_qs(y));
        let (dx, mx) = (read_f16(x, BlockQ5_1::D), read_f16(x, BlockQ5_1::M));
        let (dy, sy) = (read_f16(y, BlockQ8_1::D), read_f16(y, BlockQ8_1::S));
        sumf += (dx * dy) * sumi as f32 + mx * sy;
    }
    sumf
}

/// Q8_0 weights · Q8_0 activations.
pub fn dot_q8_0_q8_0(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    let xs = blocks::<{ BlockQ8_0::SIZE }>(w);
    let ys = blocks::<{ BlockQ8_0::SIZE }>(a);
    for (x, y) in xs.zip(ys).take(n / QK) {
        let (qx, qy) = (q8_0_qs(x), q8_0_qs(y));
        let mut sumi = 0i32;
        for j in 0..QK {
            sumi += qx[j] as i8 as i32 * qy[j] as i8 as i32;
        }
        sumf += sumi as f32 * (read_f16(x, BlockQ8_0::D) * read_f16(y, BlockQ8_0::D));
    }
    sumf
}
