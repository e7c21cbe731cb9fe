//! Splitting work across a thread pool so that every output element is always computed the same
//! way, whatever the thread count: each element is produced by exactly one call on one thread, and
//! no reduction crosses threads. Results are therefore bit-identical for 1 and N threads.

use crate::kernels::cpu::pool::ThreadPool;

struct SendPtr<T>(*mut T);
// SAFETY: used only to hand disjoint sub-slices of one `&mut [T]` to different threads.
unsafe impl<T: Send> Send for SendPtr<T> {}
unsafe impl<T: Send> Sync for SendPtr<T> {}

/// Calls `f(first_chunk_index, chunks)` on the pool's threads, each given a contiguous run of
/// whole `chunk`-sized pieces of `data` (the last run also takes any remainder).
pub fn par_chunks_mut<T: Send>(
    pool: &ThreadPool,
    data: &mut [T],
    chunk: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let chunk = chunk.max(1);
    let n_chunks = data.len() / chunk;
    let threads = pool.threads().min(n_chunks).max(1);
    if threads == 1 {
        f(0, data);
        return;
    }
    let per = n_chunks.div_ceil(threads);
    let len = data.len();
    let ptr = SendPtr(data.as_mut_ptr());
    let ptr = &ptr;
    pool.broadcast(&|ti| {
        let first = ti * per;
        if first >= n_chunks {
            return;
        }
        let last = ((ti + 1) * per).min(n_chunks);
        let start = first * chunk;
        let end = if last == n_chunks { len } else { last * chunk };
        // SAFETY: the ranges [start, end) of different thread indices are disjoint and inside
        // `data`, which stays mutably borrowed until `broadcast` returns.
        let part = unsafe { std::slice::from_raw_parts_mut(ptr.0.add(start), end - start) };
        f(first, part);
    });
}

/// Calls `f(state, item, piece)` for every `item_len`-sized piece of `data`, handing items out
/// `grain` at a time to whichever thread is free. Balanced when items differ in cost (causal
/// attention) or when a core is busy with something else on a desktop; still one call per item,
/// so the results do not depend on the thread count. `init` makes each participating thread's
/// scratch state once per call.
pub fn par_items_dynamic<T: Send, S>(
    pool: &ThreadPool,
    data: &mut [T],
    item_len: usize,
    grain: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize, &mut [T]) + Sync,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let item_len = item_len.max(1);
    let grain = grain.max(1);
    let n_items = data.len() / item_len;
    if n_items == 0 {
        return;
    }
    if pool.threads() == 1 || n_items <= grain {
        let mut st = init();
        for (i, piece) in data.chunks_exact_mut(item_len).enumerate() {
            f(&mut st, i, piece);
        }
        return;
    }
    let next = AtomicUsize::new(0);
    let ptr = SendPtr(data.as_mut_ptr());
    let ptr = &ptr;
    pool.broadcast(&|_| {
        let mut st = None;
        loop {
            let start = next.fetch_add(grain, Ordering::Relaxed);
            if start >= n_items {
                break;
            }
            let st = st.get_or_insert_with(&init);
            for item in start..(start + grain).min(n_items) {
                // SAFETY: every item index is handed out exactly once (the atomic counter), so
                // the pieces are disjoint; all lie inside `data`, borrowed until `broadcast`
                // returns.
                let piece =
                    unsafe { std::slice::from_raw_parts_mut(ptr.0.add(item * item_len), item_len) };
                f(st, item, piece);
            }
        }
    });
}

/// Calls `f(item)` for every item in `0..n_items`, handed out `grain` at a time to whichever
/// thread is free (for callers that write disjoint parts of one output through a
/// [`SharedOut`]).
pub fn par_for_dynamic(pool: &ThreadPool, n_items: usize, grain: usize, f: impl Fn(usize) + Sync) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let grain = grain.max(1);
    if pool.threads() == 1 || n_items <= grain {
        (0..n_items).for_each(f);
        return;
    }
    let next = AtomicUsize::new(0);
    pool.broadcast(&|_| loop {
        let start = next.fetch_add(grain, Ordering::Relaxed);
        if start >= n_items {
            break;
        }
        (start..(start + grain).min(n_items)).for_each(&f);
    });
}

/// A raw pointer to an output that several threads fill in disjoint places.
pub struct SharedOut<T>(pub *mut T);
// SAFETY: users write disjoint elements only (each caller documents why).
unsafe impl<T: Send> Send for SharedOut<T> {}
unsafe impl<T: Send> Sync for SharedOut<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_every_chunk_once() {
        for threads in 1..5 {
            let pool = ThreadPool::new(threads).unwrap();
            for n in [0usize, 1, 3, 7, 16] {
                let mut v = vec![0u32; n * 3 + 1];
                par_chunks_mut(&pool, &mut v[..n * 3], 3, |first, chunks| {
                    for (i, c) in chunks.chunks_mut(3).enumerate() {
                        c.iter_mut().for_each(|x| *x += (first + i) as u32 + 1);
                    }
                });
                let mut want: Vec<u32> = (0..n).flat_map(|i| [i as u32 + 1; 3]).collect();
                want.push(0);
                assert_eq!(v, want, "threads {threads} n {n}");
            }
        }
    }

    #[test]
    fn dynamic_items_cover_every_item_once() {
        for threads in 1..5 {
            let pool = ThreadPool::new(threads).unwrap();
            for (n, grain) in [(0usize, 1usize), (1, 4), (7, 2), (100, 3), (64, 64)] {
                let mut v = vec![0u32; n * 2];
                par_items_dynamic(
                    &pool,
                    &mut v,
                    2,
                    grain,
                    || 0u32,
                    |calls, item, piece| {
                        *calls += 1;
                        piece.iter_mut().for_each(|x| *x += item as u32 + 1);
                    },
                );
                let want: Vec<u32> = (0..n).flat_map(|i| [i as u32 + 1; 2]).collect();
                assert_eq!(v, want, "threads {threads} n {n} grain {grain}");
            }
        }
    }
}
