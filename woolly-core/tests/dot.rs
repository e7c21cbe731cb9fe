//! Every weight type's dot product against quantized activations agrees with the exact dot
//! product of the dequantized operands, and activation quantization stays close to the input.

use woolly_core::gguf::GgmlType;
use woolly_core::kernels::cpu;
use woolly_core::quant::{dequantize_row, quantize_row, vec_dot_type};
use woolly_core::testing::{random_weights, XorShift};

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
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    let n = 1024;
    for ty in TYPES {
        for trial in 0..20 {
            let w = random_weights(ty, n, &mut rng, 0.01);
            let x: Vec<f32> = (0..n).map(|_| rng.next_f32()).collect();
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
