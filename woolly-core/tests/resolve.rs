//! Model resolution: explicit path, then WOOLLY_MODEL, then the cache. One test function, because
//! it changes the process environment.

use std::path::Path;

use woolly_core::model::{default_model_path, resolve_model_path, MODEL_ENV};
use woolly_core::ErrorKind;

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

    std::fs::remove_dir_all(&dir).unwrap();
}
