//! Q8_0 weights repacked eight rows at a time for matrix-vector products (token generation).
//!
//! Layout, per group of eight rows and per 32-element block: the eight f16 scales side by side,
//! and the eight rows' 32 quants interleaved in 4-byte pieces (piece `k` of row `r` at byte
//! `32·k + 4·r`), 32-byte aligned. One broadcast of four activation bytes against one load of
//! this layout then gives the eight rows' partial sums in the eight lanes of one vector, so a
//! block of eight rows costs eight multiply-adds, one scale conversion and one FMA, with no
//! horizontal sums; the same integers as the row-by-row kernels, so the same exact block sums.

use std::arch::x86_64::*;

use super::avx2::f16_at;
use crate::quant::blocks::{BlockQ8_0, QK};

macro_rules! gemv_body {
    ($self:expr, $a:expr, $first_group:expr, $out:expr, $madd:expr) => {{
        let (this, a, first_group, out) = ($self, $a, $first_group, $out);
        let nb = this.nb;
        let q = this.quants.as_ptr();
        let sc = this.scales.as_ptr();
        for (gi, o) in out.chunks_exact_mut(8).enumerate() {
            let g = first_group + gi;
            let mut acc = _mm256_setzero_ps();
            for b in 0..nb {
                let yb = a.add(b * BlockQ8_0::SIZE);
                let ys = yb.add(BlockQ8_0::QS) as *const i32;
                let base = q.add((g * nb + b) * 8);
                let mut isum = _mm256_setzero_si256();
                for k in 0..8 {
                    let y = _mm256_set1_epi32(ys.add(k).read_unaligned());
                    isum = $madd(isum, _mm256_load_si256(base.add(k)), y);
                }
                let d = _mm256_mul_ps(
                    _mm256_cvtph_ps(_mm_loadu_si128(sc.add((g * nb + b) * 8) as *const __m128i)),
                    _mm256_set1_ps(f16_at(yb)),
                );
                acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum), acc);
            }
            _mm256_storeu_ps(o.as_mut_ptr(), acc);
        }
    }};
}

/// A Q8_0 matrix in the eight-row layout.
pub struct PackedQ8 {
    rows: usize,
    nb: usize,
    /// `[groups][nb][8 rows × 32 quants]`, as 32-byte vectors for alignment.
    quants: Vec<__m256i>,
    /// `[groups][nb][8]` f16 bits.
    scales: Vec<u16>,
}

// The vectors are plain bytes.
unsafe impl Send for PackedQ8 {}
unsafe impl Sync for PackedQ8 {}

impl std::fmt::Debug for PackedQ8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedQ8 {{ rows: {}, blocks: {} }}", self.rows, self.nb)
    }
}

impl PackedQ8 {
    /// Repacks `rows` Q8_0 rows of `cols` elements from `data` (row after row). `None` unless
    /// `rows` is a multiple of 8, `cols` of 32, and `data` holds exactly that matrix.
    pub fn from_q8_0(data: &[u8], rows: usize, cols: usize) -> Option<PackedQ8> {
        Self::from_q8_0_with(data, rows, cols, |_| {})
    }

    /// [`PackedQ8::from_q8_0`], calling `done(range)` with each byte range of `data` once it has
    /// been copied (so that the caller can release those pages as it goes).
    pub fn from_q8_0_with(
        data: &[u8],
        rows: usize,
        cols: usize,
        mut done: impl FnMut(std::ops::Range<usize>),
    ) -> Option<PackedQ8> {
        if rows % 8 != 0 || cols % QK != 0 || rows == 0 {
            return None;
        }
        let nb = cols / QK;
        let rb = nb * BlockQ8_0::SIZE;
        if data.len() != rows.checked_mul(rb)? {
            return None;
        }
        let groups = rows / 8;
        let mut quants = vec![unsafe { _mm256_setzero_si256() }; groups * nb * 8];
        let mut scales = vec![0u16; groups * nb * 8];
        // Safety: `quants` is plain memory of groups·nb·256 bytes.
        let qbytes = unsafe {
            std::slice::from_raw_parts_mut(quants.as_mut_ptr() as *mut u8, groups * nb * 256)
        };
        for g in 0..groups {
            for b in 0..nb {
                let dst = &mut qbytes[(g * nb + b) * 256..(g * nb + b + 1) * 256];
                for r in 0..8 {
                    let src = &data[(g * 8 + r) * rb + b * BlockQ8_0::SIZE..][..BlockQ8_0::SIZE];
                    scales[(g * nb + b) * 8 + r] = u16::from_le_bytes([src[0], src[1]]);
                    for k in 0..8 {
                        dst[32 * k + 4 * r..32 * k + 4 * r + 4]
                            .copy_from_slice(&src[2 + 4 * k..2 + 4 * k + 4]);
                    }
                }
            }
            if (g + 1) % 256 == 0 || g + 1 == groups {
                let band = 256 * 8 * rb;
                let start = g / 256 * band;
                done(start..(g + 1) * 8 * rb);
            }
        }
        Some(PackedQ8 {
            rows,
            nb,
            quants,
            scales,
        })
    }

    /// Rows of the matrix.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.quants.len() * 32 + self.scales.len() * 2
    }

    /// `out[i] = row(first_row + i) · a` for a Q8_0 activation row `a`; `first_row` and
    /// `out.len()` must be multiples of 8 within the matrix.
    ///
    /// # Panics
    /// When the range or `a` do not fit (callers pass whole groups).
    pub fn gemv(&self, a: &[u8], first_row: usize, out: &mut [f32], vnni: bool) {
        assert!(first_row % 8 == 0 && out.len() % 8 == 0);
        assert!(first_row + out.len() <= self.rows);
        assert!(a.len() >= self.nb * BlockQ8_0::SIZE);
        // Safety: the asserts keep the reads inside `quants`, `scales` and `a`; a `PackedQ8` is
        // only used through `Features`-checked dispatch (AVX2; `vnni` only with AVX-512 VNNI).
        unsafe {
            if vnni {
                self.gemv_vnni(a.as_ptr(), first_row / 8, out);
            } else {
                self.gemv_avx2(a.as_ptr(), first_row / 8, out);
            }
        }
    }

    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn gemv_vnni(&self, a: *const u8, first_group: usize, out: &mut [f32]) {
        gemv_body!(self, a, first_group, out, |acc, x, y| _mm256_dpbusd_epi32(
            acc,
            _mm256_sign_epi8(x, x),
            _mm256_sign_epi8(y, x)
        ))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn gemv_avx2(&self, a: *const u8, first_group: usize, out: &mut [f32]) {
        let ones = _mm256_set1_epi16(1);
        gemv_body!(self, a, first_group, out, |acc, x, y| _mm256_add_epi32(
            acc,
            _mm256_madd_epi16(
                _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)),
                ones
            )
        ))
    }
}
