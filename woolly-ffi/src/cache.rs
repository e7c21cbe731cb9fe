//! The model cache through the C ABI: `woolly_cache`, models by id within one memory policy,
//! evicting idle models under its budget.

use std::ffi::c_char;

use woolly_core::model::ModelCache;

use crate::boundary::{
    clear_out_handle, free_handle, guard, optional_path, put_handle, required, required_str,
    write_optional, write_string,
};
use crate::memory_policy::woolly_memory_policy;
use crate::model::{woolly_model, woolly_model_default_params, woolly_model_params};
use crate::status::woolly_status;

/// Models by id within one memory policy (opaque). Thread-safe: any call from any thread.
/// When a load would exceed the budget, the least recently used model that no handle or
/// session holds (and that is not pinned) is evicted first; a model in use never is.
pub struct woolly_cache {
    cache: ModelCache,
}

/// Creates a cache whose models share `policy` into `*out_cache` (NULL on failure); release it
/// with [`woolly_cache_free`].
///
/// # Safety
/// `out_cache` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_cache_create(
    policy: woolly_memory_policy,
    out_cache: *mut *mut woolly_cache,
) -> woolly_status {
    guard(|| {
        clear_out_handle(out_cache, "out_cache")?;
        let cache = ModelCache::new(policy.core()?)?;
        put_handle(out_cache, woolly_cache { cache });
        Ok(())
    })
}

/// Releases a cache (NULL is allowed). Model handles taken from it stay valid until freed.
///
/// # Safety
/// `cache` NULL or a handle from [`woolly_cache_create`] not freed before.
#[no_mangle]
pub unsafe extern "C" fn woolly_cache_free(cache: *mut woolly_cache) {
    // SAFETY: the caller's promise, as documented.
    unsafe { free_handle(cache) }
}

/// The model `id`, loaded from `path` (NULL: the default model) when the cache does not hold
/// it (the same id from another path swaps the model), as a new handle in `*out_model` (NULL on
/// failure). The caller owns the handle and frees it with `woolly_model_free`; while it (or a
/// session on it) lives, the model counts as in use and is never evicted. `params.memory` is
/// ignored: the cache's policy applies. Fails with `WOOLLY_ERR_INSUFFICIENT_MEMORY` when the
/// model does not fit even after evicting every idle model.
///
/// # Safety
/// `cache` a live handle; `id` a NUL-terminated string; `path` NULL or one; `out_model`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_cache_load(
    cache: *const woolly_cache,
    id: *const c_char,
    path: *const c_char,
    params: woolly_model_params,
    out_model: *mut *mut woolly_model,
) -> woolly_status {
    guard(|| {
        clear_out_handle(out_model, "out_model")?;
        let c = required(cache, "cache")?;
        let id = required_str(id, "id")?;
        let mp = params.core()?;
        let model = c.cache.load(id, optional_path(path)?.as_deref(), &mp)?;
        put_handle(out_model, woolly_model::new(model, &params));
        Ok(())
    })
}

/// The model `id` as a new handle in `*out_model`, or NULL there when the cache does not hold
/// it (still `WOOLLY_OK`). Thread settings are automatic.
///
/// # Safety
/// `cache` a live handle; `id` a NUL-terminated string; `out_model` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_cache_get(
    cache: *const woolly_cache,
    id: *const c_char,
    out_model: *mut *mut woolly_model,
) -> woolly_status {
    guard(|| {
        clear_out_handle(out_model, "out_model")?;
        let c = required(cache, "cache")?;
        let id = required_str(id, "id")?;
        if let Some(model) = c.cache.get(id) {
            put_handle(
                out_model,
                woolly_model::new(model, &woolly_model_default_params()),
            );
        }
        Ok(())
    })
}

/// Removes `id` from the cache; `*was_loaded` (may be NULL) says whether it was there. Its
/// memory returns when the last handle and session on it are freed.
///
/// # Safety
/// `cache` a live handle; `id` a NUL-terminated string; `was_loaded` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_cache_unload(
    cache: *const woolly_cache,
    id: *const c_char,
    was_loaded: *mut bool,
) -> woolly_status {
    guard(|| {
        let c = required(cache, "cache")?;
        let gone = c.cache.unload(required_str(id, "id")?);
        write_optional(was_loaded, gone);
        Ok(())
    })
}

/// Keeps `id` from eviction (`pinned` true) or allows it again. `WOOLLY_ERR_INVALID_ARGUMENT`
/// when `id` is not loaded.
///
/// # Safety
/// `cache` a live handle; `id` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn woolly_cache_pin(
    cache: *const woolly_cache,
    id: *const c_char,
    pinned: bool,
) -> woolly_status {
    guard(|| {
        let c = required(cache, "cache")?;
        c.cache.pin(required_str(id, "id")?, pinned)?;
        Ok(())
    })
}

/// Evicts idle, unpinned models while the machine is under memory pressure; `*evicted` (may
/// be NULL) gets how many went.
///
/// # Safety
/// `cache` a live handle; `evicted` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_cache_relieve_pressure(
    cache: *const woolly_cache,
    evicted: *mut u32,
) -> woolly_status {
    guard(|| {
        let c = required(cache, "cache")?;
        let n = c.cache.relieve_pressure().len() as u32;
        write_optional(evicted, n);
        Ok(())
    })
}

/// The cache (each model's id, path, size, in use and pinned; evictions; held bytes,
/// headroom, budget, reserve, pressure) as JSON, written like `woolly_detokenize` writes text.
///
/// # Safety
/// `cache` a live handle; `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_cache_report_json(
    cache: *const woolly_cache,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        let c = required(cache, "cache")?;
        write_string(&c.cache.report().to_string(), buf, capacity, len)
    })
}
