//! CPU kernels: dot products of quantized weights with quantized activations, the transformer's
//! element-wise operations, and work splitting across threads.
//!
//! What lives where: the dot products and the packed weight layouts here; matrix products over
//! a batch of rows (activation quantization, the dispatch, the transpose) in [`matmul`];
//! attention over a KV view in [`attention`]; norms, RoPE and activations in [`ops`]; the
//! thread pool and its work splitting in [`pool`] and [`parallel`]. None of them knows a model:
//! they take weight views, KV views and plain shapes.
//!
//! Every kernel has a plain scalar implementation ([`scalar`]), which is the reference: faster
//! SIMD versions, chosen at run time from what the CPU reports (desktop binaries ship to unknown
//! CPUs), sit beside it and are tested against it (`x86`: AVX2+FMA+F16C for every weight type,
//! AVX-512 VNNI for the default model's types). The entry points here ([`vec_dot`],
//! [`vec_dot_kernel`], [`matmul_rows`]) are where that choice is made; [`set_simd`] turns SIMD
//! off for the whole process (for comparisons and debugging).
//!
//! A matrix-vector product goes: quantize the activation row once with
//! [`crate::quant::quantize_row`] into [`crate::quant::vec_dot_type`]`(weight type)`, then take
//! the dot product of every weight row with it.

#[cfg(target_arch = "aarch64")]
pub mod arm;
pub mod attention;
pub mod matmul;
pub mod ops;
pub mod parallel;
pub mod pool;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use crate::gguf::GgmlType;
use crate::quant::vec_dot_type;
use crate::{Error, Result};

pub use pool::ThreadPool;

/// A dot-product kernel for one weight type: `f(n, w, a)` is `w · a` over `n` elements, `w` one
/// weight row of that type and `a` one activation row in its [`vec_dot_type`]. `n` must be a
/// multiple of the block size, and both rows must hold at least `n` elements; extra bytes are
/// ignored.
pub type VecDotFn = fn(n: usize, w: &[u8], a: &[u8]) -> f32;

/// The best available dot-product kernel for weight type `ty`, or `None` when `ty` has none (it
/// is not [`GgmlType::is_computable`]). Resolve it once outside a loop over rows.
#[inline]
pub fn vec_dot_kernel(ty: GgmlType) -> Option<VecDotFn> {
    let table = kernel_table();
    let i = ty as usize;
    if SIMD_ENABLED.load(Ordering::Relaxed) {
        table.simd.get(i).copied().flatten()
    } else {
        table.scalar.get(i).copied().flatten()
    }
}

static SIMD_ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the SIMD kernels on or off for the whole process (they are on by default, where the CPU
/// has them). With them off every dot product uses its scalar twin.
pub fn set_simd(enabled: bool) {
    SIMD_ENABLED.store(enabled, Ordering::Relaxed);
}

/// The kernel level in use: `"avx512vnni"`, `"avx2"` or `"scalar"` (for reports).
pub fn simd_level() -> &'static str {
    if !SIMD_ENABLED.load(Ordering::Relaxed) {
        return "scalar";
    }
    #[cfg(target_arch = "x86_64")]
    {
        let f = x86::Features::detect();
        if f.avx512_vnni() {
            return "avx512vnni";
        }
        if f.avx2() {
            return "avx2";
        }
    }
    #[cfg(target_arch = "aarch64")]
    return "neon";
    #[cfg(not(target_arch = "aarch64"))]
    "scalar"
}

/// Kernels per type id, resolved once.
struct KernelTable {
    scalar: Vec<Option<VecDotFn>>,
    simd: Vec<Option<VecDotFn>>,
}

fn kernel_table() -> &'static KernelTable {
    static TABLE: OnceLock<KernelTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let len = GgmlType::ALL.iter().map(|&t| t as usize).max().unwrap_or(0) + 1;
        let mut scalar_k = vec![None; len];
        let mut simd_k = vec![None; len];
        #[cfg(target_arch = "x86_64")]
        let features = x86::Features::detect();
        for ty in GgmlType::ALL {
            let s = scalar::kernel(ty);
            scalar_k[ty as usize] = s;
            #[cfg(target_arch = "x86_64")]
            let best = x86::kernel(ty, features).or(s);
            #[cfg(target_arch = "aarch64")]
            let best = arm::kernel(ty).or(s);
            #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
            let best = s;
            simd_k[ty as usize] = best;
        }
        KernelTable {
            scalar: scalar_k,
            simd: simd_k,
        }
    })
}

/// `w · a` for one row of `n` elements: `w` of type `ty`, `a` already quantized in
/// [`vec_dot_type`]`(ty)`.
///
/// For speed nothing is validated here: NaN is returned for a type without a dot product, and
/// short rows yield a sum over fewer blocks. Use [`vec_dot_checked`] when the inputs are not
/// known to be consistent.
#[inline]
pub fn vec_dot(ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    match vec_dot_kernel(ty) {
        Some(f) => f(n, w, a),
        None => f32::NAN,
    }
}

/// `out[t] = w · a_t` for one weight row `w` of `n` elements of `ty` and `out.len()` activation
/// rows in `vec_dot_type(ty)`, row `t` starting at byte `t * stride` of `a` (prompt processing).
///
/// Q8_0 rows, and Q4_0/Q5_0 rows repacked exactly into Q8_0 in `scratch`, go through a kernel
/// that loads each weight block once for four tokens; other types call the single-row kernel
/// per token. Each output is computed the same way whatever the thread count.
pub fn dot_multi(
    ty: GgmlType,
    n: usize,
    w: &[u8],
    a: &[u8],
    stride: usize,
    out: &mut [f32],
    scratch: &mut Vec<u8>,
) {
    #[cfg(target_arch = "x86_64")]
    if SIMD_ENABLED.load(Ordering::Relaxed) {
        let f = x86::Features::detect();
        if f.avx2() {
            match ty {
                GgmlType::Q8_0 => {
                    return x86::multi::q8_0_multi(n, w, a, stride, out, f.avx512_vnni());
                }
                GgmlType::Q4_0 | GgmlType::Q5_0 => {
                    crate::quant::repack_to_q8_0(ty, n, w, scratch);
                    return x86::multi::q8_0_multi(n, scratch, a, stride, out, f.avx512_vnni());
                }
                GgmlType::Q4_K | GgmlType::Q6_K => {
                    x86::multi::kquant_multi(ty, n, w, a, stride, out, f.avx512_vnni());
                    return;
                }
                _ => {}
            }
        }
    }
    let _ = &scratch;
    let Some(k) = vec_dot_kernel(ty) else {
        out.fill(f32::NAN);
        return;
    };
    for (t, o) in out.iter_mut().enumerate() {
        *o = k(n, w, &a[(t * stride).min(a.len())..]);
    }
}

/// `out[r] = w_r · a` for `out.len()` consecutive weight rows of `row_bytes` bytes each (token
/// generation): the rows go four at a time through a kernel that shares the activation loads
/// where one exists (Q8_0), else one at a time. Each output is computed the same way whatever
/// the thread count.
pub fn matvec_rows(ty: GgmlType, n: usize, w: &[u8], row_bytes: usize, a: &[u8], out: &mut [f32]) {
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if ty == GgmlType::Q8_0 && SIMD_ENABLED.load(Ordering::Relaxed) {
        let f = x86::Features::detect();
        if f.avx2() {
            while done + 4 <= out.len() {
                let quad: &mut [f32; 4] = (&mut out[done..done + 4]).try_into().expect("4");
                x86::multi::q8_0_rows4(
                    n,
                    &w[done * row_bytes..],
                    row_bytes,
                    a,
                    quad,
                    f.avx512_vnni(),
                );
                done += 4;
            }
        }
    }
    let Some(k) = vec_dot_kernel(ty) else {
        out.fill(f32::NAN);
        return;
    };
    for (r, o) in out.iter_mut().enumerate().skip(done) {
        *o = k(n, &w[r * row_bytes..(r + 1) * row_bytes], a);
    }
}

/// A weight matrix copied into a layout made for this CPU's products (today, with AVX2: Q8_0
/// and Q5_0, eight rows interleaved). It holds the same numbers in the same number of bits;
/// products with it give the same exact block sums as the row-by-row kernels.
#[derive(Debug)]
pub enum PackedMatrix {
    #[cfg(target_arch = "x86_64")]
    Q8(x86::packed::PackedQ8),
    #[cfg(target_arch = "x86_64")]
    Q5(x86::packed::PackedQ5),
}

impl PackedMatrix {
    /// Packs `rows` rows of `cols` elements of `ty` when this CPU and type have a packed layout
    /// (`None` otherwise). `done(range)` is called with each byte range of `data` once copied.
    pub fn new(
        ty: GgmlType,
        data: &[u8],
        rows: usize,
        cols: usize,
        done: impl FnMut(std::ops::Range<usize>),
    ) -> Option<PackedMatrix> {
        #[cfg(target_arch = "x86_64")]
        if x86::Features::detect().avx2() {
            return match ty {
                GgmlType::Q8_0 => x86::packed::PackedQ8::from_q8_0_with(data, rows, cols, done)
                    .map(PackedMatrix::Q8),
                GgmlType::Q5_0 => x86::packed::PackedQ5::from_q5_0_with(data, rows, cols, done)
                    .map(PackedMatrix::Q5),
                _ => None,
            };
        }
        let _ = (ty, data, rows, cols, done);
        None
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        #[cfg(target_arch = "x86_64")]
        return match self {
            PackedMatrix::Q8(p) => p.bytes(),
            PackedMatrix::Q5(p) => p.bytes(),
        };
        #[cfg(not(target_arch = "x86_64"))]
        match *self {}
    }

    /// Whether products should use this copy now (SIMD may have been turned off, in which case
    /// the caller uses the original rows and the scalar kernels).
    pub fn usable(&self) -> bool {
        SIMD_ENABLED.load(Ordering::Relaxed)
    }

    /// Whether [`PackedMatrix::gemm`] reads the activations' block sums.
    pub fn needs_block_sums(&self) -> bool {
        cfg!(target_arch = "x86_64")
    }

    /// Products of rows `first_row..first_row + out.len() / ntok` (`first_row` and the count
    /// multiples of 8) with `ntok` Q8_0 activation rows `stride` bytes apart in `a`, token-major:
    /// `out[t·count + (row - first_row)]`. `ysums` holds [`q8_0_block_sums`] of the activations
    /// when [`PackedMatrix::needs_block_sums`].
    ///
    /// # Panics
    /// When the ranges do not fit.
    pub fn gemm(
        &self,
        a: &[u8],
        stride: usize,
        ntok: usize,
        ysums: &[i32],
        first_row: usize,
        out: &mut [f32],
    ) {
        assert!(ntok > 0 && out.len().is_multiple_of(8 * ntok) && first_row.is_multiple_of(8));
        let count = out.len() / ntok;
        // Safety: `out` is exclusively borrowed and holds `ntok` rows of `count` outputs.
        unsafe {
            self.gemm_raw(
                a,
                stride,
                ntok,
                ysums,
                first_row,
                count,
                out.as_mut_ptr(),
                count,
            )
        }
    }

    /// [`PackedMatrix::gemm`] for `count` rows from `first_row`, writing the product of row
    /// `first_row + i` and token `t` to `out[t·out_stride + i]`, so that threads can fill
    /// disjoint row ranges of one token-major output.
    ///
    /// # Safety
    /// `out` must be valid for those writes, and no other thread may touch them meanwhile.
    ///
    /// # Panics
    /// When the ranges do not fit.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_raw(
        &self,
        a: &[u8],
        stride: usize,
        ntok: usize,
        ysums: &[i32],
        first_row: usize,
        count: usize,
        out: *mut f32,
        out_stride: usize,
    ) {
        assert!(first_row.is_multiple_of(8) && count.is_multiple_of(8) && out_stride >= count);
        #[cfg(target_arch = "x86_64")]
        {
            let vnni = x86::Features::detect().avx512_vnni();
            match self {
                PackedMatrix::Q5(p) => p.gemm_raw(
                    a,
                    stride,
                    ntok,
                    ysums,
                    first_row / 8,
                    count / 8,
                    out,
                    out_stride,
                    vnni,
                ),
                PackedMatrix::Q8(p) => p.gemm_raw(
                    a,
                    stride,
                    ntok,
                    ysums,
                    first_row / 8,
                    count / 8,
                    out,
                    out_stride,
                    vnni,
                ),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (a, stride, ntok, ysums, first_row, count, out, out_stride);
    }
}

/// `out[t·nb + b]` = the sum of the 32 quants of block `b` of Q8_0 activation row `t` (rows
/// `stride` bytes apart, `nb` blocks each).
pub fn q8_0_block_sums(a: &[u8], ntok: usize, stride: usize, nb: usize, out: &mut Vec<i32>) {
    use crate::quant::blocks::BlockQ8_0;
    out.clear();
    for t in 0..ntok {
        for b in 0..nb {
            let qs = &a[t * stride + b * BlockQ8_0::SIZE + BlockQ8_0::QS..][..32];
            out.push(qs.iter().map(|&q| q as i8 as i32).sum());
        }
    }
}

/// Quantizes activations `src` into `dst` in format `act` for the dot products, with the SIMD
/// quantizer where there is one (Q8_0: llama.cpp's x86 rounding; Q8_K: bit-identical to the
/// reference), else [`crate::quant::quantize_row_unchecked`]. Whole blocks only; never panics.
pub fn quantize_activations(act: GgmlType, src: &[f32], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if SIMD_ENABLED.load(Ordering::Relaxed) && x86::Features::detect().avx2() {
        match act {
            GgmlType::Q8_0 => return x86::quantize::q8_0(src, dst),
            GgmlType::Q8_K => return x86::quantize::q8_k(src, dst),
            _ => {}
        }
    }
    crate::quant::quantize_row_unchecked(act, src, dst)
}

/// Checks that `ty` has a kernel and that `w` and `a` hold exactly `n` elements each (per row).
fn check(ty: GgmlType, n: usize, w_len: usize, rows: usize, a_len: usize) -> Result<VecDotFn> {
    let kernel =
        vec_dot_kernel(ty).ok_or_else(|| Error::Unsupported(format!("dot products of {ty}")))?;
    let act = vec_dot_type(ty);
    let (Some(wb), Some(ab)) = (ty.row_bytes(n as u64), act.row_bytes(n as u64)) else {
        return Err(Error::InvalidArgument(format!(
            "a row of {n} elements is not a whole number of {ty} / {act} blocks"
        )));
    };
    let want_w = wb.checked_mul(rows as u64);
    if want_w != Some(w_len as u64) {
        return Err(Error::InvalidArgument(format!(
            "{rows} rows of {n} {ty} elements take {wb}·{rows} bytes, got {w_len}"
        )));
    }
    if ab != a_len as u64 {
        return Err(Error::InvalidArgument(format!(
            "{n} {act} activations take {ab} bytes, got {a_len}"
        )));
    }
    Ok(kernel)
}

/// [`vec_dot`] with validation: `w` must be exactly one row of `n` elements of `ty` and `a`
/// exactly `n` elements of `vec_dot_type(ty)`.
///
/// # Errors
/// [`Error::Unsupported`] for a type without a dot product, [`Error::InvalidArgument`] for
/// inconsistent lengths.
pub fn vec_dot_checked(ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> Result<f32> {
    let kernel = check(ty, n, w.len(), 1, a.len())?;
    Ok(kernel(n, w, a))
}

/// `out[r] = w[r] · a` for the `rows` consecutive rows of `n` elements of `ty` in `w`, with `a`
/// one activation row already quantized in `vec_dot_type(ty)`. Single-threaded.
///
/// # Errors
/// [`Error::Unsupported`] for a type without a dot product; [`Error::InvalidArgument`] when `w`
/// is not exactly `rows` rows, `a_quant` not exactly one activation row, or `out.len() != rows`.
pub fn matmul_rows(
    ty: GgmlType,
    w: &[u8],
    rows: usize,
    n: usize,
    a_quant: &[u8],
    out: &mut [f32],
) -> Result<()> {
    let kernel = check(ty, n, w.len(), rows, a_quant.len())?;
    if out.len() != rows {
        return Err(Error::InvalidArgument(format!(
            "{rows} rows need {rows} outputs, got {}",
            out.len()
        )));
    }
    if n == 0 || rows == 0 {
        // Empty rows: every dot product is an empty sum.
        out.fill(0.0);
        return Ok(());
    }
    let rb = w.len() / rows;
    for (o, row) in out.iter_mut().zip(w.chunks_exact(rb)) {
        *o = kernel(n, row, a_quant);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::quantize_row;
    use GgmlType::*;

    #[test]
    fn every_computable_type_has_a_kernel() {
        for ty in GgmlType::ALL {
            assert_eq!(vec_dot_kernel(ty).is_some(), ty.is_computable(), "{ty}");
        }
        assert!(vec_dot(IQ2_XXS, 256, &[0; 66], &[0; 292]).is_nan());
    }

    #[test]
    fn checked_entry_points_reject_bad_lengths() {
        let a = vec![0u8; 34];
        assert!(matches!(
            vec_dot_checked(Q4_0, 32, &[0u8; 17], &a),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            vec_dot_checked(Q4_0, 32, &[0u8; 18], &a[..33]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            vec_dot_checked(Q4_0, 31, &[0u8; 18], &a),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            vec_dot_checked(Q8_K, 256, &[0u8; 292], &[0u8; 292]),
            Err(Error::Unsupported(_))
        ));
        assert_eq!(vec_dot_checked(Q4_0, 32, &[0u8; 18], &a).unwrap(), 0.0);
        let mut out = [0f32; 2];
        assert!(matches!(
            matmul_rows(Q4_0, &[0u8; 18], 2, 32, &a, &mut out),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            matmul_rows(Q4_0, &[0u8; 36], 2, 32, &a, &mut out[..1]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            matmul_rows(Q4_0, &[0u8; 36], usize::MAX, 32, &a, &mut out),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn empty_rows_and_matrices() {
        assert_eq!(vec_dot_checked(Q4_K, 0, &[], &[]).unwrap(), 0.0);
        let mut out = [1f32; 3];
        matmul_rows(Q8_0, &[], 3, 0, &[], &mut out).unwrap();
        assert_eq!(out, [0.0; 3]);
        matmul_rows(Q8_0, &[], 0, 32, &[0u8; 34], &mut []).unwrap();
    }

    #[test]
    fn matmul_rows_is_vec_dot_per_row() {
        // Two F32 rows against one activation row.
        let w: Vec<u8> = [1f32, 2.0, 3.0, 4.0, -1.0, 0.5, 0.25, 8.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let x = [1f32, 1.0, 2.0, -1.0];
        let mut a = vec![0u8; 16];
        quantize_row(F32, &x, &mut a).unwrap();
        let mut out = [0f32; 2];
        matmul_rows(F32, &w, 2, 4, &a, &mut out).unwrap();
        assert_eq!(out, [5.0, -8.0]);
        assert_eq!(out[1], vec_dot(F32, 4, &w[16..], &a));
    }
}
