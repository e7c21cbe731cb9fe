//! x86-64 SIMD kernels, chosen at run time from the features the CPU reports.
//!
//! Each kernel computes the same exact integer sums as its scalar twin in [`super::scalar`];
//! only the order of the float accumulation differs (vector lanes, FMA). The property tests in
//! this module compare every kernel with its twin on random blocks.
//!
//! Levels, best first: AVX-512 VNNI (256-bit `vpdpbusd`, with AVX-512VL) for the types the
//! default model uses, then AVX2 + FMA + F16C for every weight type. A CPU without AVX2 uses
//! the scalar kernels.

mod avx2;
mod avx2_more;
pub mod multi;
pub mod packed;
pub mod quantize;
pub mod vec;
mod vnni;

use super::VecDotFn;
use crate::gguf::GgmlType;

/// What the running CPU offers, as the kernels care about it. Only [`Features::detect`] makes
/// one, so a kernel is never handed out for a CPU that lacks its instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    avx2: bool,
    avx512_vnni: bool,
}

impl Features {
    /// AVX2, FMA and F16C.
    pub fn avx2(&self) -> bool {
        self.avx2
    }

    /// AVX-512 F/BW/VL with VNNI (and AVX2).
    pub fn avx512_vnni(&self) -> bool {
        self.avx512_vnni
    }

    /// Reads the CPU's features (cached by the standard library after the first call).
    pub fn detect() -> Features {
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c");
        let avx512_vnni = avx2
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512vnni");
        Features { avx2, avx512_vnni }
    }
}

/// The best kernel for `ty` at the given feature level, or `None` when only the scalar one
/// applies.
pub fn kernel(ty: GgmlType, f: Features) -> Option<VecDotFn> {
    if f.avx512_vnni {
        if let Some(k) = vnni::kernel(ty) {
            return Some(k);
        }
    }
    if f.avx2 {
        return avx2::kernel(ty).or_else(|| avx2_more::kernel(ty));
    }
    None
}

/// Every level's kernel for `ty` that this CPU can run, named, for the tests and `woolly bench`.
pub fn all_kernels(ty: GgmlType) -> Vec<(&'static str, VecDotFn)> {
    let f = Features::detect();
    let mut v = Vec::new();
    if f.avx2 {
        if let Some(k) = avx2::kernel(ty).or_else(|| avx2_more::kernel(ty)) {
            v.push(("avx2", k));
        }
    }
    if f.avx512_vnni {
        if let Some(k) = vnni::kernel(ty) {
            v.push(("avx512vnni", k));
        }
    }
    v
}

#[cfg(test)]
mod tests;
