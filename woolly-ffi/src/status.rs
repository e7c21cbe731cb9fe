//! Statuses and versions: `woolly_status`, the thread's last error, the library and ABI
//! versions.

use std::ffi::c_char;

use crate::boundary::{raw_enum, LAST_ERROR};

/// Major version of this library.
pub const WOOLLY_VERSION_MAJOR: u32 = 0;
/// Minor version of this library.
pub const WOOLLY_VERSION_MINOR: u32 = 1;
/// Patch version of this library.
pub const WOOLLY_VERSION_PATCH: u32 = 0;
/// Version of the C ABI: raised only when a change breaks binaries built against an older
/// header (never within a major version).
pub const WOOLLY_ABI_VERSION: u32 = 3;
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
    /// A bug inside Woolly (a panic was caught at the boundary).
    WOOLLY_ERR_INTERNAL = 100,
}
use woolly_status::*;

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

/// The message of the calling thread's last failure ("" when none). The string belongs to the
/// library and stays valid until the next failing call on this thread.
#[no_mangle]
pub extern "C" fn woolly_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// A short name for `status` (static storage), e.g. `"WOOLLY_ERR_IO"`;
/// `"WOOLLY_STATUS_UNKNOWN"` for a number this library does not know.
#[no_mangle]
pub extern "C" fn woolly_status_name(status: woolly_status) -> *const c_char {
    let known = matches!(raw_enum(&status), 0..=15 | 100);
    if !known {
        return c"WOOLLY_STATUS_UNKNOWN".as_ptr();
    }
    let s: &'static str = match status {
        WOOLLY_OK => "WOOLLY_OK\0",
        WOOLLY_ERR_INVALID_ARGUMENT => "WOOLLY_ERR_INVALID_ARGUMENT\0",
        WOOLLY_ERR_NULL_ARGUMENT => "WOOLLY_ERR_NULL_ARGUMENT\0",
        WOOLLY_ERR_IO => "WOOLLY_ERR_IO\0",
        WOOLLY_ERR_INVALID_MODEL => "WOOLLY_ERR_INVALID_MODEL\0",
        WOOLLY_ERR_UNSUPPORTED => "WOOLLY_ERR_UNSUPPORTED\0",
        WOOLLY_ERR_MODEL_NOT_FOUND => "WOOLLY_ERR_MODEL_NOT_FOUND\0",
        WOOLLY_ERR_TOKENIZER => "WOOLLY_ERR_TOKENIZER\0",
        WOOLLY_ERR_CONTEXT_OVERFLOW => "WOOLLY_ERR_CONTEXT_OVERFLOW\0",
        WOOLLY_ERR_CANCELLED => "WOOLLY_ERR_CANCELLED\0",
        WOOLLY_ERR_BUFFER_TOO_SMALL => "WOOLLY_ERR_BUFFER_TOO_SMALL\0",
        WOOLLY_ERR_INVALID_UTF8 => "WOOLLY_ERR_INVALID_UTF8\0",
        WOOLLY_ERR_PERMISSION_DENIED => "WOOLLY_ERR_PERMISSION_DENIED\0",
        WOOLLY_ERR_INSUFFICIENT_MEMORY => "WOOLLY_ERR_INSUFFICIENT_MEMORY\0",
        WOOLLY_ERR_BUSY => "WOOLLY_ERR_BUSY\0",
        WOOLLY_ERR_DEADLINE_EXCEEDED => "WOOLLY_ERR_DEADLINE_EXCEEDED\0",
        WOOLLY_ERR_INTERNAL => "WOOLLY_ERR_INTERNAL\0",
    };
    s.as_ptr() as *const c_char
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use woolly_core::{Error, ErrorKind};

    use super::*;
    use crate::boundary::Failure;

    #[test]
    fn statuses_match_the_core_codes() {
        for kind in ErrorKind::ALL {
            let Failure(status, _) = Failure::from(match kind {
                ErrorKind::InvalidArgument => Error::InvalidArgument(String::new()),
                ErrorKind::Cancelled => Error::Cancelled,
                ErrorKind::Internal => Error::Internal(String::new()),
                ErrorKind::PermissionDenied => Error::PermissionDenied(String::new()),
                ErrorKind::Busy => Error::Busy(String::new()),
                ErrorKind::DeadlineExceeded => Error::DeadlineExceeded(String::new()),
                ErrorKind::InsufficientMemory => Error::InsufficientMemory {
                    what: String::new(),
                    required: 2,
                    available: 1,
                    budgeted: false,
                },
                _ => continue,
            });
            assert_eq!(status as u32, kind.status());
            // SAFETY: the name is a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(woolly_status_name(status)) };
            assert_eq!(name.to_str().unwrap(), kind.code());
        }
        // Every kind's number is a known status with the same name.
        for kind in ErrorKind::ALL {
            let status: woolly_status =
                // SAFETY: `kind.status()` is one of the enum's discriminants (checked by name).
                unsafe { std::mem::transmute::<u32, woolly_status>(kind.status()) };
            // SAFETY: as above.
            let name = unsafe { CStr::from_ptr(woolly_status_name(status)) };
            assert_eq!(name.to_str().unwrap(), kind.code());
        }
    }
}
