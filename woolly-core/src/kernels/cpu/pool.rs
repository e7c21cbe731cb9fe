//! A persistent worker pool for the forward pass.
//!
//! Spawning threads for every matrix product costs tens of microseconds each, hundreds of times per
//! token. This pool keeps its workers alive: a job is published by bumping an epoch counter;
//! workers spin on it briefly (a token's matrix products follow each other within microseconds),
//! then park on a condition variable so an idle pool costs no CPU.
//!
//! [`ThreadPool::broadcast`] runs one closure on every thread of the pool, the caller's included,
//! and returns when all are done; each call knows its thread index, so work is split the same way
//! every time.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// The job of one broadcast: a borrowed closure with its lifetime erased. Sound because
/// `broadcast` does not return before every worker has finished calling it.
#[derive(Clone, Copy)]
struct Job {
    f: *const (dyn Fn(usize) + Sync),
    /// Threads taking part: workers with a higher index skip the job.
    active: usize,
}

// SAFETY: the pointee is `Sync` and outlives every use (see `Job`).
unsafe impl Send for Job {}
unsafe impl Sync for Job {}

struct Shared {
    epoch: AtomicU64,
    job: Mutex<Option<Job>>,
    wake: Condvar,
    pending: AtomicUsize,
    shutdown: AtomicBool,
    panicked: AtomicBool,
    /// Iterations a worker spins on the epoch before parking.
    spin: usize,
    /// Kernel thread ids of the workers (Linux), for priority changes.
    tids: Mutex<Vec<i64>>,
}

/// A fixed set of worker threads (plus the calling thread) that run broadcasts.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// Serializes broadcasts from different threads sharing one pool.
    busy: Mutex<()>,
    /// Threads taking part in broadcasts (at most `workers.len() + 1`).
    active: AtomicUsize,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads())
            .finish()
    }
}

/// Default spin before parking: about 50-100 microseconds on a current desktop core.
pub const DEFAULT_SPIN: usize = 20_000;

/// Threads of every live pool in the process (workers and callers).
static LIVE_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Whether the live pools have more threads than the process has CPUs. Spinning threads then
/// take CPU time from the ones doing the work (on 2 cores, 16 spinning threads made generation ten
/// times slower), so waiting threads yield at once and park sooner.
pub fn oversubscribed() -> bool {
    LIVE_THREADS.load(Ordering::Relaxed) > crate::platform::process::available_cpus()
}

/// Spin iterations between yields, and the spin before parking, when oversubscribed.
const OVERSUBSCRIBED_YIELD_EVERY: usize = 16;
const OVERSUBSCRIBED_SPIN_DIVISOR: usize = 16;

impl ThreadPool {
    /// A pool of `threads` threads in all (the caller counts as one, so `threads - 1` are spawned).
    pub fn new(threads: usize) -> std::io::Result<ThreadPool> {
        Self::with_options(threads, DEFAULT_SPIN, None)
    }

    /// A pool whose workers spin `spin` iterations before parking and, on Linux, are pinned to
    /// `cpus` (worker i to `cpus[(i + 1) % len]`; the caller's thread is left alone).
    pub fn with_options(
        threads: usize,
        spin: usize,
        cpus: Option<Vec<usize>>,
    ) -> std::io::Result<ThreadPool> {
        let threads = threads.max(1);
        // A panic on a worker is caught and re-raised to the caller; its message goes to the
        // log callback, not to stderr.
        crate::panics::install();
        LIVE_THREADS.fetch_add(threads, Ordering::Relaxed);
        // Counted until the pool is dropped (or, if it cannot be built, until this returns).
        struct Live(usize, bool);
        impl Drop for Live {
            fn drop(&mut self) {
                if !self.1 {
                    LIVE_THREADS.fetch_sub(self.0, Ordering::Relaxed);
                }
            }
        }
        let mut live = Live(threads, false);
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: Mutex::new(None),
            wake: Condvar::new(),
            pending: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            spin,
            tids: Mutex::new(Vec::new()),
        });
        let mut workers = Vec::with_capacity(threads - 1);
        for index in 1..threads {
            let shared = shared.clone();
            let cpu = cpus
                .as_ref()
                .filter(|c| !c.is_empty())
                .map(|c| c[index % c.len()]);
            let handle = std::thread::Builder::new()
                .name(format!("woolly-worker-{index}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        pin_to_cpu(cpu);
                    }
                    if let Some(tid) = current_tid() {
                        shared
                            .tids
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(tid);
                    }
                    worker(shared, index)
                })?;
            workers.push(handle);
        }
        // Wait until every worker has registered its thread id (a few microseconds).
        #[cfg(target_os = "linux")]
        while shared.tids.lock().unwrap_or_else(|e| e.into_inner()).len() < threads - 1 {
            std::thread::yield_now();
        }
        live.1 = true;
        Ok(ThreadPool {
            shared,
            workers,
            busy: Mutex::new(()),
            active: AtomicUsize::new(threads),
        })
    }

    /// Threads taking part in broadcasts, the caller's included (see [`ThreadPool::set_active`]).
    pub fn threads(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Threads in the pool, the caller's included.
    pub fn size(&self) -> usize {
        self.workers.len() + 1
    }

    /// Uses only the first `n` threads (1 to [`ThreadPool::size`]) for the next broadcasts; the
    /// others stay parked. Lets one pool serve workloads that want different thread counts.
    pub fn set_active(&self, n: usize) {
        self.active
            .store(n.clamp(1, self.size()), Ordering::Relaxed);
    }

    /// Lowers (or, with permission, raises) the scheduling priority of the pool's worker
    /// threads to `nice` (Linux; elsewhere a no-op). Only this pool's own threads change.
    ///
    /// # Errors
    /// The OS error when the priority cannot be set (raising it needs privileges).
    pub fn set_worker_nice(&self, nice: i32) -> std::io::Result<()> {
        #[cfg(any(target_vendor = "apple", windows))]
        {
            // macOS (QoS classes) and Windows (thread priorities) set a thread's priority from
            // the thread itself: each worker lowers its own. Compiled behind `cfg`; untested
            // here (Linux is the tested platform).
            let failed = std::sync::atomic::AtomicBool::new(false);
            self.broadcast(&|i| {
                if i > 0 && !lower_own_priority(nice) {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            });
            if failed.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(std::io::Error::other(
                    "a worker could not lower its priority",
                ));
            }
            return Ok(());
        }
        #[allow(unreachable_code)]
        let tids = self
            .shared
            .tids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for tid in tids {
            set_thread_nice(tid, nice)?;
        }
        Ok(())
    }

    /// Runs `f(thread_index)` once on every thread of the pool (index 0 on the caller's thread)
    /// and returns when all calls have returned. A panic in any call is re-raised here.
    pub fn broadcast(&self, f: &(dyn Fn(usize) + Sync)) {
        let active = self.threads();
        if self.workers.is_empty() || active == 1 {
            f(0);
            return;
        }
        let _guard = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        // SAFETY: we erase the closure's lifetime; it is only called until `pending` reaches zero,
        // which this function waits for before returning.
        let job = Job {
            f: unsafe {
                std::mem::transmute::<
                    *const (dyn Fn(usize) + Sync + '_),
                    *const (dyn Fn(usize) + Sync),
                >(f as *const _)
            },
            active,
        };
        s.pending.store(active - 1, Ordering::SeqCst);
        {
            let mut slot = s.job.lock().unwrap_or_else(|e| e.into_inner());
            *slot = Some(job);
            s.epoch.fetch_add(1, Ordering::SeqCst);
        }
        s.wake.notify_all();
        let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
        let mut spins = 0u32;
        let yield_every = if oversubscribed() {
            OVERSUBSCRIBED_YIELD_EVERY as u32
        } else {
            1024
        };
        while s.pending.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(yield_every) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        if let Err(p) = mine {
            std::panic::resume_unwind(p);
        }
        if s.panicked.swap(false, Ordering::SeqCst) {
            panic!("a worker thread panicked during a broadcast");
        }
    }
}

fn worker(s: Arc<Shared>, index: usize) {
    let mut seen = 0u64;
    loop {
        // Spin for a new epoch, then park; when the process runs more pool threads than it has
        // CPUs, yield while spinning and park sooner.
        let mut spins = 0;
        let crowded = oversubscribed();
        let spin_limit = if crowded {
            s.spin / OVERSUBSCRIBED_SPIN_DIVISOR
        } else {
            s.spin
        };
        let job = loop {
            if s.shutdown.load(Ordering::Acquire) {
                return;
            }
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                let job = *s.job.lock().unwrap_or_else(|p| p.into_inner());
                break job;
            }
            if spins < spin_limit {
                spins += 1;
                if crowded && spins.is_multiple_of(OVERSUBSCRIBED_YIELD_EVERY) {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            let guard = s.job.lock().unwrap_or_else(|p| p.into_inner());
            if s.epoch.load(Ordering::Acquire) == seen && !s.shutdown.load(Ordering::Acquire) {
                drop(s.wake.wait(guard).unwrap_or_else(|p| p.into_inner()));
            }
        };
        if let Some(job) = job {
            if index >= job.active {
                // Not taking part in this one.
                continue;
            }
            // SAFETY: see `Job`: the broadcaster waits for `pending` to reach zero.
            let f = unsafe { &*job.f };
            if catch_unwind(AssertUnwindSafe(|| f(index))).is_err() {
                s.panicked.store(true, Ordering::SeqCst);
            }
        }
        s.pending.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        let threads = self.size();
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _slot = self.shared.job.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        LIVE_THREADS.fetch_sub(threads, Ordering::Relaxed);
    }
}

/// Pins the calling thread to one CPU (Linux); elsewhere, or when refused, does nothing.
#[cfg(target_os = "linux")]
fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu < libc::CPU_SETSIZE as usize {
            libc::CPU_SET(cpu, &mut set);
            let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to_cpu(_cpu: usize) {}

/// The calling thread's kernel id (Linux).
fn current_tid() -> Option<i64> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no preconditions.
        Some(unsafe { libc::syscall(libc::SYS_gettid) } as i64)
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Lowers the calling thread's priority for background work: the utility QoS class on macOS,
/// below-normal priority on Windows (`nice` > 0 asks for it). Untested here.
#[cfg(target_vendor = "apple")]
fn lower_own_priority(nice: i32) -> bool {
    if nice <= 0 {
        return true;
    }
    // SAFETY: sets the calling thread's own QoS class.
    unsafe { libc::pthread_set_qos_class_self_np(libc::qos_class_t::QOS_CLASS_UTILITY, 0) == 0 }
}

#[cfg(windows)]
fn lower_own_priority(nice: i32) -> bool {
    #[link(name = "kernel32")]
    extern "system" {
        fn GetCurrentThread() -> *mut std::ffi::c_void;
        fn SetThreadPriority(thread: *mut std::ffi::c_void, priority: i32) -> i32;
    }
    const THREAD_PRIORITY_BELOW_NORMAL: i32 = -1;
    if nice <= 0 {
        return true;
    }
    // SAFETY: the pseudo-handle of the calling thread, and a documented priority value.
    unsafe { SetThreadPriority(GetCurrentThread(), THREAD_PRIORITY_BELOW_NORMAL) != 0 }
}

/// Sets one thread's nice value (Linux: priorities are per thread).
fn set_thread_nice(tid: i64, nice: i32) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system call on a thread id of this process.
        let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (tid, nice);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_active_limits_the_threads_taking_part() {
        let pool = ThreadPool::new(3).unwrap();
        assert_eq!(pool.size(), 3);
        for active in [1usize, 2, 3, 2, 1, 3] {
            pool.set_active(active);
            assert_eq!(pool.threads(), active);
            let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..50 {
                pool.broadcast(&|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            for (i, h) in hits.iter().enumerate() {
                let want = if i < active { 50 } else { 0 };
                assert_eq!(
                    h.load(Ordering::Relaxed),
                    want,
                    "active {active} thread {i}"
                );
            }
        }
        pool.set_active(0);
        assert_eq!(pool.threads(), 1);
        pool.set_active(99);
        assert_eq!(pool.threads(), 3);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn worker_priority_can_be_lowered() {
        let pool = ThreadPool::new(3).unwrap();
        pool.set_worker_nice(7).unwrap();
        let tids = pool.shared.tids.lock().unwrap().clone();
        assert_eq!(tids.len(), 2);
        for tid in tids {
            // SAFETY: plain system call.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
            assert_eq!(nice, 7);
        }
        // The calling thread is left alone.
        // SAFETY: plain system call.
        let mine = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_ne!(mine, 7);
    }

    #[test]
    fn every_thread_runs_once_per_broadcast() {
        for threads in 1..5 {
            let pool = ThreadPool::new(threads).unwrap();
            assert_eq!(pool.threads(), threads);
            for _ in 0..200 {
                let hits: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
                pool.broadcast(&|i| {
                    hits[i].fetch_add(1, Ordering::SeqCst);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::SeqCst) == 1));
            }
        }
    }

    #[test]
    fn parked_workers_wake_up() {
        let pool = ThreadPool::with_options(3, 10, None).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let n = AtomicUsize::new(0);
        pool.broadcast(&|_| {
            n.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_worker_panic_reaches_the_caller_and_the_pool_survives() {
        let pool = ThreadPool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.broadcast(&|i| {
                if i == 1 {
                    panic!("boom");
                }
            })
        }));
        assert!(r.is_err());
        let n = AtomicUsize::new(0);
        pool.broadcast(&|_| {
            n.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn shared_between_threads() {
        let pool = Arc::new(ThreadPool::new(2).unwrap());
        let total = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (pool, total) = (pool.clone(), total.clone());
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        pool.broadcast(&|_| {
                            total.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(total.load(Ordering::SeqCst), 4 * 100 * 2);
    }
}
