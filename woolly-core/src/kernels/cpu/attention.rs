//! Attention over a KV cache, as llama.cpp's CPU flash attention computes it: per query head an
//! online softmax with an f16 value accumulator (decode and short batches, [`attention`],
//! [`attention_decode_batch`]), or tiles of 64 queries against tiles of 64 keys for a prompt.
//! The kernels read keys and values through [`KvView`] and know nothing of models: the shapes
//! come as an [`AttnShape`] (in `kernels::kv`, for every backend).

use crate::kernels::cpu::parallel::{par_items_dynamic, SharedOut};
use crate::kernels::cpu::{ops, ThreadPool};
use crate::kernels::kv::{AttnShape, KvView};

/// Causal (optionally sliding-window) attention of `q` (the sequence's newest `n` tokens, ending at
/// position `len - 1`) over the cached keys and values.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    c: &AttnShape,
    window: Option<usize>,
    q: &mut [f32],
    k: KvView<'_>,
    v: KvView<'_>,
    len: usize,
    out: &mut [f32],
    pool: &ThreadPool,
) {
    let (hk, hv) = (c.head_dim_k, c.head_dim_v);
    let q_w = c.n_head * hk;
    let n = q.len() / q_w;
    let group = c.n_head / c.n_head_kv;
    let first_pos = len - n;
    if n >= ATTN_TILE {
        return attention_tiled(c, window, q, k, v, len, out, pool);
    }
    // Queries are rounded to f16, as llama.cpp's flash attention converts them on this path.
    (ops::vec_ops().round_to_f16)(q);
    let q = &*q;
    // One work item per (token, head): it writes exactly its own `hv` outputs. The softmax is
    // computed online (one pass over the keys) with the value accumulator held in f16, the same
    // arithmetic as llama.cpp's CPU flash attention over an f16 cache: the reference logits were
    // computed that way, and the tiny models then agree with them to about 1e-5.
    let ops = ops::vec_ops();
    // A single query over a long cache: llama.cpp splits the keys into chunks, each with its
    // own f16 accumulator, merged in f32 (see [`decode_chunks`]).
    let chunks = if n == 1 { decode_chunks(len) } else { None };
    // Items are (token, head) pairs, handed out dynamically: later tokens see more keys.
    par_items_dynamic(
        pool,
        out,
        hv,
        4,
        || (vec![0f32; hv], vec![0f32; hk.max(hv)]),
        |(part, row), item, o| {
            let (t, h) = (item / c.n_head, item % c.n_head);
            let q16 = &q[t * q_w + h * hk..t * q_w + (h + 1) * hk];
            query_head(
                &ops,
                c,
                window,
                q16,
                k,
                v,
                first_pos + t,
                h / group,
                chunks,
                part,
                row,
                o,
            );
        },
    );
}

/// One query head at position `pos` over keys `..=pos` of KV head `kvh` (within the sliding
/// `window`), into `o`: the online softmax with an f16 value accumulator, in `chunks` merged in
/// f32 when given (see [`decode_chunks`]). `q16` is already rounded to f16.
#[allow(clippy::too_many_arguments)]
fn query_head(
    ops: &ops::VecOps,
    c: &AttnShape,
    window: Option<usize>,
    q16: &[f32],
    k: KvView<'_>,
    v: KvView<'_>,
    pos: usize,
    kvh: usize,
    chunks: Option<usize>,
    part: &mut [f32],
    row: &mut [f32],
    o: &mut [f32],
) {
    let lo = window.map_or(0, |w| (pos + 1).saturating_sub(w));
    let mut keys = |acc: &mut [f32], from: usize, to: usize| {
        online_softmax_f16(ops, c, q16, k, v, kvh, from, to, acc, row)
    };
    let (_, sum) = match chunks {
        None => keys(o, lo, pos + 1),
        Some(size) => {
            // Merge the chunks' (max, sum, accumulator) in f32, in chunk order.
            let (mut max, mut sum) = (f32::NEG_INFINITY, 0f32);
            o.fill(0.0);
            let mut from = 0;
            while from <= pos {
                let to = (from + size).min(pos + 1);
                let (m_c, s_c) = keys(part, from.max(lo), to);
                from += size;
                if s_c == 0.0 {
                    continue;
                }
                let m = max.max(m_c);
                let (a, b) = ((max - m).exp(), (m_c - m).exp());
                for (x, &y) in o.iter_mut().zip(part.iter()) {
                    *x = *x * a + y * b;
                }
                sum = sum * a + s_c * b;
                max = m;
            }
            (max, sum)
        }
    };
    let inv = 1.0 / sum;
    o.iter_mut().for_each(|x| *x *= inv);
}

/// Decode attention for several sequences of one token each, in one parallel region (items are
/// (sequence, head) pairs): each item computes what [`attention`] computes for that sequence
/// alone, so batching changes no number. `caches[i]` holds sequence `i`'s keys, values and
/// length including the new token.
pub fn attention_decode_batch(
    c: &AttnShape,
    window: Option<usize>,
    q: &mut [f32],
    caches: &[(KvView<'_>, KvView<'_>, usize)],
    out: &mut [f32],
    pool: &ThreadPool,
) {
    let (hk, hv) = (c.head_dim_k, c.head_dim_v);
    let q_w = c.n_head * hk;
    let group = c.n_head / c.n_head_kv;
    (ops::vec_ops().round_to_f16)(q);
    let q = &*q;
    let ops = ops::vec_ops();
    par_items_dynamic(
        pool,
        out,
        hv,
        1,
        || (vec![0f32; hv], vec![0f32; hk.max(hv)]),
        |(part, row), item, o| {
            let (i, h) = (item / c.n_head, item % c.n_head);
            let (k, v, len) = caches[i];
            let q16 = &q[i * q_w + h * hk..i * q_w + (h + 1) * hk];
            query_head(
                &ops,
                c,
                window,
                q16,
                k,
                v,
                len - 1,
                h / group,
                decode_chunks(len),
                part,
                row,
                o,
            );
        },
    );
}

/// The key chunk size llama.cpp uses for one query over `len` cached keys, or `None` when it
/// takes them in one pass. Its CPU flash attention splits a decode step (one query, an f16
/// cache of at least 512 cells) into one chunk per thread, each accumulating the values in f16,
/// then merges the chunks in f32. Woolly fixes the split at two chunks (what llama.cpp does
/// with two threads, as the references were computed), so that its answer does not depend on
/// its own thread count. llama.cpp's cell count is the used cache rounded up to 256.
fn decode_chunks(len: usize) -> Option<usize> {
    const SPLIT: usize = 2;
    const PAD: usize = 256;
    const MIN_CELLS: usize = 512;
    let n_kv = len.div_ceil(PAD) * PAD;
    (n_kv >= MIN_CELLS).then(|| n_kv.div_ceil(SPLIT))
}

/// Keys `from..to` of KV head `kvh` for the f16 query `q16`: an online softmax whose value
/// accumulator `acc` stays in f16. Returns the running maximum and sum (0 when the range is
/// empty).
#[allow(clippy::too_many_arguments)]
fn online_softmax_f16(
    ops: &ops::VecOps,
    c: &AttnShape,
    q16: &[f32],
    k: KvView<'_>,
    v: KvView<'_>,
    kvh: usize,
    from: usize,
    to: usize,
    acc: &mut [f32],
    row: &mut [f32],
) -> (f32, f32) {
    let (hk, hv) = (c.head_dim_k, c.head_dim_v);
    let k_w = c.n_head_kv * hk;
    let v_w = c.n_head_kv * hv;
    acc.fill(0.0);
    let (mut max, mut sum) = (f32::NEG_INFINITY, 0f32);
    for j in from..to {
        let score = (ops.dot)(q16, k.row(j * k_w + kvh * hk, hk, row)) * c.kq_scale;
        // Rescale what is accumulated when a new maximum arrives; otherwise weight the new
        // value by its distance from the maximum.
        let (mut rescale, mut weight) = (1f32, 1f32);
        if score > max {
            rescale = (max - score).exp();
            max = score;
            (ops.f16_scale)(acc, rescale);
        } else {
            weight = (score - max).exp();
        }
        (ops.f16_axpy)(acc, v.row(j * v_w + kvh * hv, hv, row), weight);
        sum = sum * rescale + weight;
    }
    (max, sum)
}

/// Query and key tile size of the batched attention path (llama.cpp's `GGML_FA_TILE_Q/KV`).
const ATTN_TILE: usize = 64;

/// Attention for a batch of at least [`ATTN_TILE`] queries, as llama.cpp computes a prompt: per
/// head, tiles of 64 queries against tiles of 64 keys; scores as an f32 matrix product, an
/// online softmax per key tile, and the values accumulated in f32 by a second product. Tiles
/// that the causal (or sliding-window) mask hides entirely are skipped.
#[allow(clippy::too_many_arguments)]
fn attention_tiled(
    c: &AttnShape,
    window: Option<usize>,
    q: &[f32],
    k: KvView<'_>,
    v: KvView<'_>,
    len: usize,
    out: &mut [f32],
    pool: &ThreadPool,
) {
    const T: usize = ATTN_TILE;
    let (hk, hv) = (c.head_dim_k, c.head_dim_v);
    let q_w = c.n_head * hk;
    let a_w = c.n_head * hv;
    let n = q.len() / q_w;
    let group = c.n_head / c.n_head_kv;
    let k_w = c.n_head_kv * hk;
    let v_w = c.n_head_kv * hv;
    let first_pos = len - n;
    let q_tiles = n.div_ceil(T);
    let ops = ops::vec_ops();
    assert!(out.len() >= n * a_w);
    let dst = SharedOut(out.as_mut_ptr());
    let dst = &dst;
    struct Buf {
        q: Vec<f32>,
        kt: Vec<f32>,
        kq: Vec<f32>,
        v: Vec<f32>,
        acc: Vec<f32>,
        row: Vec<f32>,
    }
    let init = || Buf {
        row: vec![0.0; hk.max(hv)],
        q: vec![0.0; T * hk],
        kt: vec![0.0; hk * T],
        kq: vec![0.0; T * T],
        v: vec![0.0; T * hv],
        acc: vec![0.0; T * hv],
    };
    // Items are (query tile, head), the last tiles first: they see the most keys.
    let bufs: Vec<std::sync::Mutex<Option<Buf>>> = (0..pool.threads())
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let items = q_tiles * c.n_head;
    pool.broadcast(&|ti| {
        let mut slot = bufs[ti].lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let it = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if it >= items {
                break;
            }
            let b = slot.get_or_insert_with(init);
            let (qt, h) = (q_tiles - 1 - it / c.n_head, it % c.n_head);
            let kvh = h / group;
            let t0 = qt * T;
            let rows = (n - t0).min(T);
            for i in 0..T {
                let row = &mut b.q[i * hk..(i + 1) * hk];
                if i < rows {
                    let t = t0 + i;
                    row.copy_from_slice(&q[t * q_w + h * hk..t * q_w + (h + 1) * hk]);
                } else {
                    row.fill(0.0);
                }
            }
            b.acc.fill(0.0);
            let mut m = [f32::NEG_INFINITY; T];
            let mut s = [0f32; T];
            let last_pos = first_pos + t0 + rows - 1;
            let lo_of = |pos: usize| window.map_or(0, |w| (pos + 1).saturating_sub(w));
            let kv_lo = lo_of(first_pos + t0) / T * T;
            let mut ic = kv_lo;
            while ic <= last_pos {
                let kv = (len - ic).min(T);
                // K tile transposed (dk-major), zero-padded.
                b.kt.fill(0.0);
                for tk in 0..kv {
                    let kj = k.row((ic + tk) * k_w + kvh * hk, hk, &mut b.row);
                    for (dk, &x) in kj.iter().enumerate() {
                        b.kt[dk * T + tk] = x;
                    }
                }
                b.kq.fill(0.0);
                (ops.gemm_acc)(&mut b.kq, &b.q, &b.kt, T, hk, T);
                let mut any = [false; T];
                for i in 0..rows {
                    let pos = first_pos + t0 + i;
                    let lo = lo_of(pos);
                    let row = &mut b.kq[i * T..(i + 1) * T];
                    for (tk, x) in row.iter_mut().enumerate() {
                        let j = ic + tk;
                        *x = if tk < kv && j >= lo && j <= pos {
                            *x * c.kq_scale
                        } else {
                            f32::NEG_INFINITY
                        };
                    }
                    let tile_max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    if tile_max == f32::NEG_INFINITY {
                        row.fill(0.0);
                        continue;
                    }
                    any[i] = true;
                    let m_new = m[i].max(tile_max);
                    if m_new > m[i] {
                        let ms = (m[i] - m_new).exp();
                        b.acc[i * hv..(i + 1) * hv]
                            .iter_mut()
                            .for_each(|x| *x *= ms);
                        s[i] *= ms;
                    }
                    m[i] = m_new;
                    let mut sum = 0f64;
                    for x in row.iter_mut() {
                        *x = (*x - m_new).exp();
                        sum += *x as f64;
                    }
                    s[i] += sum as f32;
                }
                for row in b.kq[rows * T..].chunks_exact_mut(T) {
                    row.fill(0.0);
                }
                if any.iter().any(|&a| a) {
                    b.v.fill(0.0);
                    for tk in 0..kv {
                        let dst = &mut b.v[tk * hv..(tk + 1) * hv];
                        match v {
                            KvView::F32(s) => {
                                dst.copy_from_slice(&s[(ic + tk) * v_w + kvh * hv..][..hv])
                            }
                            KvView::F16(_) => {
                                let vj = v.row((ic + tk) * v_w + kvh * hv, hv, &mut b.row);
                                dst.copy_from_slice(vj);
                            }
                        }
                    }
                    (ops.gemm_acc)(&mut b.acc, &b.kq, &b.v, T, T, hv);
                }
                ic += T;
            }
            for (i, &si) in s.iter().enumerate().take(rows) {
                let inv = if si == 0.0 { 0.0 } else { 1.0 / si };
                let t = t0 + i;
                // SAFETY: item (qt, h) writes only head h of tokens t0..t0+rows, which no other
                // item writes; `out` holds n tokens of a_w outputs and outlives the broadcast.
                let o = unsafe { std::slice::from_raw_parts_mut(dst.0.add(t * a_w + h * hv), hv) };
                for (x, &y) in o.iter_mut().zip(&b.acc[i * hv..(i + 1) * hv]) {
                    *x = y * inv;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::decode_chunks;

    #[test]
    fn decode_steps_split_like_llama_cpp() {
        // Under 512 cells (after rounding up to 256) one pass; from there two chunks of half
        // the rounded cell count.
        assert_eq!(decode_chunks(1), None);
        assert_eq!(decode_chunks(256), None);
        assert_eq!(decode_chunks(257), Some(256));
        assert_eq!(decode_chunks(512), Some(256));
        assert_eq!(decode_chunks(832), Some(512));
        assert_eq!(decode_chunks(1025), Some(640));
    }
}
