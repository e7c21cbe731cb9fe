//! Diagnostics: the hardware Woolly detected, the diagnostics report, and the doctor.

use std::ffi::c_char;

use crate::boundary::{guard, optional, optional_path, required_out, write_string};
use crate::model::woolly_model;
use crate::status::woolly_status;

/// This machine's hardware as Woolly detected it (cores, caches, SIMD, memory), as JSON, written
/// like [`woolly_detokenize`] writes text (`capacity` 0 with `buf` NULL asks for the size).
///
/// # Safety
/// `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_hardware_json(
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        write_string(
            &woolly_core::platform::Hardware::detect()
                .to_json()
                .to_string(),
            buf,
            capacity,
            len,
        )
    })
}

/// The CUDA devices as the driver reports them now, as JSON, written like
/// [`woolly_detokenize`] writes text (`capacity` 0 with `buf` NULL asks for the size): an
/// object with `available`, `reason` (why there is no device: a build without CUDA, no driver,
/// no device, a driver error; null when there are devices), `driver_version` (e.g. `"12.4"`)
/// and `devices`, each with `index`, `name`, `total_bytes`, `free_bytes`,
/// `compute_capability` (e.g. `"9.0"`), `sm_count`, `max_threads_per_block` and `warp_size`.
/// The caller owns `buf`; free memory is read anew on each call, so leave some room between a
/// size query and the call after it. (Added in ABI 4.)
///
/// # Safety
/// `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_cuda_devices_json(
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        write_string(
            &woolly_core::platform::cuda::report().to_json().to_string(),
            buf,
            capacity,
            len,
        )
    })
}

/// The diagnostics report as JSON: version, build, hardware, the kernels and thread counts
/// Woolly chose, this process's memory, and with a `model` (may be NULL) that model's facts and
/// counters. Written like [`woolly_detokenize`] writes text. The report is made anew on each
/// call, so a size query and the call after it may differ slightly: leave some room.
///
/// # Safety
/// `model` NULL or a live handle; `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_diagnostics_json(
    model: *const woolly_model,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        let m = optional(model).map(|m| &*m.model);
        write_string(
            &woolly_core::diagnostics::report(m).to_string(),
            buf,
            capacity,
            len,
        )
    })
}

/// The doctor's report as JSON (keys `cpu`, `memory`, `gpu`, `inference`, `recommendations`):
/// the machine and, with `measure`, generation speed at batch sizes 1 to 16 on the model at
/// `path` (NULL: the default model; about 10 s on two cores) with recommendations from those
/// figures. Written like `woolly_detokenize` writes text; blocks while it measures.
///
/// # Safety
/// `path` NULL or a NUL-terminated string; `buf` NULL or writable for `capacity` bytes; `len`
/// writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_doctor_json(
    path: *const c_char,
    measure: bool,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        // Checked before the path, which may take a measurement of seconds.
        required_out(len, "len")?;
        let model = optional_path(path)?;
        let opts = woolly_core::diagnostics::DoctorOptions {
            model,
            measure,
            ..Default::default()
        };
        let v = woolly_core::diagnostics::doctor_with(&opts, &mut |_, _| {});
        write_string(&v.to_string(), buf, capacity, len)
    })
}
