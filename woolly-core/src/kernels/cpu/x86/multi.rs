//! One Q8_0 weight row against several Q8_0 activation rows (prompt processing): the weight
//! block is loaded and its absolute value taken once for four tokens.

use std::arch::x86_64::*;

use super::avx2::{f16_at, f32_at, hsum_ps, load256, q6_k_half, q8k_mins_sum};
use crate::gguf::QK_K;
use crate::quant::blocks::{k4_scales_mins, BlockQ4K, BlockQ6K, BlockQ8K, BlockQ8_0, QK};

/// `out[t] = w · a_t`, `a_t` at `a[t * stride..]`, for `out.len()` tokens. The caller guarantees
/// (checked here) that every row holds `n / 32` whole blocks.
pub fn q8_0_multi(n: usize, w: &[u8], a: &[u8], stride: usize, out: &mut [f32], vnni: bool) {
    let nb = n / QK;
    let ntok = out.len();
    assert!(w.len() >= nb * BlockQ8_0::SIZE);
    assert!(ntok == 0 || a.len() >= (ntok - 1) * stride + nb * BlockQ8_0::SIZE);
    // Safety: the asserts keep every read inside the slices; the kernels were selected after
    // feature detection (`vnni` only when AVX-512 VNNI is present).
    unsafe {
        if vnni {
            q8_0_multi_vnni(nb, w.as_ptr(), a.as_ptr(), stride, out);
        } else {
            q8_0_multi_avx2(nb, w.as_ptr(), a.as_ptr(), stride, out);
        }
    }
}

macro_rules! multi_body {
    ($nb:expr, $w:expr, $a:expr, $stride:expr, $out:expr, $dot:expr) => {{
        let (nb, w, a, stride, out) = ($nb, $w, $a, $stride, $out);
        let ntok = out.len();
        let mut t = 0;
        while t + 4 <= ntok {
            let mut acc = [_mm256_setzero_ps(); 4];
            for b in 0..nb {
                let xb = w.add(b * BlockQ8_0::SIZE);
                let x = load256(xb.add(BlockQ8_0::QS));
                let ax = _mm256_sign_epi8(x, x);
                let dx = f16_at(xb);
                for (k, acc_k) in acc.iter_mut().enumerate() {
                    let yb = a.add((t + k) * stride + b * BlockQ8_0::SIZE);
                    let sy = _mm256_sign_epi8(load256(yb.add(BlockQ8_0::QS)), x);
                    let s = $dot(ax, sy);
                    let d = _mm256_set1_ps(dx * f16_at(yb));
                    *acc_k = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), *acc_k);
                }
            }
            for k in 0..4 {
                out[t + k] = hsum_ps(acc[k]);
            }
            t += 4;
        }
        while t < ntok {
            let mut acc = _mm256_setzero_ps();
            for b in 0..nb {
                let xb = w.add(b * BlockQ8_0::SIZE);
                let yb = a.add(t * stride + b * BlockQ8_0::SIZE);
                let x = load256(xb.add(BlockQ8_0::QS));
                let sy = _mm256_sign_epi8(load256(yb.add(BlockQ8_0::QS)), x);
                let s = $dot(_mm256_sign_epi8(x, x), sy);
                let d = _mm256_set1_ps(f16_at(xb) * f16_at(yb));
                acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), acc);
            }
            out[t] = hsum_ps(acc);
            t += 1;
        }
    }};
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_multi_avx2(nb: usize, w: *const u8, a: *const u8, stride: usize, out: &mut [f32]) {
    let ones = _mm256_set1_epi16(1);
    multi_body!(nb, w, a, stride, out, |ax, sy| _mm256_madd_epi16(
        _mm256_maddubs_epi16(ax, sy),
        ones
    ))
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q8_0_multi_vnni(nb: usize, w: *const u8, a: *const u8, stride: usize, out: &mut [f32]) {
    multi_body!(nb, w, a, stride, out, |ax, sy| _mm256_dpbusd_epi32(
        _mm256_setzero_si256(),
        ax,
        sy
    ))
}

/// `out[k] = w_k · a` for four Q8_0 weight rows `w_k` starting `stride` bytes apart in `w`, against
/// one Q8_0 activation row (token generation): the activation block and its scale are loaded
/// once for the four rows, and the four accumulations run as independent chains.
pub fn q8_0_rows4(n: usize, w: &[u8], stride: usize, a: &[u8], out: &mut [f32; 4], vnni: bool) {
    let nb = n / QK;
    assert!(a.len() >= nb * BlockQ8_0::SIZE);
    assert!(w.len() >= 3 * stride + nb * BlockQ8_0::SIZE);
    // Safety: as for `q8_0_multi`.
    unsafe {
        if vnni {
            q8_0_rows4_vnni(nb, w.as_ptr(), stride, a.as_ptr(), out);
        } else {
            q8_0_rows4_avx2(nb, w.as_ptr(), stride, a.as_ptr(), out);
        }
    }
}

macro_rules! rows4_body {
    ($nb:expr, $w:expr, $stride:expr, $a:expr, $out:expr, $dot:expr) => {{
        let (nb, w, stride, a, out) = ($nb, $w, $stride, $a, $out);
        let mut acc = [_mm256_setzero_ps(); 4];
        for b in 0..nb {
            let yb = a.add(b * BlockQ8_0::SIZE);
            let y = load256(yb.add(BlockQ8_0::QS));
            let dy = f16_at(yb);
            for (k, acc_k) in acc.iter_mut().enumerate() {
                let xb = w.add(k * stride + b * BlockQ8_0::SIZE);
                let x = load256(xb.add(BlockQ8_0::QS));
                let s = $dot(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
                let d = _mm256_set1_ps(f16_at(xb) * dy);
                *acc_k = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(s), *acc_k);
            }
        }
        for k in 0..4 {
            out[k] = hsum_ps(acc[k]);
        }
    }};
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_rows4_avx2(
    nb: usize,
    w: *const u8,
    stride: usize,
    a: *const u8,
    out: &mut [f32; 4],
) {
    let ones = _mm256_set1_epi16(1);
    rows4_body!(nb, w, stride, a, out, |ax, sy| _mm256_madd_epi16(
        _mm256_maddubs_epi16(ax, sy),
        ones
    ))
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q8_0_rows4_vnni(
    nb: usize,
    w: *const u8,
    stride: usize,
    a: *const u8,
    out: &mut [f32; 4],
) {
    rows4_body!(nb, w, stride, a, out, |ax, sy| _mm256_dpbusd_epi32(
        _mm256_setzero_si256(),
        ax,
        sy
    ))
}

/// `out[t] = w · a_t` for one Q4_K or Q6_K weight row and several Q8_K activation rows (`stride`
/// bytes apart): each super-block is unpacked once for up to four tokens. Same exact integer
/// sums as the single-row kernels.
pub fn kquant_multi(
    ty: crate::gguf::GgmlType,
    n: usize,
    w: &[u8],
    a: &[u8],
    stride: usize,
    out: &mut [f32],
    vnni: bool,
) -> bool {
    use crate::gguf::GgmlType;
    let nb = n / QK_K;
    let ntok = out.len();
    let bs = match ty {
        GgmlType::Q4_K => BlockQ4K::SIZE,
        GgmlType::Q6_K => BlockQ6K::SIZE,
        _ => return false,
    };
    assert!(w.len() >= nb * bs);
    assert!(ntok == 0 || a.len() >= (ntok - 1) * stride + nb * BlockQ8K::SIZE);
    let (w, a) = (w.as_ptr(), a.as_ptr());
    let mut t = 0;
    // Safety: the asserts keep the reads in bounds; `vnni` only with AVX-512 VNNI, the AVX2
    // kernels only behind feature detection.
    unsafe {
        while t < ntok {
            let tn = (ntok - t).min(4);
            let o = &mut out[t..t + tn];
            let at = a.add(t * stride);
            match (ty, vnni, tn) {
                (GgmlType::Q4_K, true, 4) => q4_k_tile_vnni::<4>(nb, w, at, stride, o),
                (GgmlType::Q4_K, true, _) => q4_k_tile_vnni::<1>(nb, w, at, stride, &mut o[..1]),
                (GgmlType::Q4_K, false, 4) => q4_k_tile_avx2::<4>(nb, w, at, stride, o),
                (GgmlType::Q4_K, false, _) => q4_k_tile_avx2::<1>(nb, w, at, stride, &mut o[..1]),
                (_, true, 4) => q6_k_tile_vnni::<4>(nb, w, at, stride, o),
                (_, true, _) => q6_k_tile_vnni::<1>(nb, w, at, stride, &mut o[..1]),
                (_, false, 4) => q6_k_tile_avx2::<4>(nb, w, at, stride, o),
                (_, false, _) => q6_k_tile_avx2::<1>(nb, w, at, stride, &mut o[..1]),
            }
            t += if tn == 4 { 4 } else { 1 };
        }
    }
    true
}

macro_rules! q4_k_tile {
    ($nb:expr, $w:expr, $a:expr, $stride:expr, $out:expr, $TN:expr, $scaled:expr) => {{
        let (nb, w, a, stride, out) = ($nb, $w, $a, $stride, $out);
        let m4 = _mm256_set1_epi8(0x0f);
        let mut acc = [_mm256_setzero_ps(); $TN];
        let mut mins = [0f32; $TN];
        for i in 0..nb {
            let x = w.add(i * BlockQ4K::SIZE);
            let (sc, mn) = k4_scales_mins(&*(x.add(BlockQ4K::SCALES) as *const [u8; 12]));
            let dx = f16_at(x.add(BlockQ4K::D));
            let dmx = f16_at(x.add(BlockQ4K::DMIN));
            let qs = x.add(BlockQ4K::QS);
            let mut q = [_mm256_setzero_si256(); 8];
            for c in 0..4 {
                let v = load256(qs.add(32 * c));
                q[2 * c] = _mm256_and_si256(v, m4);
                q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            }
            for k in 0..$TN {
                let y = a.add(k * stride + i * BlockQ8K::SIZE);
                let q8 = y.add(BlockQ8K::QS);
                let mut sumi = _mm256_setzero_si256();
                for j in 0..8 {
                    let p = $scaled(q[j], load256(q8.add(32 * j)), sc[j]);
                    sumi = _mm256_add_epi32(sumi, p);
                }
                let dy = f32_at(y.add(BlockQ8K::D));
                mins[k] += dmx * dy * q8k_mins_sum(y, &mn) as f32;
                acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dx * dy), _mm256_cvtepi32_ps(sumi), acc[k]);
            }
        }
        for k in 0..$TN {
            out[k] = hsum_ps(acc[k]) - mins[k];
        }
    }};
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k_tile_avx2<const TN: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: &mut [f32],
) {
    q4_k_tile!(nb, w, a, stride, out, TN, |q, y, s: u8| _mm256_madd_epi16(
        _mm256_maddubs_epi16(q, y),
        _mm256_set1_epi16(s as i16)
    ))
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_k_tile_vnni<const TN: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: &mut [f32],
) {
    q4_k_tile!(nb, w, a, stride, out, TN, |q, y, s: u8| _mm256_mullo_epi32(
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, y),
        _mm256_set1_epi32(s as i32)
    ))
}

macro_rules! q6_k_tile {
    ($nb:expr, $w:expr, $a:expr, $stride:expr, $out:expr, $TN:expr, $scaled:expr) => {{
        let (nb, w, a, stride, out) = ($nb, $w, $a, $stride, $out);
        let mut acc = [_mm256_setzero_ps(); $TN];
        for i in 0..nb {
            let x = w.add(i * BlockQ6K::SIZE);
            let sc = x.add(BlockQ6K::SCALES) as *const i8;
            let h0 = q6_k_half(x.add(BlockQ6K::QL), x.add(BlockQ6K::QH));
            let h1 = q6_k_half(x.add(BlockQ6K::QL + 64), x.add(BlockQ6K::QH + 32));
            let q = [h0[0], h0[1], h0[2], h0[3], h1[0], h1[1], h1[2], h1[3]];
            let dx = f16_at(x.add(BlockQ6K::D));
            for k in 0..$TN {
                let y = a.add(k * stride + i * BlockQ8K::SIZE);
                let mut sumi = _mm256_setzero_si256();
                for j in 0..8 {
                    let y8 = load256(y.add(BlockQ8K::QS + 32 * j));
                    let p = $scaled(q[j], y8, *sc.add(2 * j), *sc.add(2 * j + 1));
                    sumi = _mm256_add_epi32(sumi, p);
                }
                let d = _mm256_set1_ps(dx * f32_at(y.add(BlockQ8K::D)));
                acc[k] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc[k]);
            }
        }
        for k in 0..$TN {
            out[k] = hsum_ps(acc[k]);
        }
    }};
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k_tile_avx2<const TN: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: &mut [f32],
) {
    let m32 = _mm256_set1_epi8(32);
    q6_k_tile!(nb, w, a, stride, out, TN, |q, y8, s0: i8, s1: i8| {
        let p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, y8), _mm256_maddubs_epi16(m32, y8));
        let scale = _mm256_set_m128i(_mm_set1_epi16(s1 as i16), _mm_set1_epi16(s0 as i16));
        _mm256_madd_epi16(p, scale)
    })
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q6_k_tile_vnni<const TN: usize>(
    nb: usize,
    w: *const u8,
    a: *const u8,
    stride: usize,
    out: &mut [f32],
) {
    let m32 = _mm256_set1_epi8(32);
    q6_k_tile!(nb, w, a, stride, out, TN, |q, y8, s0: i8, s1: i8| {
        let p = _mm256_sub_epi32(
            _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, y8),
            _mm256_dpbusd_epi32(_mm256_setzero_si256(), m32, y8),
        );
        let scale = _mm256_set_m128i(_mm_set1_epi32(s1 as i32), _mm_set1_epi32(s0 as i32));
        _mm256_mullo_epi32(p, scale)
    })
}
