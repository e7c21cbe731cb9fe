//! Stress: many threads loading, generating, cancelling and unloading at once, for a bounded time
//! (`WOOLLY_STRESS_SECONDS`, default 12). Nothing deadlocks (a watchdog fails the test), every
//! accepted request ends with a result or an error, and after everything is dropped the process's
//! memory is back at the baseline measured after a warm-up round.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use woolly_core::engine::{Engine, EngineParams, Event, Priority, Request};
use woolly_core::generate::{CancelToken, GenerateParams, SamplingParams, Session, SessionParams};
use woolly_core::model::{Model, ModelCache, ModelParams, Preload};
use woolly_core::policy::memory::MemoryPolicy;
use woolly_core::testing::{self, XorShift};
use woolly_core::ErrorKind;

#[derive(Default)]
struct Counts {
    submitted: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    cancelled: AtomicU64,
    expired: AtomicU64,
    refused: AtomicU64,
    loads: AtomicU64,
    sessions: AtomicU64,
    session_cancels: AtomicU64,
}

fn params(n: usize) -> GenerateParams {
    GenerateParams {
        max_tokens: n,
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
        ..Default::default()
    }
}

const PROMPTS: [&str; 4] = [
    "The capital of France is",
    "Once upon a time,",
    "def fibonacci(n):",
    "A recipe for pancakes needs flour, eggs and",
];

/// Waits for every event of one request; returns how it ended.
fn drain(h: woolly_core::engine::RequestHandle, c: &Counts) {
    loop {
        match h.recv_timeout(Duration::from_secs(60)) {
            Some(Event::Token { .. }) => continue,
            Some(Event::Done(_)) => {
                c.done.fetch_add(1, Ordering::Relaxed);
            }
            Some(Event::Error(e)) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                match e.kind() {
                    ErrorKind::Cancelled => c.cancelled.fetch_add(1, Ordering::Relaxed),
                    ErrorKind::DeadlineExceeded => c.expired.fetch_add(1, Ordering::Relaxed),
                    _ => panic!("an unexpected failure: {e}"),
                };
            }
            None => panic!("request {} never ended (60 s without an event)", h.id()),
        }
        return;
    }
}

/// One round of the whole mix for `secs` seconds; returns the counts and the process's RSS
/// sampled every `sample` (seconds since the start, bytes).
fn round(
    gemma: &Arc<Model>,
    secs: f64,
    seed: u64,
    sample: Duration,
) -> (Arc<Counts>, Vec<(f64, u64)>) {
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let engine = Arc::new(
        Engine::new(
            gemma.clone(),
            EngineParams {
                threads: 2,
                context_size: 512,
                queue_capacity: 12,
                ..Default::default()
            },
        )
        .unwrap(),
    );
    let mut threads = Vec::new();
    // Clients of the shared engine: priorities, deadlines, cancellation at random moments.
    for t in 0..4u64 {
        let (engine, counts, stop) = (engine.clone(), counts.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut rng = XorShift(seed * 1000 + t + 1);
            while !stop.load(Ordering::Relaxed) {
                let mut req = Request::text(
                    PROMPTS[rng.below(4) as usize],
                    params(1 + rng.below(6) as usize),
                )
                .with_priority(match rng.below(3) {
                    0 => Priority::Low,
                    1 => Priority::Normal,
                    _ => Priority::High,
                });
                if rng.below(4) == 0 {
                    req = req.with_timeout(Duration::from_millis(rng.below(300)));
                }
                let h = match engine.submit(req) {
                    Ok(h) => h,
                    // Refused at once, never accepted: a full queue, or a deadline of 0 ms
                    // already past.
                    Err(e) if matches!(e.kind(), ErrorKind::Busy | ErrorKind::DeadlineExceeded) => {
                        counts.refused.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    Err(e) => panic!("submit: {e}"),
                };
                counts.submitted.fetch_add(1, Ordering::Relaxed);
                if rng.below(3) == 0 {
                    std::thread::sleep(Duration::from_millis(rng.below(80)));
                    h.cancel();
                }
                drain(h, &counts);
            }
        }));
    }
    // Engines on the synthetic model, created, used and dropped with requests still pending.
    {
        let (counts, stop) = (counts.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut rng = XorShift(seed * 1000 + 77);
            let p = ModelParams {
                preload: Preload::Lazy,
                ..Default::default()
            };
            while !stop.load(Ordering::Relaxed) {
                let m = Model::load(Some(&testing::synthetic_model()), &p).unwrap();
                counts.loads.fetch_add(1, Ordering::Relaxed);
                let e = Engine::new(m, EngineParams::default()).unwrap();
                let hs: Vec<_> = (0..1 + rng.below(6))
                    .map(|_| e.submit(Request::text("the cat", params(32))).unwrap())
                    .collect();
                counts
                    .submitted
                    .fetch_add(hs.len() as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(rng.below(5)));
                drop(e); // every pending request is answered
                for h in hs {
                    drain(h, &counts);
                }
            }
        }));
    }
    // A model cache loading, pinning and unloading small models while sessions use them.
    {
        let (counts, stop) = (counts.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let cache = ModelCache::new(MemoryPolicy::default()).unwrap();
            let files = [
                ("synthetic", testing::synthetic_model()),
                ("spm", testing::tiny_model("tiny-llama-spm-q4_k_m.gguf")),
                ("bpe", testing::tiny_model("tiny-llama-bpe-q4_0.gguf")),
            ];
            let mut rng = XorShift(seed * 1000 + 99);
            let p = ModelParams {
                preload: Preload::Lazy,
                ..Default::default()
            };
            while !stop.load(Ordering::Relaxed) {
                let (id, path) = &files[rng.below(3) as usize];
                let m = cache.load(id, Some(path), &p).unwrap();
                counts.loads.fetch_add(1, Ordering::Relaxed);
                let _ = cache.pin(id, rng.below(2) == 0);
                let mut s = Session::new(m, &SessionParams::default()).unwrap();
                s.generate("the cat", &params(2), |_| true).unwrap();
                counts.sessions.fetch_add(1, Ordering::Relaxed);
                if rng.below(2) == 0 {
                    let _ = cache.pin(id, false);
                    cache.unload(id);
                }
            }
        }));
    }
    // A session on the big model, cancelled from another thread during its prompt.
    {
        let (gemma, counts, stop) = (gemma.clone(), counts.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut rng = XorShift(seed * 1000 + 5);
            let long = "The quick brown fox jumps over the lazy dog. ".repeat(40);
            while !stop.load(Ordering::Relaxed) {
                let mut s = Session::new(
                    gemma.clone(),
                    &SessionParams {
                        context_size: 1024,
                        threads: 1,
                        ..Default::default()
                    },
                )
                .unwrap();
                let token = CancelToken::new();
                let t2 = token.clone();
                let delay = rng.below(150);
                let canceller = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(delay));
                    t2.cancel();
                });
                let p = GenerateParams {
                    cancel: Some(token),
                    ..params(4)
                };
                match s.generate(&long, &p, |_| true) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::Cancelled => {
                        counts.session_cancels.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("session: {e}"),
                }
                canceller.join().unwrap();
                counts.sessions.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed().as_secs_f64() < secs {
        std::thread::sleep(sample.min(Duration::from_secs_f64(secs)));
        let rss = woolly_core::platform::process::rss_bytes().unwrap();
        samples.push((start.elapsed().as_secs_f64(), rss));
        if std::env::var_os("WOOLLY_STRESS_VERBOSE").is_some() {
            println!(
                "  {:7.1} s  RSS {:7.1} MiB  {} submitted, {} done",
                start.elapsed().as_secs_f64(),
                rss as f64 / (1 << 20) as f64,
                counts.submitted.load(Ordering::Relaxed),
                counts.done.load(Ordering::Relaxed)
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    // Watchdog: every thread must finish its last step.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for t in threads {
            let r = t.join();
            if r.is_err() {
                let _ = tx.send(Err(()));
                return;
            }
        }
        let _ = tx.send(Ok(()));
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(())) => {}
        Ok(Err(())) => panic!("a stress thread failed (see its panic above)"),
        Err(_) => panic!("deadlock: the stress threads did not finish within 120 s of the stop"),
    }
    drop(engine);
    (counts, samples)
}

fn settled_rss() -> u64 {
    extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: glibc's malloc_trim only returns free memory to the system.
    unsafe { malloc_trim(0) };
    std::thread::sleep(Duration::from_millis(200));
    woolly_core::platform::process::rss_bytes().unwrap()
}

#[test]
fn threads_loading_generating_cancelling_and_unloading() {
    let secs: f64 = std::env::var("WOOLLY_STRESS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12.0);
    let started = Instant::now();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    // Warm-up round, then the baseline (the default model loaded, nothing else).
    let gemma = Model::load(Some(&testing::default_model()), &ModelParams::default()).unwrap();
    gemma.wait_preloaded();
    round(&gemma, 2.0, 1, Duration::from_secs(1));
    let baseline = settled_rss();
    let (c, _) = round(&gemma, secs, 2, Duration::from_secs(1));
    let after = settled_rss();
    println!(
        "stress {secs} s: {} submitted, {} done, {} errors ({} cancelled, {} expired), {} refused at submission, {} loads, {} sessions ({} cancelled); RSS {:.1} -> {:.1} MiB; {:.1} s in all",
        c.submitted.load(Ordering::Relaxed),
        c.done.load(Ordering::Relaxed),
        c.errors.load(Ordering::Relaxed),
        c.cancelled.load(Ordering::Relaxed),
        c.expired.load(Ordering::Relaxed),
        c.refused.load(Ordering::Relaxed),
        c.loads.load(Ordering::Relaxed),
        c.sessions.load(Ordering::Relaxed),
        c.session_cancels.load(Ordering::Relaxed),
        mib(baseline),
        mib(after),
        started.elapsed().as_secs_f64()
    );
    let submitted = c.submitted.load(Ordering::Relaxed);
    let ended = c.done.load(Ordering::Relaxed) + c.errors.load(Ordering::Relaxed);
    assert_eq!(
        ended, submitted,
        "every accepted request ends with a result or an error"
    );
    assert!(c.done.load(Ordering::Relaxed) > 0 && c.cancelled.load(Ordering::Relaxed) > 0);
    assert!(
        c.session_cancels.load(Ordering::Relaxed) > 0,
        "no prompt was cancelled"
    );
    assert!(c.loads.load(Ordering::Relaxed) > 3);
    assert!(
        after <= baseline + (24 << 20),
        "memory grew from {:.1} to {:.1} MiB",
        mib(baseline),
        mib(after)
    );
}

/// `make soak`: the same mix for `WOOLLY_SOAK_SECONDS` (default 300), RSS printed every 10 s; fails
/// when the resident memory of the last third of the run is above that of the first third (after a
/// one-minute warm-up at most) by more than 16 MiB.
#[test]
#[ignore = "minutes long: run by make soak"]
fn soak() {
    let secs: f64 = std::env::var("WOOLLY_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300.0);
    let mib = |b: f64| b / (1 << 20) as f64;
    let gemma = Model::load(Some(&testing::default_model()), &ModelParams::default()).unwrap();
    gemma.wait_preloaded();
    println!("soak: {secs} s of the stress mix; RSS every 10 s");
    std::env::set_var("WOOLLY_STRESS_VERBOSE", "1");
    let (c, samples) = round(&gemma, secs, 3, Duration::from_secs(10));
    let warm = (secs / 5.0).min(60.0);
    let steady: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(t, _)| *t >= warm)
        .map(|&(t, r)| (t, r as f64))
        .collect();
    assert!(
        steady.len() >= 3,
        "too short a soak: {} samples after warm-up",
        steady.len()
    );
    let third = steady.len() / 3;
    let mean = |s: &[(f64, f64)]| s.iter().map(|x| x.1).sum::<f64>() / s.len() as f64;
    let first = mean(&steady[..third.max(1)]);
    let last = mean(&steady[steady.len() - third.max(1)..]);
    // Least-squares slope, MiB per minute.
    let n = steady.len() as f64;
    let (mt, mr) = (
        steady.iter().map(|x| x.0).sum::<f64>() / n,
        steady.iter().map(|x| x.1).sum::<f64>() / n,
    );
    let slope = steady.iter().map(|x| (x.0 - mt) * (x.1 - mr)).sum::<f64>()
        / steady.iter().map(|x| (x.0 - mt).powi(2)).sum::<f64>();
    println!(
        "soak: {} requests ({} done, {} errors), {} loads, {} sessions; RSS first third {:.1} MiB, last third {:.1} MiB, slope {:+.2} MiB/min",
        c.submitted.load(Ordering::Relaxed),
        c.done.load(Ordering::Relaxed),
        c.errors.load(Ordering::Relaxed),
        c.loads.load(Ordering::Relaxed),
        c.sessions.load(Ordering::Relaxed),
        mib(first),
        mib(last),
        mib(slope) * 60.0
    );
    assert_eq!(
        c.done.load(Ordering::Relaxed) + c.errors.load(Ordering::Relaxed),
        c.submitted.load(Ordering::Relaxed)
    );
    assert!(
        last - first < 16.0 * (1 << 20) as f64,
        "RSS grew by {:.1} MiB",
        mib(last - first)
    );
}
