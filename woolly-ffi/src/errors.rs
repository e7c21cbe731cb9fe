//! What a caller reads after a failure: the calling thread's last error message (set by the
//! panic boundary) and the name of each status.

use std::ffi::c_char;

use crate::boundary::{raw_enum, LAST_ERROR};
use crate::status::woolly_status;
use crate::status::woolly_status::*;

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
    let known = matches!(raw_enum(&status), 0..=17 | 100);
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
        WOOLLY_ERR_OUT_OF_DEVICE_MEMORY => "WOOLLY_ERR_OUT_OF_DEVICE_MEMORY\0",
        WOOLLY_ERR_DEVICE => "WOOLLY_ERR_DEVICE\0",
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
                ErrorKind::OutOfDeviceMemory => Error::OutOfDeviceMemory {
                    device: 0,
                    what: String::new(),
                    required: 2,
                    free: 1,
                },
                ErrorKind::Device => Error::Device {
                    device: 0,
                    message: String::new(),
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
