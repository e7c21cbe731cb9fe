//! Element-wise and row-wise operations of the transformer: RMSNorm, RoPE, softmax, GELU, SiLU.
//!
//! These are the scalar versions. Their numerics follow llama.cpp's CPU backend where that matters
//! for matching its outputs: sums of squares in f64, RoPE angles advanced by repeated
//! multiplication, and GELU through a table indexed by the f16-rounded input.

use std::sync::OnceLock;

use half::f16;

/// `out = x / sqrt(mean(x^2) + eps) * w`, in place over `x`.
pub fn rms_norm(x: &mut [f32], w: &[f32], eps: f32) {
    debug_assert_eq!(x.len(), w.len());
    let sum: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for (v, &g) in x.iter_mut().zip(w) {
        *v = (*v * scale) * g;
    }
}

/// RMSNorm of each `head_dim`-wide slice of `x` with the same weights (gemma3's QK-norm).
pub fn rms_norm_heads(x: &mut [f32], w: &[f32], eps: f32) {
    for head in x.chunks_exact_mut(w.len()) {
        rms_norm(head, w, eps);
    }
}

/// How RoPE pairs the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Consecutive pairs `(x[2i], x[2i+1])` (llama).
    Norm,
    /// Halves `(x[i], x[i + d/2])` (gemma3, qwen2).
    Neox,
}

/// The per-pair sine and cosine of one position, computed as llama.cpp does: the angle starts at
/// `pos * freq_scale` and is multiplied by `base^(-2/d)` for each successive pair, then divided by
/// the pair's frequency factor when the model has one.
pub fn rope_angles(
    pos: usize,
    n_dims: usize,
    base: f32,
    freq_scale: f32,
    freq_factors: Option<&[f32]>,
    out_cos: &mut [f32],
    out_sin: &mut [f32],
) {
    let theta_scale = base.powf(-2.0 / n_dims as f32);
    let mut theta = pos as f32;
    for i in 0..n_dims / 2 {
        let ff = freq_factors.map(|f| f[i]).unwrap_or(1.0);
        let t = freq_scale * (theta / ff);
        out_cos[i] = t.cos();
        out_sin[i] = t.sin();
        theta *= theta_scale;
    }
}

/// Rotates every head of `x` (heads of `head_dim`, the first `cos.len() * 2` dims rotated).
pub fn rope(x: &mut [f32], head_dim: usize, layout: RopeLayout, cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    for head in x.chunks_exact_mut(head_dim) {
        match layout {
            RopeLayout::Norm => {
                for i in 0..half {
                    let (a, b) = (head[2 * i], head[2 * i + 1]);
                    head[2 * i] = a * cos[i] - b * sin[i];
                    head[2 * i + 1] = a * sin[i] + b * cos[i];
                }
            }
            RopeLayout::Neox => {
                for i in 0..half {
                    let (a, b) = (head[i], head[i + half]);
                    head[i] = a * cos[i] - b * sin[i];
                    head[i + half] = a * sin[i] + b * cos[i];
                }
            }
        }
    }
}

/// Softmax in place; the sum is accumulated in f64.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        x.iter_mut().for_each(|v| *v = 0.0);
        return;
    }
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    x.iter_mut().for_each(|v| *v *= inv);
}

const GELU_COEF_A: f32 = 0.044715;
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// The tanh approximation of GELU, in f32.
#[inline]
pub fn gelu_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh())
}

fn gelu_table() -> &'static [f16] {
    static TABLE: OnceLock<Vec<f16>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|bits| f16::from_f32(gelu_f32(f16::from_bits(bits).to_f32())))
            .collect()
    })
}

/// GELU (tanh) as llama.cpp's CPU backend computes it: through a table over f16 inputs, with the
/// result rounded to f16; below -10 it is 0 and above 10 it is the identity.
#[inline]
pub fn gelu(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        gelu_table()[f16::from_f32(x).to_bits() as usize].to_f32()
    }
}

/// `gate = gelu(gate) * up`, element-wise (gemma's GEGLU).
pub fn geglu(gate: &mut [f32], up: &[f32]) {
    let table = gelu_table();
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        let y = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x
        } else {
            table[f16::from_f32(x).to_bits() as usize].to_f32()
        };
        *g = y * u;
    }
}

/// SiLU, `x * sigmoid(x)`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `gate = silu(gate) * up`, element-wise (llama's SwiGLU).
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
}

/// `acc += x`.
pub fn add_in_place(acc: &mut [f32], x: &[f32]) {
    for (a, &b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_unit_rms() {
        let mut x = vec![3.0f32, -4.0, 0.0, 0.0];
        rms_norm(&mut x, &[1.0; 4], 0.0);
        let rms: f32 = (x.iter().map(|v| v * v).sum::<f32>() / 4.0).sqrt();
        assert!((rms - 1.0).abs() < 1e-6);
        assert!((x[0] / x[1] + 0.75).abs() < 1e-6);
    }

    #[test]
    fn rope_preserves_norm_and_is_identity_at_zero() {
        let mut cos = vec![0.0; 4];
        let mut sin = vec![0.0; 4];
        rope_angles(0, 8, 10000.0, 1.0, None, &mut cos, &mut sin);
        let orig: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
        for layout in [RopeLayout::Norm, RopeLayout::Neox] {
            let mut x = orig.clone();
            rope(&mut x, 8, layout, &cos, &sin);
            assert_eq!(x, orig);
        }
        rope_angles(17, 8, 10000.0, 1.0, None, &mut cos, &mut sin);
        for layout in [RopeLayout::Norm, RopeLayout::Neox] {
            let mut x = orig.clone();
            rope(&mut x, 8, layout, &cos, &sin);
            let n0: f32 = orig.iter().map(|v| v * v).sum();
            let n1: f32 = x.iter().map(|v| v * v).sum();
            assert!((n0 - n1).abs() < 1e-4);
            assert_ne!(x, orig);
        }
    }

    #[test]
    fn rope_first_pair_angle_is_position() {
        let mut cos = vec![0.0; 2];
        let mut sin = vec![0.0; 2];
        rope_angles(3, 4, 10000.0, 1.0, None, &mut cos, &mut sin);
        assert!((cos[0] - 3f32.cos()).abs() < 1e-6);
        assert!((sin[1] - (3.0f32 * 0.01).sin()).abs() < 1e-6);
    }

    #[test]
    fn softmax_sums_to_one_and_handles_masked_rows() {
        let mut x = vec![1.0, 2.0, 3.0, f32::NEG_INFINITY];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(x[3], 0.0);
        let mut all_masked = vec![f32::NEG_INFINITY; 3];
        softmax(&mut all_masked);
        assert_eq!(all_masked, vec![0.0; 3]);
    }

    #[test]
    fn gelu_table_tracks_exact_gelu() {
        for i in -200..200 {
            let x = i as f32 * 0.05;
            assert!(
                (gelu(x) - gelu_f32(x)).abs() < 1e-2 * (1.0 + x.abs()),
                "x={x}"
            );
        }
        assert_eq!(gelu(-11.0), 0.0);
        assert_eq!(gelu(12.0), 12.0);
        let mut g = vec![1.0, -20.0];
        geglu(&mut g, &[2.0, 5.0]);
        assert!((g[0] - 2.0 * gelu(1.0)).abs() < 1e-6);
        assert_eq!(g[1], 0.0);
    }
}

/// `gemm_acc(c, a, b, m, k, n)`: see [`VecOps::gemm_acc`].
pub type GemmAccFn = fn(&mut [f32], &[f32], &[f32], usize, usize, usize);

/// Float vector operations of attention, resolved once for the running CPU (see [`vec_ops`]).
#[derive(Clone, Copy)]
pub struct VecOps {
    /// Σ a·b.
    pub dot: fn(&[f32], &[f32]) -> f32,
    /// `acc[i] = f16(acc[i] · s)`.
    pub f16_scale: fn(&mut [f32], f32),
    /// `acc[i] = f16(acc[i] + v[i] · w)`.
    pub f16_axpy: fn(&mut [f32], &[f32], f32),
    /// `x[i] = f16(x[i])`.
    pub round_to_f16: fn(&mut [f32]),
    /// `c += a · b` (row-major m×n += m×k · k×n), each element one chain of fused
    /// multiply-adds in `k` order.
    pub gemm_acc: GemmAccFn,
}

/// The scalar twins of [`VecOps`], also under their old path.
pub use super::scalar::vec as scalar_vec;

/// The scalar [`VecOps`].
pub const SCALAR_VEC_OPS: VecOps = VecOps {
    dot: scalar_vec::dot,
    f16_scale: scalar_vec::f16_scale,
    f16_axpy: scalar_vec::f16_axpy,
    round_to_f16: scalar_vec::round_to_f16,
    gemm_acc: scalar_vec::gemm_acc,
};

/// The best [`VecOps`] for this CPU (scalar when SIMD is off, see [`super::set_simd`]).
pub fn vec_ops() -> VecOps {
    #[cfg(target_arch = "x86_64")]
    if super::simd_level() != "scalar" {
        use super::x86::vec;
        return VecOps {
            dot: vec::dot,
            f16_scale: vec::f16_scale,
            f16_axpy: vec::f16_axpy,
            round_to_f16: vec::round_to_f16,
            gemm_acc: vec::gemm_acc,
        };
    }
    SCALAR_VEC_OPS
}
