//! Statuses and versions: `woolly_status` and the library and ABI versions (the thread's last
//! error and the statuses' names are in `errors.rs`, beside the boundary that sets them).

use std::ffi::c_char;

/// Major version of this library.
pub const WOOLLY_VERSION_MAJOR: u32 = 0;
/// Minor version of this library.
pub const WOOLLY_VERSION_MINOR: u32 = 1;
/// Patch version of this library.
pub const WOOLLY_VERSION_PATCH: u32 = 0;
/// Version of the C ABI: raised only when a change breaks binaries built against an older
/// header (never within a major version).
pub const WOOLLY_ABI_VERSION: u32 = 5;
/// `woolly_generate_params.seed` value that asks for a fresh random seed.
pub const WOOLLY_SEED_RANDOM: u64 = u64::MAX;

/// Result of every fallible function. The numbers are part of the ABI: they never change and are
/// never reused; new codes are only added.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_status {
    /// Success.
    WOOLLY_OK = 0,
    /// An argument is out of range or malformed.
    WOOLLY_ERR_INVALID_ARGUMENT = 1,
    /// A required pointer argument is NULL.
    WOOLLY_ERR_NULL_ARGUMENT = 2,
    /// A file could not be read.
    WOOLLY_ERR_IO = 3,
    /// The file is not a valid GGUF model.
    WOOLLY_ERR_INVALID_MODEL = 4,
    /// The model uses something Woolly does not support.
    WOOLLY_ERR_UNSUPPORTED = 5,
    /// No path was given and the default model is not installed.
    WOOLLY_ERR_MODEL_NOT_FOUND = 6,
    /// Text could not be tokenized or tokens decoded.
    WOOLLY_ERR_TOKENIZER = 7,
    /// The prompt plus `max_tokens` does not fit in the context.
    WOOLLY_ERR_CONTEXT_OVERFLOW = 8,
    /// Cancelled: `woolly_abort`, or a progress callback returned false.
    WOOLLY_ERR_CANCELLED = 9,
    /// The output buffer is too small; the needed size was written to the count argument.
    WOOLLY_ERR_BUFFER_TOO_SMALL = 10,
    /// A string argument is not valid UTF-8.
    WOOLLY_ERR_INVALID_UTF8 = 11,
    /// The system refused an opt-in operation (such as a change of thread priority).
    WOOLLY_ERR_PERMISSION_DENIED = 12,
    /// What was asked for does not fit in the memory Woolly may use (the message gives the
    /// required and available figures).
    WOOLLY_ERR_INSUFFICIENT_MEMORY = 13,
    /// The request queue is full; try again later.
    WOOLLY_ERR_BUSY = 14,
    /// The request's deadline passed before it finished.
    WOOLLY_ERR_DEADLINE_EXCEEDED = 15,
    /// A GPU ran out of memory for what was asked (the message gives the required and free
    /// figures; a load offloads fewer layers instead of failing).
    WOOLLY_ERR_OUT_OF_DEVICE_MEMORY = 16,
    /// The GPU driver reported an error.
    WOOLLY_ERR_DEVICE = 17,
    /// A bug inside Woolly (a panic was caught at the boundary).
    WOOLLY_ERR_INTERNAL = 100,
}

/// The library version, e.g. `"0.1.0"`. Static storage: do not free.
#[no_mangle]
pub extern "C" fn woolly_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// The C ABI version ([`WOOLLY_ABI_VERSION`] of the library actually loaded).
#[no_mangle]
pub extern "C" fn woolly_abi_version() -> u32 {
    WOOLLY_ABI_VERSION
}
