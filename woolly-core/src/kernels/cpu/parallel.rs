//! Splitting work across a thread pool so that every output element is always computed the same
//! way, whatever the thread count: each element is produced by exactly one call on one thread, and
//! no reduction crosses threads. Results are therefore bit-identical for 1 and N threads.

use crate::tune::pool::ThreadPool;

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
}
