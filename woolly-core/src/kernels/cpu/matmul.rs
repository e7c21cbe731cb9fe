//! Matrix products of quantized weights with a batch of activation rows: the activations
//! quantized once ([`quantize_rows`]), then the dispatch ([`matmul`]) to this CPU's packed
//! layout when the weight has one, to a matrix-vector product for one row, or to a
//! weight-row-major product whose result is transposed into token-major order
//! ([`transpose_into`]). The weights come as plain views ([`WeightView`]).

use crate::gguf::GgmlType;
use crate::kernels::cpu::parallel::{par_for_dynamic, par_items_dynamic, SharedOut};
use crate::kernels::cpu::{self, PackedMatrix, ThreadPool};
use crate::quant;
use crate::{Error, Result};

/// A weight matrix of `rows` x `cols` as the matrix product reads it.
#[derive(Debug, Clone, Copy)]
pub struct WeightView<'a> {
    /// The type of the rows in `data`.
    pub ty: GgmlType,
    /// Rows (outputs of the product).
    pub rows: usize,
    /// Columns (inputs of the product).
    pub cols: usize,
    /// The rows, still quantized, one after the other.
    pub data: &'a [u8],
    /// The copy of the matrix in this CPU's packed layout, when it has one.
    pub packed: Option<&'a PackedMatrix>,
}

/// `v` resized to `n` values (reusing its storage), as a slice. When the storage grows it is
/// offered transparent huge pages.
pub fn sized(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    let grew = n > v.capacity();
    v.resize(n, 0.0);
    if grew {
        // Woolly's own scratch: transparent huge pages where the system allows them.
        crate::platform::memory::advise_huge_pages(v.as_mut_slice());
    }
    &mut v[..n]
}

/// Quantizes `n` rows of `x` into the activation format `act`.
pub fn quantize_rows(
    act: GgmlType,
    x: &[f32],
    n: usize,
    out: &mut Vec<u8>,
    pool: &ThreadPool,
) -> Result<()> {
    let cols = x.len() / n.max(1);
    let rb = act
        .row_bytes(cols as u64)
        .ok_or_else(|| Error::Internal(format!("{cols} columns do not fit {act} blocks")))?
        as usize;
    out.resize(rb * n, 0);
    if n == 0 || rb == 0 {
        return Ok(());
    }
    if !quant::is_activation_type(act) || x.len() < n * cols {
        return Err(Error::Internal(format!(
            "cannot quantize activations to {act}"
        )));
    }
    par_items_dynamic(
        pool,
        out,
        rb,
        8,
        || (),
        |_, t, dst| {
            cpu::quantize_activations(act, &x[t * cols..(t + 1) * cols], dst);
        },
    );
    Ok(())
}

/// `out[t][r] = W[r] . x[t]` for the `n` rows of `x`, given quantized in `xq` (in
/// [`quant::vec_dot_type`]`(w.ty)`, see [`quantize_rows`]). `tmp` and `ysums` are scratch kept
/// from one call to the next.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    w: WeightView<'_>,
    xq: &[u8],
    n: usize,
    out: &mut [f32],
    tmp: &mut Vec<f32>,
    ysums: &mut Vec<i32>,
    pool: &ThreadPool,
) {
    let arb = xq.len() / n.max(1);
    if let Some(p) = w.packed.filter(|p| p.usable()) {
        if p.needs_block_sums() {
            cpu::q8_0_block_sums(xq, n, arb, w.cols / 32, ysums);
        }
        let ysums = &ysums[..];
        assert!(out.len() >= n * w.rows);
        let dst = SharedOut(out.as_mut_ptr());
        let dst = &dst;
        // Groups of eight rows, handed out dynamically (a busy core takes fewer); each writes
        // its eight outputs of every token straight into the token-major result.
        let grain = (64 / n).clamp(1, 8);
        par_for_dynamic(pool, w.rows / 8, grain, |g| {
            // SAFETY: group `g` writes only rows 8g..8g+8 of each token's output, which no
            // other group touches; `out` holds n rows of w.rows outputs and outlives the pool
            // call.
            unsafe { p.gemm_raw(xq, arb, n, ysums, g * 8, 8, dst.0.add(g * 8), w.rows) }
        });
        return;
    }
    let data = w.data;
    let rb = data.len() / w.rows.max(1);
    let (ty, cols, rows) = (w.ty, w.cols, w.rows);
    if n == 1 {
        // Groups of 64 rows handed out dynamically (a busy core takes fewer).
        par_items_dynamic(
            pool,
            out,
            64,
            1,
            || (),
            |_, item, chunk| {
                let r = item * 64;
                cpu::matvec_rows(ty, cols, &data[r * rb..(r + 64) * rb], rb, xq, chunk);
            },
        );
        let done = rows / 64 * 64;
        if done < rows {
            cpu::matvec_rows(
                ty,
                cols,
                &data[done * rb..rows * rb],
                rb,
                xq,
                &mut out[done..],
            );
        }
        return;
    }
    // Weight-row-major: each weight row is read once for every token, then the result is
    // transposed into token-major order.
    let t = sized(tmp, rows * n);
    par_items_dynamic(pool, t, n, 4, Vec::new, |repack, r, row_out| {
        let w = &data[r * rb..(r + 1) * rb];
        cpu::dot_multi(ty, cols, w, xq, arb, row_out, repack);
    });
    transpose_into(t, rows, n, out, pool);
}

/// `out[tok][r] = t[r][tok]`, tokens split across the pool, rows in cache-sized blocks.
pub fn transpose_into(t: &[f32], rows: usize, n: usize, out: &mut [f32], pool: &ThreadPool) {
    const TOK: usize = 16;
    let out = &mut out[..rows * n];
    par_items_dynamic(
        pool,
        out,
        rows * TOK.min(n),
        1,
        || (),
        |_, item, piece| {
            let t0 = item * TOK;
            let tn = piece.len() / rows;
            for r0 in (0..rows).step_by(256) {
                for r in r0..(r0 + 256).min(rows) {
                    let src = &t[r * n + t0..r * n + t0 + tn];
                    for (k, &v) in src.iter().enumerate() {
                        piece[k * rows + r] = v;
                    }
                }
            }
        },
    );
    // A last partial group of tokens.
    let done = n / TOK.min(n) * TOK.min(n);
    for tok in done..n {
        for r in 0..rows {
            out[tok * rows + r] = t[r * n + tok];
        }
    }
}
