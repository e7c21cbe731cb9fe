//! Memory: budgets that refuse what does not fit, a model cache that evicts the oldest idle
//! model and never one in use, contexts sized from the budget, preload strategies checked with
//! mincore on a private copy of the default model, mlock that degrades to a warning, and RSS
//! figures that agree with /proc.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use woolly_core::generate::{GenerateParams, KvPrecision, SamplingParams, Session, SessionParams};
use woolly_core::gguf::GgufFile;
use woolly_core::model::{Model, ModelCache, ModelParams, Preload};
use woolly_core::platform::memory::MemoryInfo;
use woolly_core::policy::memory::MemoryPolicy;
use woolly_core::testing;
use woolly_core::{Error, ErrorKind};

const MIB: u64 = 1 << 20;

fn params(policy: MemoryPolicy) -> ModelParams {
    ModelParams {
        memory: policy,
        ..Default::default()
    }
}

fn two_threads() -> SessionParams {
    SessionParams {
        threads: 2,
        ..Default::default()
    }
}

#[test]
fn a_budget_smaller_than_the_model_fails_cleanly() {
    let path = testing::default_model();
    let est = Model::estimate(Some(&path), &ModelParams::default()).unwrap();
    // The estimate covers the weights (the tensors are most of the 253 MB file) and a session.
    let file_size = std::fs::metadata(&path).unwrap().len();
    assert!(est.weights_bytes > file_size * 9 / 10 && est.weights_bytes <= file_size);
    assert!(est.kv_cache_bytes > 0 && est.scratch_bytes > 0);

    let err = Model::load(Some(&path), &params(MemoryPolicy::with_budget(100 * MIB))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InsufficientMemory);
    match &err {
        Error::InsufficientMemory {
            required,
            available,
            budgeted,
            ..
        } => {
            assert_eq!(*required, est.total_bytes);
            assert_eq!(*available, 100 * MIB);
            assert!(*budgeted);
        }
        e => panic!("{e}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("MiB") && msg.contains("budget"), "{msg}");
    assert_eq!(err.details().unwrap()["required"], est.total_bytes);

    // The same through the system's figures: 1 GiB machine with 300 MiB available.
    let tight = MemoryPolicy {
        total_bytes: Some(1 << 30),
        available_bytes: Some(300 * MIB),
        ..Default::default()
    };
    let err = Model::load(Some(&path), &params(tight)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InsufficientMemory);
    // 300 MiB available less the 256 MiB reserve of a 1 GiB machine.
    assert_eq!(err.details().unwrap()["available"], 44 * MIB);
    assert_eq!(err.details().unwrap()["budgeted"], false);

    // A budget that fits loads, and the model's charge returns when it is dropped.
    let m = Model::load(
        Some(&path),
        &params(MemoryPolicy::with_budget(est.total_bytes)),
    )
    .unwrap();
    let account = m.memory_account().clone();
    assert_eq!(account.held(), est.model_bytes());
    drop(m);
    assert_eq!(account.held(), 0);
}

#[test]
fn sessions_are_charged_and_the_default_context_shrinks_to_the_budget() {
    let path = testing::default_model();
    let est = Model::estimate(Some(&path), &ModelParams::default()).unwrap();
    let full = est.kv_cache_bytes + est.scratch_bytes;
    // Room for the model and half a default session.
    let budget = est.model_bytes() + full / 2 + full / 8;
    let m = Model::load(
        Some(&path),
        &ModelParams {
            memory: MemoryPolicy::with_budget(budget),
            context_size: 1024,
            ..Default::default()
        },
    )
    .unwrap();
    let s = Session::new(m.clone(), &two_threads()).unwrap();
    let ctx = s.context_size();
    assert!(
        (1024..4096).contains(&ctx) && ctx.is_multiple_of(256),
        "{ctx}"
    );
    assert!(m.memory_account().held() <= budget);
    // A second default session finds even less room; an explicit context that does not fit
    // is refused with the figures.
    let err = Session::new(
        m.clone(),
        &SessionParams {
            context_size: 4096,
            ..two_threads()
        },
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::InsufficientMemory, "{err}");
    drop(s);
    assert_eq!(m.memory_account().held(), est.model_bytes());
    // With the room back, an explicit 2048 fits.
    let s = Session::new(
        m.clone(),
        &SessionParams {
            context_size: 2048,
            ..two_threads()
        },
    )
    .unwrap();
    assert_eq!(s.context_size(), 2048);
}

#[test]
fn an_f32_kv_cache_takes_twice_the_memory_and_agrees_with_f16() {
    let m = Model::load(Some(&testing::default_model()), &ModelParams::default()).unwrap();
    let run = |precision| {
        let mut s = Session::new(
            m.clone(),
            &SessionParams {
                kv_precision: precision,
                context_size: 512,
                ..two_threads()
            },
        )
        .unwrap();
        let g = s
            .generate(
                "The three primary colors are",
                &GenerateParams {
                    max_tokens: 8,
                    sampling: SamplingParams::greedy(),
                    ..Default::default()
                },
                |_| true,
            )
            .unwrap();
        (g.generated_ids, s.kv_cache_bytes())
    };
    let (ids16, bytes16) = run(KvPrecision::F16);
    let (ids32, bytes32) = run(KvPrecision::F32);
    assert_eq!(bytes32, 2 * bytes16);
    assert_eq!(ids16, ids32);
}

/// The tiny reference models, each under two ids.
fn tiny() -> PathBuf {
    testing::tiny_model("tiny-llama-spm-q4_k_m.gguf")
}

#[test]
fn the_cache_evicts_the_oldest_idle_model_and_keeps_the_one_in_use() {
    // Small sessions (256 tokens), so that a model is much bigger than a session.
    let p = ModelParams {
        context_size: 256,
        ..Default::default()
    };
    let est = Model::estimate(Some(&tiny()), &p).unwrap();
    let (m, s) = (est.model_bytes(), est.session_bytes());
    assert!(m > s + s / 2, "model {m} session {s}");
    let small = SessionParams {
        context_size: 256,
        ..two_threads()
    };
    // Two models and two sessions fit; a third model does not.
    let cache = ModelCache::new(MemoryPolicy::with_budget(2 * m + 2 * s + s / 2)).unwrap();
    let a = cache.load("a", Some(&tiny()), &p).unwrap();
    drop(cache.load("b", Some(&tiny()), &p).unwrap());
    // "a" is the older one, but a session uses it.
    let session = Session::new(a.clone(), &small).unwrap();
    drop(a);
    let c = cache.load("c", Some(&tiny()), &p).unwrap();
    let mut ids = cache.ids();
    ids.sort();
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(cache.report()["evictions"], 1);
    assert_eq!(cache.report()["models"].as_array().unwrap().len(), 2);

    // Now both are in use: a fourth cannot fit, nothing is evicted, and the error says why.
    let err = cache.load("d", Some(&tiny()), &p).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::InsufficientMemory, "{err}");
    assert_eq!(cache.ids().len(), 2);
    assert!(cache.get("a").is_some() && cache.get("c").is_some());

    // Pinned models are kept even when idle; unpinned idle ones go.
    drop(session);
    drop(c);
    cache.pin("a", true).unwrap();
    cache.load("d", Some(&tiny()), &p).unwrap();
    let mut ids = cache.ids();
    ids.sort();
    assert_eq!(ids, ["a", "d"]);
    assert!(cache.pin("zzz", true).is_err());
}

#[test]
fn the_cache_swaps_and_unloads_without_a_restart() {
    let cache = ModelCache::new(MemoryPolicy::default()).unwrap();
    let p = ModelParams::default();
    let first = cache.load("chat", Some(&tiny()), &p).unwrap();
    assert!(Arc::ptr_eq(
        &first,
        &cache.load("chat", Some(&tiny()), &p).unwrap()
    ));
    // The same id from another file swaps the model; the old one lives on while held.
    let other = testing::tiny_model("tiny-qwen2-mixed.gguf");
    let second = cache.load("chat", Some(&other), &p).unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(second.hparams().architecture.name(), "qwen2");
    assert!(!first.tokenize("hello", false, false).unwrap().is_empty());
    let held = cache.account().held();
    drop(first);
    assert!(cache.account().held() < held);
    assert!(cache.unload("chat"));
    assert!(!cache.unload("chat"));
    assert!(cache.get("chat").is_none());
    drop(second);
    assert_eq!(cache.account().held(), 0);
    assert!(cache.load("", None, &p).is_err());
}

#[test]
fn the_cache_is_shared_by_threads() {
    let cache = Arc::new(ModelCache::new(MemoryPolicy::default()).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                let id = format!("m{}", i % 2);
                let m = cache
                    .load(&id, Some(&tiny()), &ModelParams::default())
                    .unwrap();
                let mut s = Session::new(
                    m,
                    &SessionParams {
                        threads: 1,
                        ..Default::default()
                    },
                )
                .unwrap();
                s.generate(
                    "Hello",
                    &GenerateParams {
                        max_tokens: 4,
                        sampling: SamplingParams::greedy(),
                        ..Default::default()
                    },
                    |_| true,
                )
                .unwrap()
                .generated_ids
            })
        })
        .collect();
    let outs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(outs.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(cache.ids().len(), 2);
}

/// A private copy of the default model (so that its page-cache pages are this test's alone),
/// on disk, synced.
fn private_copy(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let dst = dir.join("model.gguf");
    std::fs::copy(testing::default_model(), &dst).unwrap();
    std::fs::File::open(&dst).unwrap().sync_all().unwrap();
    dst
}

fn resident_fraction(m: &Model) -> f64 {
    let (r, t) = m.file().residency().unwrap();
    r as f64 / t as f64
}

fn cold(path: &Path) {
    GgufFile::evict_page_cache(path).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn each_preload_strategy_changes_residency() {
    let path = private_copy("preload");
    let load = |preload| {
        cold(&path);
        Model::load(
            Some(&path),
            &ModelParams {
                preload,
                repack: false,
                ..Default::default()
            },
        )
        .unwrap()
    };
    // Cold, lazily: only the header and the few small tensors the load converts are read.
    let m = load(Preload::Lazy);
    let lazy = resident_fraction(&m);
    assert!(lazy < 0.25, "lazy load left {lazy:.2} resident");
    drop(m);

    // Critical: the header and the first quarter of the layers, all of them.
    let m = load(Preload::Critical);
    let n = m.hparams().n_layer.div_ceil(4);
    for t in m.file().tensors() {
        if t.name.starts_with("blk.0.") || t.name.starts_with(&format!("blk.{}.", n - 1)) {
            let (r, all) = m
                .file()
                .residency_of(t.offset as usize, t.size as usize)
                .unwrap();
            assert_eq!(r, all, "{} not resident", t.name);
        }
    }
    let critical = resident_fraction(&m);
    assert!(
        critical > lazy && critical < 0.75,
        "critical {critical:.2} lazy {lazy:.2}"
    );
    drop(m);

    // Full: a background thread reads everything after the load returned.
    let m = load(Preload::Full);
    m.wait_preloaded();
    let p = m.preload_progress();
    assert!(p.finished && p.done_bytes == p.total_bytes, "{p:?}");
    assert!(resident_fraction(&m) > 0.99);
    drop(m);

    // Full, blocking: everything is in before the load returns.
    let m = load(Preload::FullBlocking);
    assert!(resident_fraction(&m) > 0.99);
    drop(m);

    // Sequential: the kernel reads ahead, into the page cache; the load does not wait.
    let m = load(Preload::Sequential);
    m.wait_preloaded();
    let start = Instant::now();
    while resident_fraction(&m) < 0.99 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        resident_fraction(&m) > 0.99,
        "read-ahead stopped at {:.2}",
        resident_fraction(&m)
    );
    // ... without making the pages the process's own (its RSS does not grow by the file).
    let rss = woolly_core::platform::process::rss_bytes().unwrap();
    assert!(m.memory_report()["process_rss_bytes"].as_u64().unwrap() <= rss + 64 * MIB);
    drop(m);
    std::fs::remove_file(&path).unwrap();
}

/// Drops CAP_IPC_LOCK from this thread's effective capabilities (Linux capabilities are per
/// thread), so that RLIMIT_MEMLOCK applies to it even as root.
#[cfg(target_os = "linux")]
fn drop_ipc_lock_on_this_thread() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const V3: u32 = 0x2008_0522;
    const CAP_IPC_LOCK: u32 = 14;
    let mut h = Header {
        version: V3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data structs, as the ABI requires.
    unsafe {
        assert_eq!(libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()), 0);
        d[0].effective &= !(1 << CAP_IPC_LOCK);
        assert_eq!(libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()), 0);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_refused_mlock_degrades_to_a_warning() {
    let warnings = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = warnings.clone();
    woolly_core::log::set_callback(Some(Arc::new(move |level, msg: &str| {
        if level == woolly_core::log::Level::Warn && msg.contains("unlocked") {
            sink.lock().unwrap().push(msg.to_string());
        }
    })));
    let path = testing::tiny_model("tiny-llama-bpe-q4_0.gguf");
    let m = std::thread::spawn(move || {
        drop_ipc_lock_on_this_thread();
        // A 64 KiB limit for this process while the load runs (nothing else here locks).
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain getrlimit/setrlimit on valid structs.
        unsafe {
            libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut old);
            let low = libc::rlimit {
                rlim_cur: 64 << 10,
                rlim_max: old.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &low);
        }
        let m = Model::load(
            Some(&path),
            &ModelParams {
                mlock: true,
                ..Default::default()
            },
        );
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &old) };
        m
    })
    .join()
    .unwrap()
    .expect("a refused mlock must not fail the load");
    woolly_core::log::set_callback(None);
    assert!(!m.is_locked());
    assert_eq!(m.memory_report()["locked"], false);
    let w = warnings.lock().unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("memlock"), "{}", w[0]);
}

#[cfg(target_os = "linux")]
#[test]
fn reported_rss_agrees_with_proc() {
    let statm = || {
        let s = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * woolly_core::platform::memory::page_size()
    };
    let before = statm();
    let ours = woolly_core::platform::process::rss_bytes().unwrap();
    let after = statm();
    let (lo, hi) = (before.min(after), before.max(after));
    // Other tests run in this process at the same time: allow for their growth.
    assert!(
        ours + 64 * MIB >= lo && ours <= hi + 64 * MIB,
        "{ours} vs {lo}..{hi}"
    );
    let report = woolly_core::policy::memory::report(&MemoryPolicy::default());
    assert!(report["process_rss_bytes"].as_u64().unwrap() > 0);
    let info = MemoryInfo::detect();
    assert_eq!(report["total_bytes"], info.total_bytes);
}
