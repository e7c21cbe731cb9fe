//! Dot products of the K-quants against Q8_K activations, transcribing llama.cpp's
//! `ggml_vec_dot_q{2,3,4,5,6}_K_q8_K_generic`.
//!
//! - **Q2_K**: one exact i32 sum per super-block, `isum = Σ_s (scales[s] & 15) · Σ q·q8` over the
//!   16 sub-blocks, and the mins through the activation's block sums,
//!   `summs = Σ_s bsums[s] · (scales[s] >> 4)`; then
//!   `sumf += (dy · d) · isum - (dy · dmin) · summs` in f32.
//! - **Q3_K, Q4_K, Q5_K, Q6_K**: the products `scale · q · q8` are summed exactly into eight i32
//!   lanes (element `p` goes to lane `p % 8`), and each lane is accumulated in its own f32,
//!   `sums[l] += (dx · dy) · lane[l]`, across super-blocks; the lanes are added into the result
//!   (in lane order) after the last super-block. Q4_K and Q5_K subtract their mins term
//!   `(dmin · dy) · Σ_j bsums[j] · min[j / 2]` from the result super-block by super-block,
//!   *before* the lanes are added.
//!
//! The activation's `bsums` are used as stored (as llama.cpp does), not recomputed.

use crate::gguf::QK_K;
use crate::quant::blocks::{
    blocks, field, k4_scales_mins, q2_values, q3_k_scales, q3_k_values, q4_k_values, q5_k_values,
    q6_k_values, read_f16, read_f32, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K,
};

/// The fields of one Q8_K activation block.
struct Q8K<'a> {
    d: f32,
    qs: &'a [u8; QK_K],
    bsums: [i32; QK_K / 16],
}

#[inline(always)]
fn q8k(y: &[u8; BlockQ8K::SIZE]) -> Q8K<'_> {
    let raw = field::<32>(y, BlockQ8K::BSUMS);
    let mut bsums = [0i32; QK_K / 16];
    for (j, s) in bsums.iter_mut().enumerate() {
        *s = i16::from_le_bytes([raw[2 * j], raw[2 * j + 1]]) as i32;
    }
    Q8K {
        d: read_f32(y, BlockQ8K::D),
        qs: field::<QK_K>(y, BlockQ8K::QS),
        bsums,
    }
}

/// The eight lane sums: `lane[p % 8] += scale[p / GROUP] · v[p] · q8[p]` over the 256 elements.
#[inline(always)]
fn lane_sums<const GROUP: usize>(v: &[i8; QK_K], q8: &[u8; QK_K], scales: &[i32]) -> [i32; 8] {
    let mut aux32 = [0i32; 8];
    for (g, (vg, qg)) in v
        .chunks_exact(GROUP)
        .zip(q8.chunks_exact(GROUP))
        .enumerate()
    {
        let scale = scales[g];
        for (v8, q8) in vg.chunks_exact(8).zip(qg.chunks_exact(8)) {
            for l in 0..8 {
                aux32[l] += scale * (v8[l] as i32 * q8[l] as i8 as i32);
            }
        }
    }
    aux32
}

/// Unsigned 4/5-bit values as i8 (they are below 32).
#[inline(always)]
fn as_i8(v: [u8; QK_K]) -> [i8; QK_K] {
    v.map(|x| x as i8)
}

/// Q2_K weights · Q8_K activations.
pub fn dot_q2_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sumf = 0f32;
    let xs = blocks::<{ BlockQ2K::SIZE }>(w);
    let ys = blocks::<{ BlockQ8K::SIZE }>(a);
    for (x, y) in xs.zip(ys).take(n / QK_K) {
        let y = q8k(y);
        let sc = field::<16>(x, BlockQ2K::SCALES);
        let mut summs = 0i32;
        for (&bsum, &s) in y.bsums.iter().zip(sc) {
            summs += bsum * (s >> 4) as i32;
        }
        let dall = y.d * read_f16(x, BlockQ2K::D);
        let dmin = y.d * read_f16(x, BlockQ2K::DMIN);
        let q2 = q2_values(field::<64>(x, BlockQ2K::QS));
        let mut isum = 0i32;
        for (s, (vs, qs)) in q2.chunks_exact(16).zip(y.qs.chunks_exact(16)).enumerate() {
            let mut isuml = 0i32;
            for l in 0..16 {
                isuml += qs[l] as i8 as i32 * vs[l] as i32;
            }
            isum += (sc[s] & 0x0f) as i32 * isuml;
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// Q3_K weights · Q8_K activations.
pub fn dot_q3_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sums = [0f32; 8];
    let xs = blocks::<{ BlockQ3K::SIZE }>(w);
    let ys = blocks::<{ BlockQ8K::SIZE }>(a);
    for (x, y) in xs.zip(ys).take(n / QK_K) {
        let y = q8k(y);
        let v = q3_k_values(
            field::<32>(x, BlockQ3K::HMASK),
            field::<64>(x, BlockQ3K::QS),
        );
        let scales = q3_k_scales(field::<12>(x, BlockQ3K::SCALES)).map(|s| s as i32 - 32);
        let aux32 = lane_sums::<16>(&v, y.qs, &scales);
        let d = read_f16(x, BlockQ3K::D) * y.d;
        for l in 0..8 {
            sums[l] += d * aux32[l] as f32;
        }
    }
    let mut sumf = 0f32;
    for s in sums {
        sumf += s;
    }
    sumf
}

/// Shared by Q4_K and Q5_K: `values` unpacks a block's 256 quants.
#[inline(always)]
fn dot_k4_like<const S: usize>(
    n: usize,
    w: &[u8],
    a: &[u8],
    (d_off, dmin_off, scales_off): (usize, usize, usize),
    values: impl Fn(&[u8; S]) -> [u8; QK_K],
) -> f32 {
    let mut sums = [0f32; 8];
    let mut sumf = 0f32;
    let xs = blocks::<S>(w);
    let ys = blocks::<{ BlockQ8K::SIZE }>(a);
    for (x, y) in xs.zip(ys).take(n / QK_K) {
        let y = q8k(y);
        let v = as_i8(values(x));
        let (sc, mins) = k4_scales_mins(field::<12>(x, scales_off));
        let mut sumi = 0i32;
        for j in 0..QK_K / 16 {
            sumi += y.bsums[j] * mins[j / 2] as i32;
        }
        let aux32 = lane_sums::<32>(&v, y.qs, &sc.map(|s| s as i32));
        let d = read_f16(x, d_off) * y.d;
        for l in 0..8 {
            sums[l] += d * aux32[l] as f32;
        }
        let dmin = read_f16(x, dmin_off) * y.d;
        sumf -= dmin * sumi as f32;
    }
    for s in sums {
        sumf += s;
    }
    sumf
}

/// Q4_K weights · Q8_K activations.
pub fn dot_q4_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let offs = (BlockQ4K::D, BlockQ4K::DMIN, BlockQ4K::SCALES);
    dot_k4_like::<{ BlockQ4K::SIZE }>(n, w, a, offs, |x| {
        q4_k_values(field::<128>(x, BlockQ4K::QS))
    })
}

/// Q5_K weights · Q8_K activations.
pub fn dot_q5_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let offs = (BlockQ5K::D, BlockQ5K::DMIN, BlockQ5K::SCALES);
    dot_k4_like::<{ BlockQ5K::SIZE }>(n, w, a, offs, |x| {
        q5_k_values(field::<32>(x, BlockQ5K::QH), field::<128>(x, BlockQ5K::QS))
    })
}

/// Q6_K weights · Q8_K activations.
pub fn dot_q6_k_q8_k(n: usize, w: &[u8], a: &[u8]) -> f32 {
    let mut sums = [0f32; 8];
    let xs = blocks::<{ BlockQ6K::SIZE }>(w);
    let ys = blocks::<{ BlockQ8K::SIZE }>(a);
    for (x, y) in xs.zip(ys).take(n / QK_K) {
        let y = q8k(y);
        let v = q6_k_values(field::<128>(x, BlockQ6K::QL), field::<64>(x, BlockQ6K::QH));
        let scales = field::<16>(x, BlockQ6K::SCALES).map(|s| s as i8 as i32);
        let aux32 = lane_sums::<16>(&v, y.qs, &scales);
        let d = read_f16(x, BlockQ6K::D) * y.d;
        for l in 0..8 {
            sums[l] += d * aux32[l] as f32;
        }
    }
    let mut sumf = 0f32;
    for s in sums {
        sumf += s;
    }
    sumf
}
