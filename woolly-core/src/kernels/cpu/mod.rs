//! CPU kernels: dot products of quantized weights with quantized activations, the transformer's
//! element-wise operations, and work splitting across threads.
//!
//! Every kernel has a plain scalar implementation ([`scalar`]), which is the reference: faster
//! SIMD versions, chosen at run time, are added beside it and tested against it. The entry points
//! here ([`vec_dot`], [`vec_dot_kernel`], [`matmul_rows`]) are where that choice is made; today
//! they always use the scalar kernels.
//!
//! A matrix-vector product goes: quantize the activation row once with
//! [`crate::quant::quantize_row`] into [`crate::quant::vec_dot_type`]`(weight type)`, then take
//! the dot product of every weight row with it.

pub mod ops;
pub mod parallel;
pub mod scalar;

use crate::gguf::GgmlType;
use crate::quant::vec_dot_type;
use crate::{Error, Result};

/// A dot-product kernel for one weight type: `f(n, w, a)` is `w · a` over `n` elements, `w` one
/// weight row of that type and `a` one activation row in its [`vec_dot_type`]. `n` must be a
/// multiple of the block size, and both rows must hold at least `n` elements; extra bytes are
/// ignored.
pub type VecDotFn = fn(n: usize, w: &[u8], a: &[u8]) -> f32;

/// The best available dot-product kernel for weight type `ty`, or `None` when `ty` has none (it
/// is not [`GgmlType::is_computable`]). Resolve it once outside a loop over rows.
#[inline]
pub fn vec_dot_kernel(ty: GgmlType) -> Option<VecDotFn> {
    scalar::kernel(ty)
}

/// `w · a` for one row of `n` elements: `w` of type `ty`, `a` already quantized in
/// [`vec_dot_type`]`(ty)`.
///
/// For speed nothing is validated here: NaN is returned for a type without a dot product, and
/// short rows yield a sum over fewer blocks. Use [`vec_dot_checked`] when the inputs are not
/// known to be consistent.
#[inline]
pub fn vec_dot(ty: GgmlType, n: usize, w: &[u8], a: &[u8]) -> f32 {
    scalar::vec_dot(ty, n, w, a)
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
