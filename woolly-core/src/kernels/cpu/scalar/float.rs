//! F32, F16 and BF16 dot products, as llama.cpp's portable `ggml_vec_dot_f32`, `ggml_vec_dot_f16`
//! and `ggml_vec_dot_bf16`: each product is formed in f32 and accumulated in f64
//! (`ggml_float`), then the sum is rounded to f32 once.

use crate::quant::blocks::blocks;
use crate::quant::{bf16_to_f32, f16_to_f32};

/// F32 weights · F32 activations.
pub fn dot_f32(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f64;
    for (x, y) in blocks::<4>(w).zip(blocks::<4>(a)).take(n) {
        sum += (f32::from_le_bytes(*x) * f32::from_le_bytes(*y)) as f64;
    }
    sum as f32
}

/// F16 weights · F16 activations.
pub fn dot_f16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f64;
    for (x, y) in blocks::<2>(w).zip(blocks::<2>(a)).take(n) {
        let x = f16_to_f32(u16::from_le_bytes(*x));
        let y = f16_to_f32(u16::from_le_bytes(*y));
        sum += (x * y) as f64;
    }
    sum as f32
}

/// BF16 weights · BF16 activations.
pub fn dot_bf16(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sum = 0f64;
    for (x, y) in blocks::<2>(w).zip(blocks::<2>(a)).take(n) {
        let x = bf16_to_f32(u16::from_le_bytes(*x));
        let y = bf16_to_f32(u16::from_le_bytes(*y));
        sum += (x * y) as f64;
    }
    sum as f32
}
