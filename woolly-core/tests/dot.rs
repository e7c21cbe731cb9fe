//! Every weight type's dot product against quantized activations agrees with the exact dot
//! product of the dequantized operands, and activation quantization stays close to the input.

use half::f16;
use woolly_core::gguf::GgmlType;
use woolly_core::kernels::cpu;
use woolly_core::quant::{dequantize_row, quantize_row, vec_dot_type};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// Byte offsets of the f16 scale fields in each block type.
fn scale_fields(ty: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q4_K | Q5_K => &[0, 2],
        Q6_K => &[208],
        _ => &[],
    }
}

/// A random row of `n` elements of `ty` with finite, moderate values.
fn random_row(ty: GgmlType, n: usize, rng: &mut Rng) -> Vec<u8> {
    use GgmlType::*;
    match ty {
        F32 => (0..n).flat_map(|_| rng.f32().to_le_bytes()).collect(),
        F16 => (0..n)
            .flat_map(|_| f16::from_f32(rng.f32()).to_le_bytes())
            .collect(),
        BF16 => (0..n)
            .flat_map(|_| half::bf16::from_f32(rng.f32()).to_le_bytes())
            .collect(),
        _ => {
            let ts = ty.type_size();
            let mut b: Vec<u8> = (0..n / ty.block_size() * ts)
                .map(|_| rng.next() as u8)
                .collect();
            for block in b.chunks_exact_mut(ts) {
                for &off in scale_fields(ty) {
                    let v = f16::from_f32(rng.f32() * 0.01);
                    block[off..off + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
            b
        }
    }
}

const TYPES: [GgmlType; 13] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

#[test]
fn dot_products_match_dequantized_reference() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let n = 1024;
    for ty in TYPES {
        for trial in 0..20 {
            let w = random_row(ty, n, &mut rng);
            let x: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
            let act = vec_dot_type(ty);
            let mut a = vec![0u8; act.row_bytes(n as u64).unwrap() as usize];
            quantize_row(act, &x, &mut a).unwrap();

            let mut wf = vec![0f32; n];
            dequantize_row(ty, &w, &mut wf).unwrap();
            let mut af = vec![0f32; n];
            dequantize_row(act, &a, &mut af).unwrap();
            let exact: f64 = wf.iter().zip(&af).map(|(&p, &q)| p as f64 * q as f64).sum();
            let scale: f64 = wf
                .iter()
                .zip(&af)
                .map(|(&p, &q)| (p as f64 * q as f64).abs())
                .sum();
            let got = cpu::vec_dot(ty, n, &w, &a) as f64;
            assert!(
                (got - exact).abs() <= 1e-5 * scale + 1e-6,
                "{ty} trial {trial}: vec_dot {got} vs dequantized {exact}"
            );
            // The activation quantization itself is close to the input.
            let plain: f64 = wf.iter().zip(&x).map(|(&p, &q)| p as f64 * q as f64).sum();
            assert!(
                (got - plain).abs() <= 0.02 * scale + 1e-5,
                "{ty} trial {trial}: vec_dot {got} vs unquantized {plain}"
            );
        }
    }
}

#[test]
fn wrong_lengths_are_errors_not_panics() {
    let mut out = vec![0f32; 32];
    assert!(dequantize_row(GgmlType::Q4_0, &[0u8; 17], &mut out).is_err());
    assert!(dequantize_row(GgmlType::Q4_K, &[0u8; 144], &mut out).is_err());
    assert!(dequantize_row(GgmlType::IQ2_XXS, &[0u8; 66], &mut vec![0f32; 256]).is_err());
    let mut q = vec![0u8; 33];
    assert!(quantize_row(GgmlType::Q8_0, &out, &mut q).is_err());
    assert!(quantize_row(GgmlType::Q4_K, &vec![0f32; 256], &mut [0u8; 144]).is_err());
    let mut empty: Vec<f32> = vec![];
    dequantize_row(GgmlType::Q8_0, &[], &mut empty).unwrap();
}

#[test]
fn zero_activations_quantize_to_zero() {
    for act in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K] {
        let x = vec![0f32; 256];
        let mut a = vec![0xffu8; act.row_bytes(256).unwrap() as usize];
        quantize_row(act, &x, &mut a).unwrap();
        let mut back = vec![1f32; 256];
        dequantize_row(act, &a, &mut back).unwrap();
        assert!(back.iter().all(|&v| v == 0.0), "{act}");
    }
}
