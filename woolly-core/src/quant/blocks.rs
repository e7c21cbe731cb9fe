//! Byte layouts of GGML's quantized blocks, and the helpers that unpack their packed fields.
//!
//! Each block type is a `#[repr(C)]` struct made only of byte arrays, so it has alignment 1, no
//! padding, and its size is exactly the type's `type_size()`. The structs document the layouts;
//! the kernels address raw bytes through the associated offset constants (`D`, `QS`, ...), which
//! are derived from the structs with [`core::mem::offset_of!`] so the two can never disagree.
//!
//! Conventions, as in GGML:
//! - all multi-byte fields are little-endian; `f16` is IEEE binary16, `bf16` the top half of an
//!   IEEE binary32;
//! - "element `i`" is the `i`-th value of the block in row order.

use core::mem::{offset_of, size_of};

use crate::gguf::QK_K;

/// Elements per block of the legacy formats (Q4_0 .. Q8_1).
pub const QK: usize = 32;

// ---------------------------------------------------------------------------------------------
// Legacy 32-element blocks
// ---------------------------------------------------------------------------------------------

/// Q4_0: 32 elements in 18 bytes; `x = (q - 8) · d` with `q` in `0..16`.
///
/// | bytes | field |
/// |-------|-------|
/// | 0..2  | `d`: f16 scale |
/// | 2..18 | `qs`: element `j` in the low nibble of `qs[j]`, element `j + 16` in its high nibble |
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ4_0 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Packed 4-bit quants.
    pub qs: [u8; QK / 2],
}

impl BlockQ4_0 {
    /// Bytes per block.
    pub const SIZE: usize = size_of::<Self>();
    /// Offset of `d`.
    pub const D: usize = offset_of!(Self, d);
    /// Offset of `qs`.
    pub const QS: usize = offset_of!(Self, qs);
}

/// Q4_1: 32 elements in 20 bytes; `x = q · d + m` with `q` in `0..16`.
///
/// | bytes | field |
/// |-------|-------|
/// | 0..2  | `d`: f16 scale |
/// | 2..4  | `m`: f16 minimum (offset) |
/// | 4..20 | `qs`: nibbles as in Q4_0 |
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ4_1 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Minimum (f16).
    pub m: [u8; 2],
    /// Packed 4-bit quants.
    pub qs: [u8; QK / 2],
}

impl BlockQ4_1 {
    /// Bytes per block.
    pub const SIZE: usize = size_of::<Self>();
    /// Offset of `d`.
    pub const D: usize = offset_of!(Self, d);
    /// Offset of `m`.
    pub const M: usize = offset_of!(Self, m);
    /// Offset of `qs`.
    pub const QS: usize = offset_of!(Self, qs);
}

/// Q5_0: 32 elements in 22 bytes; `x = (q - 16) · d` with `q` in `0..32`.
///
/// | bytes | field |
/// |-------|-------|
/// | 0..2  | `d`: f16 scale |
/// | 2..6  | `qh`: u32, bit `j` is the 5th bit (value 16) of element `j` |
/// | 6..22 | `qs`: the low 4 bits, nibbles as in Q4_0 |
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ5_0 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Fifth bits (u32).
    pub qh: [u8; 4],
    /// Packed low 4 bits.
    pub qs: [u8; QK / 2],
}

impl BlockQ5_0 {
    /// Bytes per block.
    pub const SIZE: usize = size_of::<Self>();
    /// Offset of `d`.
    pub const D: usize = offset_of!(Self, d);
    /// Offset of `qh`.
    pub const QH: usize = offset_of!(Self, qh);
    /// Offset of `qs`.
    pub const QS: usize = offset_of!(Self, qs);
}

/// Q5_1: 32 elements in 24 bytes; `x = q · d + m` with `q` in `0..32`.
///
/// | bytes | field |
/// |-------|-------|
/// | 0..2  | `d`: f16 scale |
/// | 2..4  | `m`: f16 minimum |
/// | 4..8  | `qh`: u32 fifth bits as in Q5_0 |
/// | 8..24 | `qs`: low 4 bits as in Q5_0 |
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ5_1 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// Minimum (f16).
    pub m: [u8; 2],
    /// Fifth bits (u32).
    pub qh: [u8; 4],
    /// Packed low 4 bits.
    pub qs: [u8; QK / 2],
}

impl BlockQ5_1 {
    /// Bytes per block.
    pub const SIZE: usize = size_of::<Self>();
    /// Offset of `d`.
    pub const D: usize = offset_of!(Self, d);
    /// Offset of `m`.
    pub const M: usize = offset_of!(Self, m);
    /// Offset of `qh`.
    pub const QH: usize = offset_of!(Self, qh);
    /// Offset of `qs`.
    pub const QS: usize = offset_of!(Self, qs);
}

/// Q8_0: 32 elements in 34 bytes; `x = q · d` with `q` an i8. Also the activation format of
/// Q4_0, Q5_0 and Q8_0 weights.
///
/// | bytes | field |
/// |-------|-------|
/// | 0..2  | `d`: f16 scale |
/// | 2..34 | `qs`: i8 quants, element `j` in `qs[j]` |
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ8_0 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// i8 quants.
    pub qs: [u8; QK],
}

impl BlockQ8_0 {
    /// Bytes per block.
    pub const SIZE: usize = size_of::<Self>();
    /// Offset of `d`.
    pub const D: usize = offset_of!(Self, d);
    /// Offset of `qs`.
    pub const QS: usize = offset_of!(Self, qs);
}

/// Q8_1: 32 elements in 36 bytes; `x = q · d`, plus `s = d · Σq` precomputed for the minimum
/// term of Q4_1/Q5_1 dot products. The activation format of Q4_1 and Q5_1 weights.
///
/// | bytes | field |
/// |-------|-------|
/// | 0..2  | `d`: f16 scale |
/// | 2..4  | `s`: f16, `d · Σ qs` (computed with the f32 `d`, then rounded) |
/// | 4..36 | `qs`: i8 quants |
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ8_1 {
    /// Scale (f16).
    pub d: [u8; 2],
    /// `d · Σ qs` (f16).
    pub s: [u8; 2],
    /// i8 quants.
    pub qs: [u8; QK],
}

impl BlockQ8_1 {
    /// Bytes per block.
    pub const SIZE: usize = size_of::<Self>();
    /// Offset of `d`.
    pub const D: usize = offset_of!(Self, d);
    /// Offset of `s`.
    pub const S: usize = offset_of!(Self, s);
    /// Offset of `qs`.
    pub const QS: usize = offset_of!(Self, qs);
}

// ---------------------------------------------------------------------------------------------
// K-quants: 256-element super-blocks
// ---------------------------------------------------------------------------------------------

/// Q2_K: 256 elements in 84 bytes, 16 sub-blocks of 16;
/// `x = d · (scales[s] & 15) · q - dmin · (scales[s] >> 4)` with `q` in `0..4`.
///
/// | bytes  | field |
/// |--------|-------|
/// | 0..16  | `scales`: per sub-block `s`, low nibble the scale, high nibble the min |
/// | 16..80 | `qs`: 2-bit quants (see below) |
/// | 80..82 | `d`: f16 super-block scale of the scales |
/// | 82..84 | `dmin`: f16 super-block scale of the mins |
///
/// Element `i = 128·h + 32·k + l` (`h` in 0..2, `k` in 0..4, `l` in 0..32) is bits `2k..2k+2` of
/// `qs[32·h + l]`; its sub-block is `i / 16`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ2K {
    /// 4-bit scales and mins.
    pub scales: [u8; QK_K / 16],
    /// 2-bit quants.
    pub qs: [u8; QK_K / 4],
    /// Scale of the scales (f16).
    pub d: [u8; 2],
    /// Scale of the mins (f16).
    pub dmin: [u8; 2],
}

impl BlockQ2K {
    /// Bytes per block.
    pub const SIZE: usize = size_of::<Self>();
    /// Offset of `scales`.
    pub const SCALES: usize = offset_of!(Self, scales);
    /// Offset of `qs`.
    pub const QS: usize = offset_of!(Self, qs);
    /// Offset of `d`.
    pub const D: usize = offset_of!(Self, d);
    /// Offset of `dmin`.
    pub const DMIN: usize = offset_of!(Self, dmin);
}

/// Q3_K: 256 elements in 110 bytes, 16 sub-blocks of 16; `x = d · (sc[s] - 32) · (q - 4·(1 - h))`
/// with `q` the 2 low bits and `h` the high bit (a *set* high bit means no offset).
///
/// | bytes   | field |
/// |---------|-------|
/// | 0..32   | `hmask`: the high bit of element `32·k + l` is bit `k` of `hmask[l]` (`k` in 0..8) |
/// | 32..96  | `qs`: 2-bit low parts, packed as in Q2_K |
/// | 96..108 | `scales`: sixteen 6-bit scales, see [`q3_k_scales`] |
/// | 108..110| `d`: f16 super-block scale |
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ3K {
    /// High bits.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits.
    pub qs: [u8; QK_K / 4],
    /// Packed 6-bit scales.
    pub scales: [u8; 12],
    /// Super-block scale (f16).
    pub d: [u8; 2],
}

impl BlockQ3K {
    /// Bytes per block.
    pub const SIZE: usize = size_of::<Self>();
    /// Offset of `hmask`.
    pub const HMASK: usize = offset_of!(Self, hmask);
    /// Offset of `qs`.
    pub const QS: usize = offset_of!(Self, qs);
    /// Offset of `scales`.
    pub const SCALES: usize = offset_of!(Self, scales);
    /// Offset of `d`.
    pub const D: usize = offset_of!(Self, d);
}

/// Q4_K: 256 elements in 144 bytes, 8 sub-blocks of 32; `x = d · sc[s] · q - dmin · m[s]` with
/// `q` in `0..16`.
///
/// | bytes  | field |
/// |--------|-------|
/// | 0..2   | `d`: f16 scale of the scales |
/// | 2..4   | `dmin`: f16 scale of the mins |
/// | 4..16  | `scales`: eight 6-bit scales and eight 6-bit mins, see [`k4_scale_min`] |
/// | 16..144| `qs`: element `64·c + l` is the low nibble of `qs[32·c + l]`, element `64·c + 32 + l` its high nibble (`c` in 0..4, `l` in 0..32) |
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ4K {
    /// Scale of the scales (f16).
    pub d: [u8; 2],
    /// Scale of the mins (f16).
    pub dmin: [u8; 2],
    /// Packed 6-bit scales and mins.
    pub scales: [u8; 12],
    /// 4-bit quants.
    pub qs: [u8; QK_K / 2],
}

impl BlockQ4K {
    /// Bytes per block.
    pub const SIZE: usize = size_of::<Self>();
    /// Offset of `d`.
    pub const D: usize = offset_of!(Self, d);
    /// Offset of `dmin`.
    pub const DMIN: usize = offset_of!(Self, dmin);
    /// Offset of `scales`.
    pub const SCALES: usize = offset_of!(Self, scales);
    /// Offset of `qs`.
    pub const QS: usize = offset_of!(Self, qs);
}

/// Q5_K: 256 elements in 176 bytes; as Q4_K with a fifth bit: `q` in `0..32`.
///
/// | bytes   | field |
/// |---------|-------|
/// | 0..2    | `d`: f16 scale of the scales |
/// | 2..4    | `dmin`: f16 scale of the mins |
/// | 4..16   | `scales`: as in Q4_K |
/// | 16..48  | `qh`: the fifth bit (value 16) of element `32·k + l` is bit `k` of `qh[l]` |
/// | 48..176 | `qs`: low 4 bits, packed as in Q4_K |
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ5K {
    /// Scale of the scales (f16).
    pub d: [u8; 2],
    /// Scale of the mins (f16).
    pub dmin: [u8; 2],
    /// Packed 6-bit scales and mins.
    pub scales: [u8; 12],
    /// Fifth bits.
    pub qh: [u8; QK_K / 8],
    /// Low 4 bits.
    pub qs: [u8; QK_K / 2],
}

impl BlockQ5K {
    /// Bytes per block.
    pub const SIZE: usize = size_of::<Self>();
    /// Offset of `d`.
    pub const D: usize = offset_of!(Self, d);
    /// Offset of `dmin`.
    pub const DMIN: usize = offset_of!(Self, dmin);
    /// Offset of `scales`.
    pub const SCALES: usize = offset_of!(Self, scales);
    /// Offset of `qh`.
    pub const QH: usize = offset_of!(Self, qh);
    /// Offset of `qs`.
    pub const QS: usize = offset_of!(Self, qs);
}

/// Q6_K: 256 elements in 210 bytes, 16 sub-blocks of 16; `x = d · scales[s] · (q - 32)` with
/// `q` in `0..64`.
///
/// | bytes    | field |
/// |----------|-------|
/// | 0..128   | `ql`: low 4 bits |
/// | 128..192 | `qh`: high 2 bits |
/// | 192..208 | `scales`: i8 scale per sub-block of 16 |
/// | 208..210 | `d`: f16 super-block scale |
///
/// For half `h` (elements `128·h ..`), with `L = ql[64·h..]`, `H = qh[32·h..]` and `l` in 0..32:
/// element `128·h + l` is `L[l] & 15 | (H[l] & 3) << 4`, `+32` is `L[l + 32] & 15 | (H[l] >> 2 & 3) << 4`,
/// `+64` is `L[l] >> 4 | (H[l] >> 4 & 3) << 4`, `+96` is `L[l + 32] >> 4 | (H[l] >> 6) << 4`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ6K {
    /// Low 4 bits.
    pub ql: [u8; QK_K / 2],
    /// High 2 bits.
    pub qh: [u8; QK_K / 4],
    /// i8 scales.
    pub scales: [u8; QK_K / 16],
    /// Super-block scale (f16).
    pub d: [u8; 2],
}

impl BlockQ6K {
    /// Bytes per block.
    pub const SIZE: usize = size_of::<Self>();
    /// Offset of `ql`.
    pub const QL: usize = offset_of!(Self, ql);
    /// Offset of `qh`.
    pub const QH: usize = offset_of!(Self, qh);
    /// Offset of `scales`.
    pub const SCALES: usize = offset_of!(Self, scales);
    /// Offset of `d`.
    pub const D: usize = offset_of!(Self, d);
}

/// Q8_K: 256 elements in 292 bytes; `x = q · d`. The activation format of every K-quant weight.
///
/// | bytes    | field |
/// |----------|-------|
/// | 0..4     | `d`: **f32** scale |
/// | 4..260   | `qs`: i8 quants |
/// | 260..292 | `bsums`: sixteen i16, `bsums[j] = Σ qs[16·j .. 16·j + 16]` |
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ8K {
    /// Scale (f32).
    pub d: [u8; 4],
    /// i8 quants.
    pub qs: [u8; QK_K],
    /// Sums of each 16 quants (i16).
    pub bsums: [u8; 2 * QK_K / 16],
}

impl BlockQ8K {
    /// Bytes per block.
    pub const SIZE: usize = size_of::<Self>();
    /// Offset of `d`.
    pub const D: usize = offset_of!(Self, d);
    /// Offset of `qs`.
    pub const QS: usize = offset_of!(Self, qs);
    /// Offset of `bsums`.
    pub const BSUMS: usize = offset_of!(Self, bsums);
}

// The sizes GGML (and `GgmlType::type_size`) give; checked at compile time.
const _: () = {
    assert!(BlockQ4_0::SIZE == 18);
    assert!(BlockQ4_1::SIZE == 20);
    assert!(BlockQ5_0::SIZE == 22);
    assert!(BlockQ5_1::SIZE == 24);
    assert!(BlockQ8_0::SIZE == 34);
    assert!(BlockQ8_1::SIZE == 36);
    assert!(BlockQ2K::SIZE == 84);
    assert!(BlockQ3K::SIZE == 110);
    assert!(BlockQ4K::SIZE == 144);
    assert!(BlockQ5K::SIZE == 176);
    assert!(BlockQ6K::SIZE == 210);
    assert!(BlockQ8K::SIZE == 292);
};

// ---------------------------------------------------------------------------------------------
// Field readers and unpacking helpers shared by dequantization and the dot products
// ---------------------------------------------------------------------------------------------

/// Splits `bytes` into whole `N`-byte blocks (a trailing partial block is ignored).
#[inline(always)]
pub(crate) fn blocks<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = &[u8; N]> + '_ {
    bytes
        .chunks_exact(N)
        .map(|c| <&[u8; N]>::try_from(c).expect("chunks_exact yields N-byte chunks"))
}

/// Splits `bytes` into whole `N`-byte mutable blocks.
#[inline(always)]
pub(crate) fn blocks_mut<const N: usize>(
    bytes: &mut [u8],
) -> impl Iterator<Item = &mut [u8; N]> + '_ {
    bytes
        .chunks_exact_mut(N)
        .map(|c| <&mut [u8; N]>::try_from(c).expect("chunks_exact_mut yields N-byte chunks"))
}

/// The `N` bytes at `off` in a block (`off + N` must not exceed the block; with constant
/// arguments the check compiles away).
#[inline(always)]
pub(crate) fn field<const N: usize>(b: &[u8], off: usize) -> &[u8; N] {
    <&[u8; N]>::try_from(&b[off..off + N]).expect("field range has N bytes")
}

/// The f16 at byte `off`, widened to f32 (exact).
#[inline(always)]
pub(crate) fn read_f16(b: &[u8], off: usize) -> f32 {
    super::f16_to_f32(u16::from_le_bytes(*field::<2>(b, off)))
}

/// The f32 at byte `off`.
#[inline(always)]
pub(crate) fn read_f32(b: &[u8], off: usize) -> f32 {
    f32::from_le_bytes(*field::<4>(b, off))
}

/// The u32 at byte `off`.
#[inline(always)]
pub(crate) fn read_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(*field::<4>(b, off))
}

/// The 32 five-bit values (`0..32`) of a Q5_0/Q5_1 block, in element order: the low nibbles from
/// `qs`, the fifth bit of element `j` from bit `j` of `qh`.
#[inline(always)]
pub fn q5_values(qh: u32, qs: &[u8; 16]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for j in 0..16 {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        out[j] = (qs[j] & 0x0f) | h0;
        out[j + 16] = (qs[j] >> 4) | h1;
    }
    out
}

/// The sixteen 6-bit scales of a Q3_K block (`0..64`, *not* yet offset by -32).
///
/// Scale `j < 8` has its low 4 bits in the low nibble of `s[j]`, scale `j >= 8` in the high
/// nibble of `s[j - 8]`; the top 2 bits of scale `j` are bits `2·(j / 4)..+2` of `s[8 + j % 4]`.
#[inline(always)]
pub fn q3_k_scales(s: &[u8; 12]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0x0f } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = low | (high << 4);
    }
    out
}

/// Scale and min of sub-block `j` (`0..8`) of a Q4_K/Q5_K block, both 6-bit (`0..64`).
///
/// For `j < 4`: scale = `q[j] & 63`, min = `q[j + 4] & 63`. For `j >= 4`: scale = low nibble of
/// `q[j + 4]` plus the top 2 bits of `q[j - 4]` as bits 4..6; min = high nibble of `q[j + 4]`
/// plus the top 2 bits of `q[j]`.
#[inline(always)]
pub fn k4_scale_min(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// All eight (scales, mins) of a Q4_K/Q5_K block.
#[inline(always)]
pub fn k4_scales_mins(q: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..8 {
        (sc[j], mn[j]) = k4_scale_min(j, q);
    }
    (sc, mn)
}

/// The 256 two-bit values (`0..4`) of a Q2_K/Q3_K `qs` array, in element order.
#[inline(always)]
pub fn q2_values(qs: &[u8; 64]) -> [u8; QK_K] {
    let mut out = [0u8; QK_K];
    for h in 0..2 {
        for k in 0..4 {
            for l in 0..32 {
                out[128 * h + 32 * k + l] = (qs[32 * h + l] >> (2 * k)) & 3;
            }
        }
    }
    out
}

/// The 256 signed 3-bit values (`-4..4`) of a Q3_K block, in element order.
#[inline(always)]
pub fn q3_k_values(hmask: &[u8; 32], qs: &[u8; 64]) -> [i8; QK_K] {
    let low = q2_values(qs);
    let mut out = [0i8; QK_K];
    for (i, o) in out.iter_mut().enumerate() {
        let high_set = hmask[i % 32] & (1 << (i / 32)) != 0;
        *o = low[i] as i8 - if high_set { 0 } else { 4 };
    }
    out
}

/// The 256 four-bit values (`0..16`) of a Q4_K `qs` array (also Q5_K's low bits), in element order.
#[inline(always)]
pub fn q4_k_values(qs: &[u8; 128]) -> [u8; QK_K] {
    let mut out = [0u8; QK_K];
    for c in 0..4 {
        for l in 0..32 {
            let b = qs[32 * c + l];
            out[64 * c + l] = b & 0x0f;
            out[64 * c + 32 + l] = b >> 4;
        }
    }
    out
}

/// The 256 five-bit values (`0..32`) of a Q5_K block, in element order.
#[inline(always)]
pub fn q5_k_values(qh: &[u8; 32], qs: &[u8; 128]) -> [u8; QK_K] {
    let mut out = q4_k_values(qs);
    for (i, o) in out.iter_mut().enumerate() {
        if qh[i % 32] & (1 << (i / 32)) != 0 {
            *o += 16;
        }
    }
    out
}

/// The 256 signed six-bit values (`-32..32`) of a Q6_K block, in element order.
#[inline(always)]
pub fn q6_k_values(ql: &[u8; 128], qh: &[u8; 64]) -> [i8; QK_K] {
    let mut out = [0i8; QK_K];
    for h in 0..2 {
        let (lo, hi) = (&ql[64 * h..64 * h + 64], &qh[32 * h..32 * h + 32]);
        let o = &mut out[128 * h..128 * h + 128];
        for l in 0..32 {
            o[l] = ((lo[l] & 0x0f) | ((hi[l] & 3) << 4)) as i8 - 32;
            o[l + 32] = ((lo[l + 32] & 0x0f) | (((hi[l] >> 2) & 3) << 4)) as i8 - 32;
            o[l + 64] = ((lo[l] >> 4) | (((hi[l] >> 4) & 3) << 4)) as i8 - 32;
            o[l + 96] = ((lo[l + 32] >> 4) | ((hi[l] >> 6) << 4)) as i8 - 32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgmlType;

    #[test]
    fn sizes_match_the_type_table() {
        use GgmlType::*;
        for (ty, size) in [
            (Q4_0, BlockQ4_0::SIZE),
            (Q4_1, BlockQ4_1::SIZE),
            (Q5_0, BlockQ5_0::SIZE),
            (Q5_1, BlockQ5_1::SIZE),
            (Q8_0, BlockQ8_0::SIZE),
            (Q8_1, BlockQ8_1::SIZE),
            (Q2_K, BlockQ2K::SIZE),
            (Q3_K, BlockQ3K::SIZE),
            (Q4_K, BlockQ4K::SIZE),
            (Q5_K, BlockQ5K::SIZE),
            (Q6_K, BlockQ6K::SIZE),
            (Q8_K, BlockQ8K::SIZE),
        ] {
            assert_eq!(ty.type_size(), size, "{ty}");
        }
    }

    #[test]
    fn offsets_are_ggmls() {
        assert_eq!((BlockQ4_1::M, BlockQ4_1::QS), (2, 4));
        assert_eq!((BlockQ5_0::QH, BlockQ5_0::QS), (2, 6));
        assert_eq!((BlockQ5_1::M, BlockQ5_1::QH, BlockQ5_1::QS), (2, 4, 8));
        assert_eq!((BlockQ8_1::S, BlockQ8_1::QS), (2, 4));
        assert_eq!((BlockQ2K::QS, BlockQ2K::D, BlockQ2K::DMIN), (16, 80, 82));
        assert_eq!((BlockQ3K::QS, BlockQ3K::SCALES, BlockQ3K::D), (32, 96, 108));
        assert_eq!((BlockQ4K::SCALES, BlockQ4K::QS), (4, 16));
        assert_eq!((BlockQ5K::QH, BlockQ5K::QS), (16, 48));
        assert_eq!(
            (BlockQ6K::QH, BlockQ6K::SCALES, BlockQ6K::D),
            (128, 192, 208)
        );
        assert_eq!((BlockQ8K::QS, BlockQ8K::BSUMS), (4, 260));
    }

    /// The word-wise unpacking GGML uses (kmask1/kmask2) gives the same Q3_K scales.
    #[test]
    fn q3_k_scales_match_the_word_wise_unpacking() {
        let mut s = [0u8; 12];
        let mut x = 0x9e37_79b9u32;
        for _ in 0..1000 {
            for b in s.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            let w = |i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
            let (a0, a1, tmp) = (w(0), w(4), w(8));
            const M1: u32 = 0x0303_0303;
            const M2: u32 = 0x0f0f_0f0f;
            let words = [
                (a0 & M2) | ((tmp & M1) << 4),
                (a1 & M2) | (((tmp >> 2) & M1) << 4),
                ((a0 >> 4) & M2) | (((tmp >> 4) & M1) << 4),
                ((a1 >> 4) & M2) | (((tmp >> 6) & M1) << 4),
            ];
            let want: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            assert_eq!(q3_k_scales(&s).as_slice(), want.as_slice());
        }
    }
}
