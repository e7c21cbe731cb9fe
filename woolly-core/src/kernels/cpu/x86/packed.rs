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

/// `gemv_body` for up to four activation rows at once: each weight vector is loaded (and made
/// unsigned) once for all of them. Per token the arithmetic is the same, in the same order, as
/// `gemv_body`'s, so a token's result does not depend on the others in the batch.
macro_rules! gemm4_body {
    ($self:expr, $a:expr, $stride:expr, $ntok:expr, $first_group:expr, $groups:expr, $out:expr, $out_stride:expr, $dp:expr) => {{
        let (this, a, stride, ntok, first_group, groups, out, out_stride) = (
            $self,
            $a,
            $stride,
            $ntok,
            $first_group,
            $groups,
            $out,
            $out_stride,
        );
        let nb = this.nb;
        let q = this.quants.as_ptr();
        let sc = this.scales.as_ptr();
        for gi in 0..groups {
            let g = first_group + gi;
            let mut t = 0;
            while t < ntok {
                let tn = (ntok - t).min(4);
                let mut acc = [_mm256_setzero_ps(); 4];
                for b in 0..nb {
                    let base = q.add((g * nb + b) * 8);
                    let mut isum = [_mm256_setzero_si256(); 4];
                    for k in 0..8 {
                        let w = _mm256_load_si256(base.add(k));
                        let wa = _mm256_sign_epi8(w, w);
                        for (j, s) in isum.iter_mut().enumerate().take(tn) {
                            let ys = a.add((t + j) * stride + b * BlockQ8_0::SIZE + BlockQ8_0::QS)
                                as *const i32;
                            let y = _mm256_set1_epi32(ys.add(k).read_unaligned());
                            *s = $dp(*s, wa, _mm256_sign_epi8(y, w));
                        }
                    }
                    let d8 = _mm256_cvtph_ps(_mm_loadu_si128(
                        sc.add((g * nb + b) * 8) as *const __m128i
                    ));
                    for (j, acc_j) in acc.iter_mut().enumerate().take(tn) {
                        let yb = a.add((t + j) * stride + b * BlockQ8_0::SIZE);
                        let d = _mm256_mul_ps(d8, _mm256_set1_ps(f16_at(yb)));
                        *acc_j = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum[j]), *acc_j);
                    }
                }
                for (j, acc_j) in acc.iter().enumerate().take(tn) {
                    _mm256_storeu_ps(out.add((t + j) * out_stride + gi * 8), *acc_j);
                }
                t += tn;
            }
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
        if !rows.is_multiple_of(8) || !cols.is_multiple_of(QK) || rows == 0 {
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
        assert!(first_row.is_multiple_of(8) && out.len().is_multiple_of(8));
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

    /// `out[t * out_stride + i] = row(8 * first_group + i) · a_t` for `groups` groups of
    /// eight rows and `ntok` Q8_0 activation rows `stride` bytes apart; `ysums[t * nb + b]` is
    /// the sum of block `b`'s quants of row `t` (used by the VNNI path).
    ///
    /// # Safety
    /// The groups lie inside the matrix, `a` holds `ntok` rows of `nb` blocks, `out` has room
    /// for `ntok` rows of `out_stride`; the CPU has AVX2 (and AVX-512 VNNI when `vnni`).
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_raw(
        &self,
        a: &[u8],
        stride: usize,
        ntok: usize,
        ysums: &[i32],
        first_group: usize,
        groups: usize,
        out: *mut f32,
        out_stride: usize,
        vnni: bool,
    ) {
        assert!((first_group + groups) * 8 <= self.rows);
        assert!(ntok == 0 || a.len() >= (ntok - 1) * stride + self.nb * BlockQ8_0::SIZE);
        if vnni {
            assert!(ysums.len() >= ntok * self.nb);
            self.gemm_vnni(
                a.as_ptr(),
                stride,
                ntok,
                ysums,
                first_group,
                groups,
                out,
                out_stride,
            )
        } else {
            self.gemm_avx2(
                a.as_ptr(),
                stride,
                ntok,
                first_group,
                groups,
                out,
                out_stride,
            )
        }
    }

    /// The VNNI product without the sign trick: each weight vector is flipped once to
    /// unsigned (`w + 128`, one xor shared by every token), `dpbusd` then takes the signed
    /// activations as they are, and `128 · Σ y` per block is taken back out. The integer sums
    /// are exactly `Σ w·y`, so the results equal the sign-trick path's to the bit.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn gemm_vnni(
        &self,
        a: *const u8,
        stride: usize,
        ntok: usize,
        ysums: &[i32],
        first_group: usize,
        groups: usize,
        out: *mut f32,
        out_stride: usize,
    ) {
        let nb = self.nb;
        let q = self.quants.as_ptr();
        let sc = self.scales.as_ptr();
        let flip = _mm256_set1_epi8(-128);
        for gi in 0..groups {
            let g = first_group + gi;
            let mut t = 0;
            while t < ntok {
                let tn = (ntok - t).min(4);
                let mut acc = [_mm256_setzero_ps(); 4];
                for b in 0..nb {
                    let base = q.add((g * nb + b) * 8);
                    let mut isum = [_mm256_setzero_si256(); 4];
                    for (j, s) in isum.iter_mut().enumerate().take(tn) {
                        *s = _mm256_set1_epi32(-128 * ysums[(t + j) * nb + b]);
                    }
                    for k in 0..8 {
                        let wu = _mm256_xor_si256(_mm256_load_si256(base.add(k)), flip);
                        for (j, s) in isum.iter_mut().enumerate().take(tn) {
                            let ys = a.add((t + j) * stride + b * BlockQ8_0::SIZE + BlockQ8_0::QS)
                                as *const i32;
                            let y = _mm256_set1_epi32(ys.add(k).read_unaligned());
                            *s = _mm256_dpbusd_epi32(*s, wu, y);
                        }
                    }
                    let d8 = _mm256_cvtph_ps(_mm_loadu_si128(
                        sc.add((g * nb + b) * 8) as *const __m128i
                    ));
                    for (j, acc_j) in acc.iter_mut().enumerate().take(tn) {
                        let yb = a.add((t + j) * stride + b * BlockQ8_0::SIZE);
                        let d = _mm256_mul_ps(d8, _mm256_set1_ps(f16_at(yb)));
                        *acc_j = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum[j]), *acc_j);
                    }
                }
                for (j, acc_j) in acc.iter().enumerate().take(tn) {
                    _mm256_storeu_ps(out.add((t + j) * out_stride + gi * 8), *acc_j);
                }
                t += tn;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn gemm_avx2(
        &self,
        a: *const u8,
        stride: usize,
        ntok: usize,
        first_group: usize,
        groups: usize,
        out: *mut f32,
        out_stride: usize,
    ) {
        let ones = _mm256_set1_epi16(1);
        gemm4_body!(
            self,
            a,
            stride,
            ntok,
            first_group,
            groups,
            out,
            out_stride,
            |acc, x, y| {
                _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), ones))
            }
        )
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

macro_rules! q5_gemm_body {
    ($self:expr, $a:expr, $stride:expr, $ntok:expr, $ysums:expr, $first_group:expr, $groups:expr, $out:expr, $out_stride:expr, $dp:expr) => {{
        let (this, a, stride, ntok, ysums, first_group, groups, out, out_stride) = (
            $self,
            $a,
            $stride,
            $ntok,
            $ysums,
            $first_group,
            $groups,
            $out,
            $out_stride,
        );
        let nb = this.nb;
        let q = this.quants.as_ptr();
        let sc = this.scales.as_ptr();
        for gi in 0..groups {
            let g = first_group + gi;
            let mut t = 0;
            while t < ntok {
                // Up to four tokens share each unpacked group-block.
                let tn = (ntok - t).min(4);
                let mut acc = [_mm256_setzero_ps(); 4];
                for b in 0..nb {
                    let pieces = q5_pieces(q.add((g * nb + b) * 5));
                    let d8 = _mm256_cvtph_ps(_mm_loadu_si128(
                        sc.add((g * nb + b) * 8) as *const __m128i
                    ));
                    for (k, acc_k) in acc.iter_mut().enumerate().take(tn) {
                        let yb = a.add((t + k) * stride + b * BlockQ8_0::SIZE);
                        let ys = yb.add(BlockQ8_0::QS) as *const i32;
                        let mut isum = _mm256_set1_epi32(-16 * ysums[(t + k) * nb + b]);
                        for (j, piece) in pieces.iter().enumerate() {
                            isum = $dp(isum, *piece, _mm256_set1_epi32(ys.add(j).read_unaligned()));
                        }
                        let d = _mm256_mul_ps(d8, _mm256_set1_ps(f16_at(yb)));
                        *acc_k = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum), *acc_k);
                    }
                }
                for (k, acc_k) in acc.iter().enumerate().take(tn) {
                    _mm256_storeu_ps(out.add((t + k) * out_stride + gi * 8), *acc_k);
                }
                t += tn;
            }
        }
    }};
}

/// Q5_0 weights repacked eight rows at a time, still five bits per weight (22 bytes per row
/// and block, as in the file).
///
/// Per group of eight rows and per block: four vectors whose lane `r` holds bytes `4k..4k+4` of
/// row `r`'s `qs` (`k = 0..4`: low nibbles are elements `4k..4k+4`, high nibbles elements
/// `16+4k..`), one vector of fifth bits whose lane `r`, byte `j`, bit `k` is bit `4k + j` of row
/// `r`'s `qh` (so one shift and one mask put piece `k`'s fifth bits in place), and the eight
/// f16 scales. Values are used unsigned (`0..32`) and the `-16` offset is applied once per block
/// through the activation's block sum: `Σ (u - 16)·y = Σ u·y - 16·Σ y`, exactly.
pub struct PackedQ5 {
    rows: usize,
    nb: usize,
    /// `[groups][nb][5]`: the four `qs` vectors, then the fifth-bit vector.
    quants: Vec<__m256i>,
    /// `[groups][nb][8]` f16 bits.
    scales: Vec<u16>,
}

unsafe impl Send for PackedQ5 {}
unsafe impl Sync for PackedQ5 {}

impl std::fmt::Debug for PackedQ5 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedQ5 {{ rows: {}, blocks: {} }}", self.rows, self.nb)
    }
}

impl PackedQ5 {
    /// Repacks `rows` Q5_0 rows of `cols` elements; `done(range)` gets each byte range of `data`
    /// once copied. `None` unless `rows % 8 == 0`, `cols % 32 == 0` and `data` is that matrix.
    pub fn from_q5_0_with(
        data: &[u8],
        rows: usize,
        cols: usize,
        mut done: impl FnMut(std::ops::Range<usize>),
    ) -> Option<PackedQ5> {
        use crate::quant::blocks::BlockQ5_0;
        if !rows.is_multiple_of(8) || !cols.is_multiple_of(QK) || rows == 0 {
            return None;
        }
        let nb = cols / QK;
        let rb = nb * BlockQ5_0::SIZE;
        if data.len() != rows.checked_mul(rb)? {
            return None;
        }
        let groups = rows / 8;
        let mut quants = vec![unsafe { _mm256_setzero_si256() }; groups * nb * 5];
        let mut scales = vec![0u16; groups * nb * 8];
        // Safety: `quants` is plain memory of groups·nb·160 bytes.
        let qbytes = unsafe {
            std::slice::from_raw_parts_mut(quants.as_mut_ptr() as *mut u8, groups * nb * 160)
        };
        for g in 0..groups {
            for b in 0..nb {
                let dst = &mut qbytes[(g * nb + b) * 160..(g * nb + b + 1) * 160];
                for r in 0..8 {
                    let src = &data[(g * 8 + r) * rb + b * BlockQ5_0::SIZE..][..BlockQ5_0::SIZE];
                    scales[(g * nb + b) * 8 + r] =
                        u16::from_le_bytes([src[BlockQ5_0::D], src[BlockQ5_0::D + 1]]);
                    let qs = &src[BlockQ5_0::QS..BlockQ5_0::QS + 16];
                    for k in 0..4 {
                        dst[32 * k + 4 * r..32 * k + 4 * r + 4]
                            .copy_from_slice(&qs[4 * k..4 * k + 4]);
                    }
                    let qh = u32::from_le_bytes(
                        src[BlockQ5_0::QH..BlockQ5_0::QH + 4].try_into().expect("4"),
                    );
                    for j in 0..4 {
                        let mut byte = 0u8;
                        for k in 0..8 {
                            byte |= (((qh >> (4 * k + j)) & 1) as u8) << k;
                        }
                        dst[128 + 4 * r + j] = byte;
                    }
                }
            }
            if (g + 1) % 256 == 0 || g + 1 == groups {
                let band = 256 * 8 * rb;
                done(g / 256 * band..(g + 1) * 8 * rb);
            }
        }
        Some(PackedQ5 {
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

    /// Products with `ntok` Q8_0 activation rows (`stride` bytes apart in `a`; `ysums[t·nb + b]`
    /// the sum of the quants of token `t`'s block `b`) for the `groups` groups of eight rows from
    /// `first_group`: the product of row `first_group·8 + i` and token `t` goes to
    /// `out[t·out_stride + i]`.
    ///
    /// # Safety
    /// `out` must be valid for those writes and not written by anyone else meanwhile; AVX2
    /// (and, with `vnni`, AVX-512 VNNI) must be present.
    ///
    /// # Panics
    /// When the rows, activations or sums do not fit.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_raw(
        &self,
        a: &[u8],
        stride: usize,
        ntok: usize,
        ysums: &[i32],
        first_group: usize,
        groups: usize,
        out: *mut f32,
        out_stride: usize,
        vnni: bool,
    ) {
        assert!(ntok > 0 && out_stride >= groups * 8);
        assert!((first_group + groups) * 8 <= self.rows);
        assert!(a.len() >= (ntok - 1) * stride + self.nb * BlockQ8_0::SIZE);
        assert!(ysums.len() >= ntok * self.nb);
        if vnni {
            self.gemm_vnni(
                a.as_ptr(),
                stride,
                ntok,
                ysums,
                first_group,
                groups,
                out,
                out_stride,
            );
        } else {
            self.gemm_avx2(
                a.as_ptr(),
                stride,
                ntok,
                ysums,
                first_group,
                groups,
                out,
                out_stride,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn gemm_vnni(
        &self,
        a: *const u8,
        stride: usize,
        ntok: usize,
        ysums: &[i32],
        first_group: usize,
        groups: usize,
        out: *mut f32,
        out_stride: usize,
    ) {
        q5_gemm_body!(
            self,
            a,
            stride,
            ntok,
            ysums,
            first_group,
            groups,
            out,
            out_stride,
            |acc, u, y| { _mm256_dpbusd_epi32(acc, u, y) }
        )
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn gemm_avx2(
        &self,
        a: *const u8,
        stride: usize,
        ntok: usize,
        ysums: &[i32],
        first_group: usize,
        groups: usize,
        out: *mut f32,
        out_stride: usize,
    ) {
        let ones = _mm256_set1_epi16(1);
        q5_gemm_body!(
            self,
            a,
            stride,
            ntok,
            ysums,
            first_group,
            groups,
            out,
            out_stride,
            |acc, u, y| {
                _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), ones))
            }
        )
    }
}

/// The eight unsigned 5-bit pieces of one group-block (piece `k`: elements `4k..4k+4` of each
/// of the eight rows, one row per 32-bit lane).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_pieces(p: *const __m256i) -> [__m256i; 8] {
    let m4 = _mm256_set1_epi8(0x0f);
    let b4 = _mm256_set1_epi8(0x10);
    let h = _mm256_load_si256(p.add(4));
    let v0 = _mm256_load_si256(p);
    let v1 = _mm256_load_si256(p.add(1));
    let v2 = _mm256_load_si256(p.add(2));
    let v3 = _mm256_load_si256(p.add(3));
    let lo = |v: __m256i| _mm256_and_si256(v, m4);
    let hi = |v: __m256i| _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
    [
        _mm256_or_si256(lo(v0), _mm256_and_si256(_mm256_slli_epi16(h, 4), b4)),
        _mm256_or_si256(lo(v1), _mm256_and_si256(_mm256_slli_epi16(h, 3), b4)),
        _mm256_or_si256(lo(v2), _mm256_and_si256(_mm256_slli_epi16(h, 2), b4)),
        _mm256_or_si256(lo(v3), _mm256_and_si256(_mm256_slli_epi16(h, 1), b4)),
        _mm256_or_si256(hi(v0), _mm256_and_si256(h, b4)),
        _mm256_or_si256(hi(v1), _mm256_and_si256(_mm256_srli_epi16(h, 1), b4)),
        _mm256_or_si256(hi(v2), _mm256_and_si256(_mm256_srli_epi16(h, 2), b4)),
        _mm256_or_si256(hi(v3), _mm256_and_si256(_mm256_srli_epi16(h, 3), b4)),
    ]
}
