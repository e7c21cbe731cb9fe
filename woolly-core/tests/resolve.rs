//! Model resolution: explicit path, then WOOLLY_MODEL, then the cache. One test function, because
//! it changes the process environment.

use std::path::Path;

use woolly_core::gguf::GgufFile;
use woolly_core::model::{default_model_path, resolve_model_path, Model, ModelParams, MODEL_ENV};
use woolly_core::{ErrorKind, Result};

/// Runs `f` on a thread and fails the test (instead of hanging) when it has not returned within a
/// generous watchdog.
fn watchdog<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what} hung"))
}

fn mkfifo(p: &Path) {
    let _ = std::fs::remove_file(p);
    let st = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Loading, estimating and opening `p` (or, with `None`, the resolved model) all fail promptly
/// with an `Io` error that names `p` and says it is a FIFO.
fn refused_as_fifo(explicit: Option<&Path>, p: &Path) {
    let e1 = explicit.map(Path::to_path_buf);
    let e2 = e1.clone();
    let results: Vec<Result<()>> = vec![
        watchdog("resolve", {
            let e = e1.clone();
            move || resolve_model_path(e.as_deref()).map(drop)
        }),
        watchdog("load", move || {
            Model::load(e1.as_deref(), &ModelParams::default()).map(drop)
        }),
        watchdog("estimate", move || {
            Model::estimate(e2.as_deref(), &ModelParams::default()).map(drop)
        }),
        watchdog("open", {
            let p = p.to_path_buf();
            move || GgufFile::open(&p).map(drop)
        }),
    ];
    for r in results {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("FIFO") && msg.contains(&*p.to_string_lossy()),
            "{msg}"
        );
    }
}

#[test]
fn resolution_order_and_errors() {
    let dir = std::env::temp_dir().join(format!("woolly-resolve-{}", std::process::id()));
    let cache = dir.join("cache");
    std::fs::create_dir_all(cache.join("woolly/models")).unwrap();
    let explicit = dir.join("explicit.gguf");
    std::fs::write(&explicit, b"x").unwrap();
    let from_env = dir.join("env.gguf");
    std::fs::write(&from_env, b"x").unwrap();

    // SAFETY (edition 2021: set_var is safe): this test binary has a single test.
    std::env::set_var("XDG_CACHE_HOME", &cache);
    std::env::remove_var(MODEL_ENV);
    let cached = default_model_path().unwrap();
    assert_eq!(cached, cache.join("woolly/models/gemma-3-270m-q4_k_m.gguf"));

    // Nothing installed: the error says where it looked and how to get the model.
    let e = resolve_model_path(None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ModelNotFound);
    let msg = e.to_string();
    assert!(
        msg.contains("make model") && msg.contains(&*cached.to_string_lossy()),
        "{msg}"
    );

    // The cache is used once the model is there.
    std::fs::write(&cached, b"x").unwrap();
    assert_eq!(resolve_model_path(None).unwrap(), cached);

    // WOOLLY_MODEL wins over the cache; a missing file it names is an error, not a fallback.
    std::env::set_var(MODEL_ENV, &from_env);
    assert_eq!(resolve_model_path(None).unwrap(), from_env);
    std::env::set_var(MODEL_ENV, dir.join("nope.gguf"));
    let e = resolve_model_path(None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains(MODEL_ENV));

    // An explicit path wins over everything and must exist.
    assert_eq!(resolve_model_path(Some(&explicit)).unwrap(), explicit);
    let e = resolve_model_path(Some(Path::new("/no/such/model.gguf"))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains("/no/such/model.gguf"));

    // Something that is not a regular file is refused before it is opened (opening a FIFO for
    // reading blocks until a writer appears): as an explicit path, through WOOLLY_MODEL and in
    // the cache.
    let fifo = dir.join("fifo.gguf");
    mkfifo(&fifo);
    refused_as_fifo(Some(&fifo), &fifo);
    std::env::set_var(MODEL_ENV, &fifo);
    refused_as_fifo(None, &fifo);
    std::env::remove_var(MODEL_ENV);
    mkfifo(&cached);
    refused_as_fifo(None, &cached);
    let e = resolve_model_path(Some(&dir)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e.to_string().contains("directory"), "{e}");
    std::fs::remove_file(&cached).unwrap();

    // With neither XDG_CACHE_HOME nor HOME set, the error still says where Woolly looked.
    let home = std::env::var_os("HOME");
    std::env::remove_var("XDG_CACHE_HOME");
    std::env::remove_var("HOME");
    let e = resolve_model_path(None).unwrap_err();
    if let Some(h) = home {
        std::env::set_var("HOME", h);
    }
    assert_eq!(e.kind(), ErrorKind::ModelNotFound);
    let msg = e.to_string();
    for part in [
        MODEL_ENV,
        "XDG_CACHE_HOME",
        "HOME",
        "woolly/models",
        "make model",
    ] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }

    std::fs::remove_dir_all(&dir).unwrap();
}
