//! The scalar twins of the float vector operations the attention and the KV cache use (the
//! `VecOps` table in `ops.rs`, where each is described): dot product, f16-rounded scale and
//! multiply-add, rounding to f16, and the small matrix product. The SIMD versions are checked
//! against these.

use half::f16;

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn f16_scale(acc: &mut [f32], s: f32) {
    for x in acc {
        *x = f16::from_f32(*x * s).to_f32();
    }
}

pub fn f16_axpy(acc: &mut [f32], v: &[f32], w: f32) {
    for (x, &y) in acc.iter_mut().zip(v) {
        *x = f16::from_f32(y.mul_add(w, *x)).to_f32();
    }
}

pub fn round_to_f16(x: &mut [f32]) {
    for v in x {
        *v = f16::from_f32(*v).to_f32();
    }
}

pub fn gemm_acc(c: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = c[i * n + j];
            for kk in 0..k {
                acc = b[kk * n + j].mul_add(a[i * k + kk], acc);
            }
            c[i * n + j] = acc;
        }
    }
}
