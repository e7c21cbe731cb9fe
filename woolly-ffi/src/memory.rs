//! Memory through the C ABI: estimates before a load, memory reports, preload progress and
//! locking (the policy struct is in `memory_policy`, the model cache that evicts idle models in
//! `cache`).

use std::ffi::c_char;

use woolly_core::model::Model;

use crate::boundary::{
    guard, optional, optional_path, required, required_out, write_optional, write_string,
    LAST_MEMORY,
};
use crate::memory_policy::woolly_memory_policy;
use crate::model::{woolly_model, woolly_model_params};
use crate::status::woolly_status;

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
        let out = required_out(out, "out")?;
        let mp = params.core()?;
        let e = Model::estimate(optional_path(path)?.as_deref(), &mp)?;
        *out = woolly_memory_estimate {
            weights_bytes: e.weights_bytes,
            overhead_bytes: e.overhead_bytes,
            kv_cache_bytes: e.kv_cache_bytes,
            scratch_bytes: e.scratch_bytes,
            total_bytes: e.total_bytes,
            context_size: e.context_size as u32,
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
    write_optional(required, r);
    write_optional(available, a);
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
        write_optional(fraction, f);
        write_optional(finished, p.finished);
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
    optional(model).is_some_and(|m| m.model.is_locked())
}
