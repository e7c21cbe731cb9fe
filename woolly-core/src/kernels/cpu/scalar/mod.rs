//! Scalar dot products of one weight row against one activation row in the weight type's
//! activation format (see [`crate::quant::vec_dot_type`]).
//!
//! These are the reference ("scalar twin") implementations that every SIMD kernel is checked
//! against. Each one is a transcription of llama.cpp's portable C kernel
//! (`ggml_vec_dot_*_generic` in `ggml-cpu/quants.c`, `ggml_vec_dot_f32/f16/bf16` in `vec.cpp`):
//! integer arithmetic inside each block, and the same float operations in the same order, so the
//! result is bit-identical to a llama.cpp build without SIMD. The SIMD builds of llama.cpp sum in
//! other orders (per-lane partial sums, FMA), so they agree with these to a few ulps of the sum of
//! absolute block contributions, not bit for bit.
//!
//! Layout of the families:
//! - [`float`]: F32, F16, BF16 (products in f32, accumulated in f64);
//! - [`legacy`]: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 against Q8_0/Q8_1 (one float multiply-add per block);
//! - [`kquants`]: Q2_K .. Q6_K against Q8_K (for Q3_K..Q6_K, eight f32 lane accumulators like
//!   the generic C code).
//!
//! Beside them, [`vec`] holds the scalar twins of the float vector operations (f32 dot
//! product, f16-rounded updates, the small matrix product).
//!
//! Every kernel reads `n / block_size` whole blocks from each operand; the operands must hold at
//! least that many (the dispatchers in [`super`] check this).

pub mod float;
pub mod kquants;
pub mod legacy;
pub mod vec;

use super::VecDotFn;
use crate::gguf::GgmlType;

/// The scalar kernel for weight type `ty`, or `None` when `ty` has no dot product.
pub fn kernel(ty: GgmlType) -> Option<VecDotFn> {
    use GgmlType::*;
    Some(match ty {
        F32 => float::dot_f32,
        F16 => float::dot_f16,
        BF16 => float::dot_bf16,
        Q4_0 => legacy::dot_q4_0_q8_0,
        Q4_1 => legacy::dot_q4_1_q8_1,
        Q5_0 => legacy::dot_q5_0_q8_0,
        Q5_1 => legacy::dot_q5_1_q8_1,
        Q8_0 => legacy::dot_q8_0_q8_0,
        Q2_K => kquants::dot_q2_k_q8_k,
        Q3_K => kquants::dot_q3_k_q8_k,
        Q4_K => kquants::dot_q4_k_q8_k,
        Q5_K => kquants::dot_q5_k_q8_k,
        Q6_K => kquants::dot_q6_k_q8_k,
        _ => return None,
    })
}

/// `w · a` for `n` elements: `w` of type `ty`, `a` in `vec_dot_type(ty)`. NaN when `ty` has no
/// dot product.
pub fn vec_dot(ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    match kernel(ty) {
        Some(f) => f(n, w, a),
        None => f32::NAN,
    }
}
