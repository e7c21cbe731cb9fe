//! Deterministic random blocks of every weight type, with finite scales: test data, and the
//! inputs of `woolly gpu-check kernels`, which compares the GPU's kernels with the CPU's on a
//! machine without the test suite.

use half::{bf16, f16};

use crate::gguf::GgmlType;

/// xorshift64 (shifts 13, 7, 17): deterministic test data without a dependency. Tests depend on
/// the exact sequence, so the algorithm must not change. A zero seed stays zero.
#[derive(Debug, Clone)]
pub struct XorShift(pub u64);

impl XorShift {
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [-1, 1), from the top 24 bits.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// The next value modulo `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Byte offsets of the f16 scale fields (`d`, `m`, `dmin`) in each block type.
pub fn scale_fields(ty: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 => &[0],
        Q4_1 | Q5_1 | Q4_K | Q5_K => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q6_K => &[208],
        _ => &[],
    }
}

/// A random row of `n` elements of `ty` with finite values: floats uniform in [-1, 1); for block
/// types random bytes, then every f16 scale field set to a uniform value in `[-scale, scale)`.
pub fn random_weights(ty: GgmlType, n: usize, rng: &mut XorShift, scale: f32) -> Vec<u8> {
    use GgmlType::*;
    match ty {
        F32 => (0..n).flat_map(|_| rng.next_f32().to_le_bytes()).collect(),
        F16 => (0..n)
            .flat_map(|_| f16::from_f32(rng.next_f32()).to_le_bytes())
            .collect(),
        BF16 => (0..n)
            .flat_map(|_| bf16::from_f32(rng.next_f32()).to_le_bytes())
            .collect(),
        _ => {
            let ts = ty.type_size();
            let mut b: Vec<u8> = (0..n / ty.block_size() * ts)
                .map(|_| rng.next_u64() as u8)
                .collect();
            for block in b.chunks_exact_mut(ts) {
                for &off in scale_fields(ty) {
                    let v = f16::from_f32(rng.next_f32() * scale);
                    block[off..off + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
            b
        }
    }
}
