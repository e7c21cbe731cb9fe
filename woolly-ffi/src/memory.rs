//! Memory through the C ABI: estimates before a load, memory reports, preload progress, and a
//! model cache that evicts idle models under a budget.

use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::OnceLock;

use woolly_core::model::{Model, ModelCache};

use super::woolly_status::*;
use super::{
    fail, guard, put_handle, required, required_str, woolly_memory_policy, woolly_model,
    woolly_model_params, woolly_status, write_string, Failure, LAST_MEMORY,
};

/// What a model needs in memory, estimated from its file's header (see [`woolly_model_estimate`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct woolly_memory_estimate {
    /// Tensor data the forward pass reads.
    pub weights_bytes: u64,
    /// Tokenizer tables and other per-model structures.
    pub overhead_bytes: u64,
    /// One session's KV cache at `context_size`.
    pub kv_cache_bytes: u64,
    /// One session's activations.
    pub scratch_bytes: u64,
    /// The sum of the above: what the load checks against the budget.
    pub total_bytes: u64,
    pub context_size: u32,
}

fn optional_path(path: *const c_char) -> Result<Option<PathBuf>, Failure> {
    Ok(if path.is_null() {
        None
    } else {
        Some(PathBuf::from(required_str(path, "path")?))
    })
}

/// Estimates what loading `path` (NULL: the default model) with `params` takes, from the
/// file's header alone, into `*out`.
///
/// # Safety
/// `path` NULL or a NUL-terminated string; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_estimate(
    path: *const c_char,
    params: woolly_model_params,
    out: *mut woolly_memory_estimate,
) -> woolly_status {
    guard(|| {
        if out.is_null() {
            return fail(WOOLLY_ERR_NULL_ARGUMENT, "out is NULL");
        }
        let mp = params.core()?;
        let e = Model::estimate(optional_path(path)?.as_deref(), &mp)?;
        // SAFETY: checked non-NULL above.
        unsafe {
            *out = woolly_memory_estimate {
                weights_bytes: e.weights_bytes,
                overhead_bytes: e.overhead_bytes,
                kv_cache_bytes: e.kv_cache_bytes,
                scratch_bytes: e.scratch_bytes,
                total_bytes: e.total_bytes,
                context_size: e.context_size as u32,
            }
        };
        Ok(())
    })
}

/// The figures of the calling thread's last failure when it was
/// `WOOLLY_ERR_INSUFFICIENT_MEMORY`: bytes required and bytes Woolly could use. Returns false
/// (and leaves the outputs alone) when the last failure was another one.
///
/// # Safety
/// `required` and `available` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_last_error_memory(required: *mut u64, available: *mut u64) -> bool {
    let Some((r, a)) = LAST_MEMORY.with(|l| l.get()) else {
        return false;
    };
    // SAFETY: each pointer is NULL or writable (the caller's promise).
    unsafe {
        if let Some(p) = required.as_mut() {
            *p = r;
        }
        if let Some(p) = available.as_mut() {
            *p = a;
        }
    }
    true
}

/// The machine's memory as Woolly sees it under `policy` (total, available, reserve,
/// pressure, budget, headroom, page sizes, this process's RSS and peak RSS) as JSON, written
/// like `woolly_detokenize` writes text.
///
/// # Safety
/// `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_memory_report_json(
    policy: woolly_memory_policy,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        let p = policy.core()?;
        write_string(
            &woolly_core::policy::memory::report(&p).to_string(),
            buf,
            capacity,
            len,
        )
    })
}

/// The model's memory (its estimate, what it and its sessions are charged, headroom, the
/// file's resident bytes, lock and preload state, RSS) as JSON, written like
/// `woolly_detokenize` writes text.
///
/// # Safety
/// `model` a live handle; `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_memory_json(
    model: *const woolly_model,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        let m = required(model, "model")?;
        write_string(&m.model.memory_report().to_string(), buf, capacity, len)
    })
}

/// How far a background preload (`WOOLLY_PRELOAD_SEQUENTIAL`, `_FULL_BACKGROUND`) got: the
/// fraction of the file read (1 for the other strategies) and whether it finished.
///
/// # Safety
/// `model` a live handle; `fraction` and `finished` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_preload_progress(
    model: *const woolly_model,
    fraction: *mut f32,
    finished: *mut bool,
) -> woolly_status {
    guard(|| {
        let m = required(model, "model")?;
        let p = m.model.preload_progress();
        let f = if p.finished || p.total_bytes == 0 {
            1.0
        } else {
            p.done_bytes as f32 / p.total_bytes as f32
        };
        // SAFETY: each pointer is NULL or writable (the caller's promise).
        unsafe {
            if let Some(x) = fraction.as_mut() {
                *x = f;
            }
            if let Some(x) = finished.as_mut() {
                *x = p.finished;
            }
        }
        Ok(())
    })
}

/// Whether the model's memory is locked (`use_mlock` was asked for and the system allowed it).
/// False for NULL.
///
/// # Safety
/// `model` NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_is_locked(model: *const woolly_model) -> bool {
    // SAFETY: NULL or a live handle (the caller's promise).
    unsafe { model.as_ref() }.is_some_and(|m| m.model.is_locked())
}

// ---------------------------------------------------------------------------------------------
// Model cache

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
        if out_cache.is_null() {
            return fail(WOOLLY_ERR_NULL_ARGUMENT, "out_cache is NULL");
        }
        // SAFETY: checked non-NULL above.
        unsafe { *out_cache = std::ptr::null_mut() };
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
    unsafe { super::free_handle(cache) }
}

fn model_handle(model: std::sync::Arc<Model>, params: &woolly_model_params) -> woolly_model {
    woolly_model {
        model,
        threads: params.threads(),
        generate_pool: OnceLock::new(),
    }
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
        if out_model.is_null() {
            return fail(WOOLLY_ERR_NULL_ARGUMENT, "out_model is NULL");
        }
        // SAFETY: checked non-NULL above.
        unsafe { *out_model = std::ptr::null_mut() };
        let c = required(cache, "cache")?;
        let id = required_str(id, "id")?;
        let mp = params.core()?;
        let model = c.cache.load(id, optional_path(path)?.as_deref(), &mp)?;
        put_handle(out_model, model_handle(model, &params));
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
        if out_model.is_null() {
            return fail(WOOLLY_ERR_NULL_ARGUMENT, "out_model is NULL");
        }
        // SAFETY: checked non-NULL above.
        unsafe { *out_model = std::ptr::null_mut() };
        let c = required(cache, "cache")?;
        let id = required_str(id, "id")?;
        if let Some(model) = c.cache.get(id) {
            put_handle(
                out_model,
                model_handle(model, &super::woolly_model_default_params()),
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
        // SAFETY: NULL or writable (the caller's promise).
        if let Some(p) = unsafe { was_loaded.as_mut() } {
            *p = gone;
        }
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
        // SAFETY: NULL or writable (the caller's promise).
        if let Some(p) = unsafe { evicted.as_mut() } {
            *p = n;
        }
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
