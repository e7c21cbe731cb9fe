//! The boundary helpers every export goes through: the panic boundary ([`guard`]), the thread's
//! last error, NULL checks of arguments, out-pointer writers, handle boxes, string and array
//! conversions, and enum values checked as they arrive from C.
//!
//! An export checks its arguments with these helpers rather than writing its own NULL prelude,
//! so that every such failure reads the same (`"{name} is NULL"`, `WOOLLY_ERR_NULL_ARGUMENT`).

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use woolly_core::{Error, ErrorKind};

use crate::status::woolly_status;
use crate::status::woolly_status::*;

// ---------------------------------------------------------------------------------------------
// Failures and the panic boundary

/// A failure on its way out: a status and a message for `woolly_last_error`.
pub(crate) struct Failure(pub(crate) woolly_status, pub(crate) String);

/// The C status of an error kind.
pub(crate) fn status_of(kind: ErrorKind) -> woolly_status {
    match kind {
        ErrorKind::InvalidArgument => WOOLLY_ERR_INVALID_ARGUMENT,
        ErrorKind::Io => WOOLLY_ERR_IO,
        ErrorKind::InvalidModel => WOOLLY_ERR_INVALID_MODEL,
        ErrorKind::Unsupported => WOOLLY_ERR_UNSUPPORTED,
        ErrorKind::ModelNotFound => WOOLLY_ERR_MODEL_NOT_FOUND,
        ErrorKind::Tokenizer => WOOLLY_ERR_TOKENIZER,
        ErrorKind::ContextOverflow => WOOLLY_ERR_CONTEXT_OVERFLOW,
        ErrorKind::Cancelled => WOOLLY_ERR_CANCELLED,
        ErrorKind::Internal => WOOLLY_ERR_INTERNAL,
        ErrorKind::PermissionDenied => WOOLLY_ERR_PERMISSION_DENIED,
        ErrorKind::InsufficientMemory => WOOLLY_ERR_INSUFFICIENT_MEMORY,
        ErrorKind::Busy => WOOLLY_ERR_BUSY,
        ErrorKind::DeadlineExceeded => WOOLLY_ERR_DEADLINE_EXCEEDED,
        ErrorKind::OutOfDeviceMemory => WOOLLY_ERR_OUT_OF_DEVICE_MEMORY,
        ErrorKind::Device => WOOLLY_ERR_DEVICE,
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        if let Some(d) = e.details() {
            let get = |k: &str| d[k].as_u64().unwrap_or(0);
            PENDING_MEMORY.with(|m| m.set(Some((get("required"), get("available")))));
        }
        Failure(status_of(e.kind()), e.to_string())
    }
}

pub(crate) fn fail<T>(status: woolly_status, msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure(status, msg.into()))
}

thread_local! {
    pub(crate) static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    /// The figures of an InsufficientMemory error on its way out, then of the last failure.
    static PENDING_MEMORY: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
    pub(crate) static LAST_MEMORY: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

/// A message as a C string, its NUL bytes written as `\0`.
pub(crate) fn message_cstring(msg: &str) -> CString {
    CString::new(msg.replace('\0', "\\0")).unwrap_or_default()
}

fn set_last_error(msg: &str) {
    let c = message_cstring(msg);
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
    LAST_MEMORY.with(|l| l.set(PENDING_MEMORY.with(|p| p.take())));
}

/// The panic boundary. Runs `f` at the boundary: its error becomes a status and the thread's
/// last error message, and a panic becomes `WOOLLY_ERR_INTERNAL`.
/// The panic's message goes to the log callback, never to stderr (see `woolly_core::panics`).
pub(crate) fn guard(f: impl FnOnce() -> Result<(), Failure>) -> woolly_status {
    match woolly_core::panics::scope(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(())) => {
            PENDING_MEMORY.with(|p| p.set(None));
            WOOLLY_OK
        }
        Ok(Err(Failure(status, msg))) => {
            set_last_error(&msg);
            status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (a bug in Woolly): {what}"));
            WOOLLY_ERR_INTERNAL
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pointer arguments

/// A required pointer argument.
pub(crate) fn required<'a, T>(p: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller passes a pointer to a live object or NULL (documented per function).
    unsafe { p.as_ref() }.map_or_else(
        || fail(WOOLLY_ERR_NULL_ARGUMENT, format!("{name} is NULL")),
        Ok,
    )
}

/// An optional pointer argument (NULL is `None`).
pub(crate) fn optional<'a, T>(p: *const T) -> Option<&'a T> {
    // SAFETY: the caller passes a pointer to a live object or NULL (documented per function).
    unsafe { p.as_ref() }
}

/// A required out-pointer: where the export writes its result.
pub(crate) fn required_out<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: the caller passes writable storage or NULL (documented per function).
    unsafe { p.as_mut() }.map_or_else(
        || fail(WOOLLY_ERR_NULL_ARGUMENT, format!("{name} is NULL")),
        Ok,
    )
}

/// Writes `value` to an optional out-pointer (nothing for NULL).
pub(crate) fn write_optional<T>(p: *mut T, value: T) {
    // SAFETY: the caller passes writable storage or NULL (documented per function).
    if let Some(p) = unsafe { p.as_mut() } {
        *p = value;
    }
}

/// `n` elements at `p` (empty for 0 whatever `p` is); `null_message` when `p` is NULL, and
/// `"{n} {what} is absurd"` when `n` is above `max`.
pub(crate) fn required_array<'a, T>(
    p: *const T,
    n: usize,
    null_message: &str,
    max: usize,
    what: &str,
) -> Result<&'a [T], Failure> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return fail(WOOLLY_ERR_NULL_ARGUMENT, null_message);
    }
    if n > max {
        return fail(WOOLLY_ERR_INVALID_ARGUMENT, format!("{n} {what} is absurd"));
    }
    // SAFETY: the caller passes `n` readable elements at `p` (documented per function).
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// `n` writable elements at `p` (empty for 0 whatever `p` is); `"{name} is NULL"` when `p` is
/// NULL. The caller has checked that the host's capacity holds `n`.
pub(crate) fn required_out_array<'a, T>(
    p: *mut T,
    n: usize,
    name: &str,
) -> Result<&'a mut [T], Failure> {
    if n == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return fail(WOOLLY_ERR_NULL_ARGUMENT, format!("{name} is NULL"));
    }
    // SAFETY: the caller passes storage for `capacity >= n` elements (documented per function).
    Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
}

// ---------------------------------------------------------------------------------------------
// Handles

/// A required handle out-pointer, set to NULL at once so that it holds NULL on every failure.
pub(crate) fn clear_out_handle<T>(out: *mut *mut T, name: &str) -> Result<(), Failure> {
    *required_out(out, name)? = std::ptr::null_mut();
    Ok(())
}

/// Stores a new handle owning `value` in `*out` (checked non-NULL by [`clear_out_handle`]).
pub(crate) fn put_handle<T>(out: *mut *mut T, value: T) {
    // SAFETY: the caller checked `out` is non-NULL; the caller of the export provides writable
    // storage. The handle is released by the matching `*_free`, through `free_handle`.
    unsafe { *out = Box::into_raw(Box::new(value)) };
}

/// Releases a handle made by [`put_handle`] (NULL is allowed), inside the panic boundary.
///
/// # Safety
/// `p` is NULL or a handle from `put_handle` of the same type, not freed before.
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    let _ = guard(|| {
        if !p.is_null() {
            // SAFETY: the handle came from Box::into_raw and is freed once (the caller's promise).
            drop(unsafe { Box::from_raw(p) });
        }
        Ok(())
    });
}

/// A host's `user_data`, passed back untouched to its callbacks.
pub(crate) struct UserData(pub(crate) *mut c_void);
// SAFETY: the host promises (in the header) that its user_data may be used from any thread.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

impl UserData {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    pub(crate) fn get(&self) -> *mut c_void {
        self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Strings

/// A required NUL-terminated UTF-8 string argument.
pub(crate) fn required_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return fail(WOOLLY_ERR_NULL_ARGUMENT, format!("{name} is NULL"));
    }
    // SAFETY: the caller passes a NUL-terminated string (documented per function).
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        Failure(
            WOOLLY_ERR_INVALID_UTF8,
            format!("{name} is not valid UTF-8: {e}"),
        )
    })
}

/// An optional NUL-terminated UTF-8 string argument (NULL is `None`).
pub(crate) fn optional_str<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        return Ok(None);
    }
    required_str(p, name).map(Some)
}

/// An optional path argument named `path` (NULL is `None`: the default model).
pub(crate) fn optional_path(path: *const c_char) -> Result<Option<PathBuf>, Failure> {
    Ok(optional_str(path, "path")?.map(PathBuf::from))
}

/// Writes `text` and a NUL to `buf` (`capacity` bytes) and its length to `*len`; when it does
/// not fit, writes only the length and fails with `WOOLLY_ERR_BUFFER_TOO_SMALL`.
pub(crate) fn write_string(
    text: &str,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> Result<(), Failure> {
    *required_out(len, "len")? = text.len();
    if text.len() >= capacity {
        return fail(
            WOOLLY_ERR_BUFFER_TOO_SMALL,
            format!(
                "{} bytes and a NUL do not fit in a capacity of {capacity}",
                text.len()
            ),
        );
    }
    // `buf` holds `capacity > text.len()` writable bytes.
    let out = required_out_array(buf as *mut u8, text.len() + 1, "buf")?;
    out[..text.len()].copy_from_slice(text.as_bytes());
    out[text.len()] = 0;
    Ok(())
}

/// The pointer to hand C for `text` with its length: the text's own bytes, or a static,
/// NUL-terminated "" for empty text (an empty Rust string's pointer is dangling, not NULL and not
/// readable).
pub(crate) fn text_ptr(text: &str) -> *const c_char {
    if text.is_empty() {
        c"".as_ptr()
    } else {
        text.as_ptr() as *const c_char
    }
}

// ---------------------------------------------------------------------------------------------
// Enums from C

/// The integer a C caller stored in an enum-typed argument or field (C lets any `int` through).
pub(crate) fn raw_enum<T: Copy>(v: &T) -> u32 {
    debug_assert_eq!(std::mem::size_of::<T>(), 4);
    // SAFETY: the `#[repr(C)]` enums of this API are C `int`-sized; their bytes are read as an
    // integer before Rust looks at them as an enum.
    unsafe { std::ptr::read_unaligned(v as *const T as *const u32) }
}

/// Checks an enum value that arrived from C (any integer can arrive where an enum is declared).
pub(crate) fn check_enum<T: Copy>(v: &T, max: u32, name: &str) -> Result<(), Failure> {
    let value = raw_enum(v);
    if value > max {
        return fail(
            WOOLLY_ERR_INVALID_ARGUMENT,
            format!("{name} = {value} is not a valid value (0 to {max})"),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body of [`a_caught_panic_writes_nothing_to_stderr`], run in a child process whose
    /// stderr the parent reads: a panic inside the guard on the calling thread, and one on a
    /// worker thread of a real pool re-raised through the guard.
    #[test]
    fn panic_child() {
        if std::env::var_os("WOOLLY_PANIC_CHILD").is_none() {
            return;
        }
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = seen.clone();
        woolly_core::log::set_callback(Some(std::sync::Arc::new(move |_, m: &str| {
            sink.lock().unwrap().push(m.to_string())
        })));
        let status = guard(|| panic!("boom on the caller"));
        assert_eq!(status, WOOLLY_ERR_INTERNAL);
        let pool = woolly_core::kernels::cpu::ThreadPool::new(2).unwrap();
        let status = guard(|| {
            pool.broadcast(&|i| {
                if i == 1 {
                    panic!("boom on a worker");
                }
            });
            Ok(())
        });
        assert_eq!(status, WOOLLY_ERR_INTERNAL);
        let seen = seen.lock().unwrap();
        for what in ["boom on the caller", "boom on a worker"] {
            assert!(seen.iter().any(|m| m.contains(what)), "{what}: {seen:?}");
        }
        // Panics elsewhere still reach the previous hook (the default one prints).
        let t = std::thread::Builder::new()
            .name("host-thread".into())
            .spawn(|| panic!("the host's own panic"))
            .unwrap();
        assert!(t.join().is_err());
    }

    #[test]
    fn a_caught_panic_writes_nothing_to_stderr() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "boundary::tests::panic_child",
                "--test-threads=1",
                "--nocapture",
            ])
            .env("WOOLLY_PANIC_CHILD", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "{stdout}");
        assert!(
            !stderr.contains("boom"),
            "Woolly's panics reached stderr: {stderr}"
        );
        assert!(
            stderr.contains("the host's own panic"),
            "the host's panics must still reach its hook: {stderr}"
        );
    }
}
