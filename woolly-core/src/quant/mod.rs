//! Block formats of quantized tensors: layouts, dequantization and activation quantization.
//!
//! Each block-quantized type stores `block_size()` elements in `type_size()` bytes (see
//! [`GgmlType`]). The layouts are GGML's, byte for byte, and are documented field by field in
//! [`blocks`]; all multi-byte fields are little-endian and `f16` means IEEE half precision.
//!
//! | type | elements | bytes | layout | value |
//! |------|---------:|------:|--------|-------|
//! | Q4_0 | 32 | 18 | d:f16, qs[16] (low nibbles: elements 0..16, high: 16..32) | (q - 8)·d |
//! | Q4_1 | 32 | 20 | d:f16, m:f16, qs[16] | q·d + m |
//! | Q5_0 | 32 | 22 | d:f16, qh:u32 (5th bits), qs[16] | (q - 16)·d |
//! | Q5_1 | 32 | 24 | d:f16, m:f16, qh:u32, qs[16] | q·d + m |
//! | Q8_0 | 32 | 34 | d:f16, qs:i8[32] | q·d |
//! | Q8_1 | 32 | 36 | d:f16, s:f16 (= d·Σq), qs:i8[32] | q·d |
//! | Q2_K | 256 | 84 | scales[16] (4-bit scale and min per 16), qs[64] (2 bits), d:f16, dmin:f16 | d·sc·q - dmin·m |
//! | Q3_K | 256 | 110 | hmask[32] (3rd bits), qs[64] (2 bits), scales[12] (6-bit, per 16), d:f16 | d·(sc - 32)·q |
//! | Q4_K | 256 | 144 | d:f16, dmin:f16, scales[12] (6-bit scale and min per 32), qs[128] | d·sc·q - dmin·m |
//! | Q5_K | 256 | 176 | d:f16, dmin:f16, scales[12], qh[32] (5th bits), qs[128] | d·sc·q - dmin·m |
//! | Q6_K | 256 | 210 | ql[128] (low 4 bits), qh[64] (high 2 bits), scales:i8[16] (per 16), d:f16 | d·sc·(q - 32) |
//! | Q8_K | 256 | 292 | d:f32, qs:i8[256], bsums:i16[16] (sums of each 16 qs) | q·d |
//!
//! Matrix products follow llama.cpp's CPU backend: the activation row is first quantized (with
//! [`quantize_row`]) into the format [`vec_dot_type`] pairs with the weight type, then each
//! weight row is dotted with it by `crate::kernels::cpu::vec_dot`.
//!
//! Nothing here allocates; every function works on caller-provided slices.

pub mod blocks;
pub mod random;

mod activation;
mod dequant;

use crate::gguf::GgmlType;
use crate::{Error, Result};

/// Widens IEEE half-precision bits to f32 (exact).
#[inline(always)]
pub fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

/// Rounds an f32 to IEEE half precision, to nearest even (as F16C and GGML do).
#[inline(always)]
pub fn f32_to_f16(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// Widens bfloat16 bits to f32 (exact).
#[inline(always)]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// Rounds an f32 to bfloat16 as GGML's `ggml_compute_fp32_to_bf16` does: to nearest even, NaN
/// kept (made quiet), infinities kept, overflow to infinity.
#[inline(always)]
pub fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u + (0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

/// The activation format each weight type's dot product takes, exactly as llama.cpp's CPU backend
/// pairs them (`type_traits_cpu[..].vec_dot_type`): F32, F16 and BF16 pair with themselves,
/// Q4_0/Q5_0/Q8_0 with Q8_0, Q4_1/Q5_1 with Q8_1, and the K-quants with Q8_K.
///
/// Types without a dot product (see [`GgmlType::is_computable`]) map to F32; they are rejected
/// by the kernels.
pub fn vec_dot_type(ty: GgmlType) -> GgmlType {
    use GgmlType::*;
    match ty {
        F32 => F32,
        F16 => F16,
        BF16 => BF16,
        Q4_0 | Q5_0 | Q8_0 => Q8_0,
        Q4_1 | Q5_1 => Q8_1,
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => Q8_K,
        _ => F32,
    }
}

/// Whether `ty` is one of the activation formats [`quantize_row`] produces.
pub fn is_activation_type(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, F32 | F16 | BF16 | Q8_0 | Q8_1 | Q8_K)
}

/// Whether [`dequantize_row`] handles `ty`: every computable weight type plus the activation
/// formats Q8_1 and Q8_K.
pub fn can_dequantize(ty: GgmlType) -> bool {
    ty.is_computable() || matches!(ty, GgmlType::Q8_1 | GgmlType::Q8_K)
}

/// Checks that `bytes` bytes hold exactly `n` elements of `ty`.
fn check_lengths(ty: GgmlType, bytes: usize, n: usize) -> Result<()> {
    match ty.row_bytes(n as u64) {
        Some(rb) if rb == bytes as u64 => Ok(()),
        Some(rb) => Err(Error::InvalidArgument(format!(
            "{n} {ty} elements take {rb} bytes, got {bytes}"
        ))),
        None => Err(Error::InvalidArgument(format!(
            "{n} elements is not a whole number of {ty} blocks of {}",
            ty.block_size()
        ))),
    }
}

/// Dequantizes one row of `dst.len()` elements of type `ty` from `src`.
///
/// Results are bit-identical to GGML's `dequantize_row_*` (compiled without FMA contraction) and
/// to gguf-py's `gguf.quants.dequantize`.
///
/// # Errors
/// [`Error::Unsupported`] when `ty` cannot be dequantized (see [`can_dequantize`]);
/// [`Error::InvalidArgument`] when `dst.len()` is not a whole number of blocks or `src.len()` is
/// not `ty.row_bytes(dst.len())`.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    if !can_dequantize(ty) {
        return Err(Error::Unsupported(format!("dequantizing {ty}")));
    }
    check_lengths(ty, src.len(), dst.len())?;
    dequant::dequantize(ty, src, dst);
    Ok(())
}

/// [`dequantize_row`] without the checks, for hot paths whose lengths are already validated.
///
/// It never panics: with an unsupported type `dst` is filled with NaN, and with mismatched lengths
/// only the whole blocks both slices cover are written.
#[inline]
pub fn dequantize_row_unchecked(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    dequant::dequantize(ty, src, dst);
}

/// Quantizes one row of activations `src` into `dst` in the activation format `act` (F32, F16,
/// BF16, Q8_0, Q8_1 or Q8_K), with GGML's reference rounding (see the notes on each format in
/// the source of this module's `activation` part; Q8_0/Q8_1 round half away from zero, Q8_K half
/// to even).
///
/// # Errors
/// [`Error::Unsupported`] when `act` is not an activation format (see [`is_activation_type`]);
/// [`Error::InvalidArgument`] when `src.len()` is not a whole number of blocks or `dst.len()` is
/// not `act.row_bytes(src.len())`.
pub fn quantize_row(act: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    if !is_activation_type(act) {
        return Err(Error::Unsupported(format!(
            "quantizing activations to {act}"
        )));
    }
    check_lengths(act, dst.len(), src.len())?;
    activation::quantize(act, src, dst);
    Ok(())
}

/// [`quantize_row`] without the checks, for hot paths whose lengths are already validated.
///
/// It never panics: with an unsupported format `dst` is zeroed, and with mismatched lengths only
/// the whole blocks both slices cover are written.
#[inline]
pub fn quantize_row_unchecked(act: GgmlType, src: &[f32], dst: &mut [u8]) {
    activation::quantize(act, src, dst);
}

/// Rewrites `n` elements of a Q4_0 or Q5_0 row as Q8_0 into `out` (resized): the same scale and
/// the same integer values (`q - 8`, `q - 16`), so dot products against Q8_0 activations are
/// unchanged. Other types leave `out` empty.
pub fn repack_to_q8_0(ty: GgmlType, n: usize, w: &[u8], out: &mut Vec<u8>) {
    use blocks::{field, q5_values, read_u32, BlockQ4_0, BlockQ5_0, BlockQ8_0, QK};
    out.clear();
    let nb = n / QK;
    out.resize(nb * BlockQ8_0::SIZE, 0);
    match ty {
        GgmlType::Q4_0 => {
            for (x, o) in w
                .chunks_exact(BlockQ4_0::SIZE)
                .zip(out.chunks_exact_mut(BlockQ8_0::SIZE))
            {
                o[..2].copy_from_slice(&x[BlockQ4_0::D..BlockQ4_0::D + 2]);
                let qs = &x[BlockQ4_0::QS..BlockQ4_0::QS + 16];
                for j in 0..16 {
                    o[2 + j] = ((qs[j] & 0x0f) as i8 - 8) as u8;
                    o[2 + j + 16] = ((qs[j] >> 4) as i8 - 8) as u8;
                }
            }
        }
        GgmlType::Q5_0 => {
            for (x, o) in w
                .chunks_exact(BlockQ5_0::SIZE)
                .zip(out.chunks_exact_mut(BlockQ8_0::SIZE))
            {
                let x: &[u8; BlockQ5_0::SIZE] = x.try_into().expect("whole block");
                o[..2].copy_from_slice(&x[BlockQ5_0::D..BlockQ5_0::D + 2]);
                let v = q5_values(read_u32(x, BlockQ5_0::QH), field::<16>(x, BlockQ5_0::QS));
                for j in 0..QK {
                    o[2 + j] = (v[j] as i8 - 16) as u8;
                }
            }
        }
        _ => out.clear(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::QK_K;
    use GgmlType::*;

    fn bytes_for(ty: GgmlType, n: usize) -> Vec<u8> {
        vec![0u8; ty.row_bytes(n as u64).unwrap() as usize]
    }

    #[test]
    fn pairs_like_llama_cpp() {
        for (w, a) in [
            (F32, F32),
            (F16, F16),
            (BF16, BF16),
            (Q4_0, Q8_0),
            (Q5_0, Q8_0),
            (Q8_0, Q8_0),
            (Q4_1, Q8_1),
            (Q5_1, Q8_1),
            (Q2_K, Q8_K),
            (Q3_K, Q8_K),
            (Q4_K, Q8_K),
            (Q5_K, Q8_K),
            (Q6_K, Q8_K),
        ] {
            assert_eq!(vec_dot_type(w), a, "{w}");
            assert!(is_activation_type(a));
            assert!(can_dequantize(w) && can_dequantize(a));
        }
    }

    #[test]
    fn bf16_rounding_matches_ggml() {
        // Round to nearest, ties to even.
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        // NaN stays NaN and becomes quiet; infinities and overflow.
        assert_eq!(f32_to_bf16(f32::from_bits(0x7f80_0001)), 0x7fc0);
        assert_eq!(f32_to_bf16(f32::INFINITY), 0x7f80);
        assert_eq!(f32_to_bf16(f32::MAX), 0x7f80);
        assert_eq!(bf16_to_f32(0xbf80), -1.0);
    }

    #[test]
    fn q8_0_rounds_half_away_from_zero() {
        // amax = 127 gives d = 1 and id = 1, so x·id is exactly x.
        let mut x = vec![0f32; 32];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = -2.5;
        x[3] = 0.5;
        x[4] = -3.5;
        let mut q = bytes_for(Q8_0, 32);
        quantize_row(Q8_0, &x, &mut q).unwrap();
        assert_eq!(f16_to_f32(u16::from_le_bytes([q[0], q[1]])), 1.0);
        let qs: Vec<i8> = q[2..7].iter().map(|&b| b as i8).collect();
        assert_eq!(qs, [127, 3, -3, 1, -4]);
    }

    #[test]
    fn q8_1_stores_the_scaled_sum() {
        let x: Vec<f32> = (0..64).map(|i| (i as f32 - 20.0) * 0.37).collect();
        let mut q = bytes_for(Q8_1, 64);
        quantize_row(Q8_1, &x, &mut q).unwrap();
        for b in q.chunks_exact(36) {
            let d = f16_to_f32(u16::from_le_bytes([b[0], b[1]]));
            let s = f16_to_f32(u16::from_le_bytes([b[2], b[3]]));
            let sum: i32 = b[4..].iter().map(|&v| v as i8 as i32).sum();
            assert!(
                (s - d * sum as f32).abs() <= 1e-3 * s.abs().max(1.0),
                "{s} vs {d}·{sum}"
            );
        }
    }

    #[test]
    fn q8_k_keeps_the_sign_of_the_largest_element_and_rounds_half_to_even() {
        // max = +127 → iscale = -1: quants are negated, d = -1.
        let mut x = vec![0f32; QK_K];
        x[0] = 2.5;
        x[1] = -3.5;
        x[2] = 127.0;
        x[3] = -127.0; // same |x| later: the first one wins
        let mut q = bytes_for(Q8_K, QK_K);
        quantize_row(Q8_K, &x, &mut q).unwrap();
        assert_eq!(f32::from_le_bytes([q[0], q[1], q[2], q[3]]), -1.0);
        let qs: Vec<i8> = q[4..8].iter().map(|&b| b as i8).collect();
        assert_eq!(qs, [-2, 4, -127, 127]);
        assert_eq!(i16::from_le_bytes([q[260], q[261]]), 2);
    }

    #[test]
    fn zero_blocks_quantize_to_zero() {
        for act in [Q8_0, Q8_1, Q8_K] {
            let x = vec![0f32; 512];
            let mut q = vec![0xa5u8; act.row_bytes(512).unwrap() as usize];
            quantize_row(act, &x, &mut q).unwrap();
            assert!(q.iter().all(|&b| b == 0), "{act}");
        }
    }

    #[test]
    fn lengths_are_checked() {
        let mut out = vec![0f32; 32];
        assert!(matches!(
            dequantize_row(Q4_0, &[0u8; 17], &mut out),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            dequantize_row(Q4_K, &[0u8; 144], &mut out),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            dequantize_row(IQ2_XXS, &[0u8; 66], &mut [0f32; 256]),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(
            quantize_row(Q8_0, &out, &mut [0u8; 33]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            quantize_row(Q8_0, &out[..31], &mut [0u8; 34]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            quantize_row(Q4_K, &[0f32; 256], &mut [0u8; 144]),
            Err(Error::Unsupported(_))
        ));
        // Empty rows are fine.
        dequantize_row(Q8_0, &[], &mut []).unwrap();
        quantize_row(Q8_K, &[], &mut []).unwrap();
    }

    #[test]
    fn unchecked_variants_never_panic() {
        let mut out = vec![0f32; 40];
        dequantize_row_unchecked(Q4_K, &[0u8; 10], &mut out);
        dequantize_row_unchecked(IQ2_XXS, &[0u8; 10], &mut out);
        assert!(out.iter().all(|v| v.is_nan()));
        let mut q = vec![1u8; 10];
        quantize_row_unchecked(Q8_K, &out, &mut q);
        quantize_row_unchecked(Q4_0, &out, &mut q);
    }

    #[test]
    fn q4_0_block_by_hand() {
        // d = 0.5, nibbles: element j = j % 16, element j + 16 = 15 - j % 16.
        let mut b = vec![0u8; 18];
        b[..2].copy_from_slice(&f32_to_f16(0.5).to_le_bytes());
        for j in 0..16 {
            b[2 + j] = (j as u8) | ((15 - j as u8) << 4);
        }
        let mut y = [0f32; 32];
        dequantize_row(Q4_0, &b, &mut y).unwrap();
        for j in 0..16 {
            assert_eq!(y[j], (j as f32 - 8.0) * 0.5);
            assert_eq!(y[j + 16], (7.0 - j as f32) * 0.5);
        }
    }

    #[test]
    fn activation_round_trip_is_close() {
        let x: Vec<f32> = (0..512)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        for act in [F32, F16, BF16, Q8_0, Q8_1, Q8_K] {
            let mut q = bytes_for(act, x.len());
            quantize_row(act, &x, &mut q).unwrap();
            let mut back = vec![0f32; x.len()];
            dequantize_row(act, &q, &mut back).unwrap();
            let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (a, b) in x.iter().zip(&back) {
                assert!((a - b).abs() <= amax / 127.0, "{act}: {a} vs {b}");
            }
        }
    }
}
