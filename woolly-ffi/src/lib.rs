//! Woolly's C ABI (`libwoolly.so`, `libwoolly.a`, `include/woolly.h`).
//!
//! Conventions, as in the header:
//! - Every fallible function returns a [`woolly_status`]; [`woolly_last_error`] gives the calling
//!   thread's message for its last failure. Status numbers are never reused.
//! - Handles are opaque, created by `*_load` / `*_create` and released by `*_free`, which accept
//!   NULL. A NULL where a pointer is required is `WOOLLY_ERR_NULL_ARGUMENT`, never a crash.
//! - No panic crosses the boundary: every export runs inside [`guard`], which turns a panic into
//!   `WOOLLY_ERR_INTERNAL`.
//! - Params structs are passed by value and start from the `*_default_params()` functions.
//! - Callbacks take a `void *user_data`; token callbacks run on the thread that called the
//!   generate function, log callbacks on whichever thread logs.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use woolly_core::generate::{
    CancelHandle, ChatMessage, GenerateParams, Generation, SamplingParams, Session, SessionParams,
    SessionPool, StopReason,
};
use woolly_core::model::{Model, ModelParams, Preload};
use woolly_core::{Error, ErrorKind};

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

mod engine;
mod memory;
mod power;
pub use engine::*;
pub use memory::*;
pub use power::*;

/// A failure on its way out: a status and a message for `woolly_last_error`.
struct Failure(woolly_status, String);

/// The C status of an error kind.
fn status_of(kind: ErrorKind) -> woolly_status {
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

fn fail<T>(status: woolly_status, msg: impl Into<String>) -> Result<T, Failure> {
    Err(Failure(status, msg.into()))
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    /// The figures of an InsufficientMemory error on its way out, then of the last failure.
    static PENDING_MEMORY: std::cell::Cell<Option<(u64, u64)>> = const { std::cell::Cell::new(None) };
    static LAST_MEMORY: std::cell::Cell<Option<(u64, u64)>> = const { std::cell::Cell::new(None) };
}

fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
    LAST_MEMORY.with(|l| l.set(PENDING_MEMORY.with(|p| p.take())));
}

/// Runs `f` at the boundary: its error becomes a status and the thread's last error message,
/// and a panic becomes `WOOLLY_ERR_INTERNAL`.
/// The panic's message goes to the log callback, never to stderr (see `woolly_core::panics`).
fn guard(f: impl FnOnce() -> Result<(), Failure>) -> woolly_status {
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

/// A required pointer argument.
fn required<'a, T>(p: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller passes a pointer to a live object or NULL (documented per function).
    unsafe { p.as_ref() }.map_or_else(
        || fail(WOOLLY_ERR_NULL_ARGUMENT, format!("{name} is NULL")),
        Ok,
    )
}

/// A required NUL-terminated UTF-8 string argument.
fn required_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, Failure> {
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

/// Stores a new handle owning `value` in `*out` (checked non-NULL by the caller).
fn put_handle<T>(out: *mut *mut T, value: T) {
    // SAFETY: the caller checked `out` is non-NULL; the caller of the export provides writable
    // storage. The handle is released by the matching `*_free`, through `free_handle`.
    unsafe { *out = Box::into_raw(Box::new(value)) };
}

/// Releases a handle made by [`put_handle`] (NULL is allowed), inside the panic boundary.
///
/// # Safety
/// `p` is NULL or a handle from `put_handle` of the same type, not freed before.
unsafe fn free_handle<T>(p: *mut T) {
    let _ = guard(|| {
        if !p.is_null() {
            // SAFETY: the handle came from Box::into_raw and is freed once (the caller's promise).
            drop(unsafe { Box::from_raw(p) });
        }
        Ok(())
    });
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

// ---------------------------------------------------------------------------------------------
// Logging

/// Log severities passed to a [`woolly_log_callback`].
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_log_level {
    WOOLLY_LOG_DEBUG = 0,
    WOOLLY_LOG_INFO = 1,
    WOOLLY_LOG_WARN = 2,
    WOOLLY_LOG_ERROR = 3,
}

/// Receives Woolly's log messages (the message is valid during the call only). Called on
/// whichever thread logs: it must be thread-safe.
pub type woolly_log_callback =
    Option<extern "C" fn(level: woolly_log_level, message: *const c_char, user_data: *mut c_void)>;

struct UserData(*mut c_void);
// SAFETY: the host promises (in the header) that its user_data may be used from any thread.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

impl UserData {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    fn get(&self) -> *mut c_void {
        self.0
    }
}

/// Installs the process-wide log callback (NULL removes it). Woolly writes nothing to
/// stdout/stderr itself. Returns once no call of the callback it replaces runs any more on any
/// other thread: from then on the old callback is never called again (its `user_data` may be
/// freed). Messages Woolly logs while the callback runs on the same thread (the callback
/// calling into Woolly) are dropped; calling this from inside the callback is allowed.
#[no_mangle]
pub extern "C" fn woolly_set_log_callback(callback: woolly_log_callback, user_data: *mut c_void) {
    let _ = guard(|| {
        let cb = callback.map(|f| {
            let ud = UserData(user_data);
            Arc::new(move |level: woolly_core::log::Level, msg: &str| {
                let level = match level {
                    woolly_core::log::Level::Debug => woolly_log_level::WOOLLY_LOG_DEBUG,
                    woolly_core::log::Level::Info => woolly_log_level::WOOLLY_LOG_INFO,
                    woolly_core::log::Level::Warn => woolly_log_level::WOOLLY_LOG_WARN,
                    woolly_core::log::Level::Error => woolly_log_level::WOOLLY_LOG_ERROR,
                };
                let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
                f(level, c.as_ptr(), ud.get());
            }) as woolly_core::log::LogFn
        });
        woolly_core::log::set_callback(cb);
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Models

/// A loaded model (opaque). Immutable: any number of threads and sessions may use one model at
/// once.
pub struct woolly_model {
    model: Arc<Model>,
    /// Thread settings from the load params, for `woolly_generate` and sessions that inherit.
    threads: ThreadSettings,
    /// Sessions `woolly_generate` reuses (opened on its first call).
    generate_pool: OnceLock<SessionPool>,
}

/// Idle sessions a model keeps for `woolly_generate` (each holds a KV cache and threads).
const MAX_IDLE_SESSIONS: usize = 4;

impl woolly_model {
    /// The pool of sessions for `woolly_generate`, opened on first use.
    fn generate_pool(&self) -> Result<&SessionPool, Failure> {
        if let Some(p) = self.generate_pool.get() {
            return Ok(p);
        }
        let mut sp = SessionParams::default();
        self.threads.apply(&mut sp);
        let pool = SessionPool::new(self.model.clone(), sp, MAX_IDLE_SESSIONS)?;
        // Two first calls at once: one pool wins, the other is dropped.
        let _ = self.generate_pool.set(pool);
        self.generate_pool
            .get()
            .map_or_else(|| fail(WOOLLY_ERR_INTERNAL, "session pool vanished"), Ok)
    }
}

/// How a session spreads its work over threads (Woolly's own policy, `policy::threads`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_thread_policy {
    /// In session params: whatever the model was loaded with. In model params: `WOOLLY_THREADS_AUTO`.
    WOOLLY_THREADS_DEFAULT = 0,
    /// Per phase: one thread per physical core for the prompt, capped for generation.
    WOOLLY_THREADS_AUTO = 1,
    /// Inside an application with a UI: leave a core to it (never fewer than one thread).
    WOOLLY_THREADS_INTERACTIVE = 2,
    /// Background work: the worker threads run at a lower priority (nice 10).
    WOOLLY_THREADS_BACKGROUND = 3,
}

/// When the model's pages are read from disk.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_preload {
    /// On first use (the mapping is lazy): the fastest load.
    WOOLLY_PRELOAD_LAZY = 0,
    /// All of them during the load, so that the first generation does not wait for the disk.
    WOOLLY_PRELOAD_FULL = 1,
    /// Sequential read-ahead into the page cache by a background thread; the load does not
    /// wait ([`woolly_model_preload_progress`] tells how far it got).
    WOOLLY_PRELOAD_SEQUENTIAL = 2,
    /// The header and the first quarter of the layers during the load, the rest on first use.
    WOOLLY_PRELOAD_CRITICAL = 3,
    /// Every page, read by a background thread after the load returns.
    WOOLLY_PRELOAD_FULL_BACKGROUND = 4,
}

impl woolly_preload {
    fn core(self) -> Preload {
        match self {
            woolly_preload::WOOLLY_PRELOAD_LAZY => Preload::Lazy,
            woolly_preload::WOOLLY_PRELOAD_FULL => Preload::FullBlocking,
            woolly_preload::WOOLLY_PRELOAD_SEQUENTIAL => Preload::Sequential,
            woolly_preload::WOOLLY_PRELOAD_CRITICAL => Preload::Critical,
            woolly_preload::WOOLLY_PRELOAD_FULL_BACKGROUND => Preload::Full,
        }
    }
}

/// What Woolly may use of the machine's memory. Zero in a field means its default.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct woolly_memory_policy {
    /// A hard limit on what Woolly holds for this model (or for every model of a
    /// `woolly_cache`) and its sessions, in bytes (0: none beyond what the system has).
    pub budget_bytes: u64,
    /// Memory left to the system and other programs (0: 25% of RAM up to 8 GiB, 20% up to
    /// 16 GiB, about 17% up to 32 GiB, 12.5% above).
    pub reserve_bytes: u64,
    /// Used fraction of RAM from which the machine counts as under pressure (0: 0.85).
    pub pressure_threshold: f32,
}

impl woolly_memory_policy {
    fn core(&self) -> Result<woolly_core::policy::memory::MemoryPolicy, Failure> {
        let t = self.pressure_threshold;
        if t != 0.0 && !(t > 0.0 && t <= 1.0) {
            return fail(
                WOOLLY_ERR_INVALID_ARGUMENT,
                format!("pressure_threshold = {t} must be 0 (default) or in (0, 1]"),
            );
        }
        Ok(woolly_core::policy::memory::MemoryPolicy {
            budget_bytes: (self.budget_bytes != 0).then_some(self.budget_bytes),
            reserve_bytes: (self.reserve_bytes != 0).then_some(self.reserve_bytes),
            pressure_threshold: (t != 0.0).then_some(t as f64),
            ..Default::default()
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct ThreadSettings {
    n_threads: u32,
    policy: woolly_thread_policy,
}

impl ThreadSettings {
    /// `self`, with `WOOLLY_THREADS_DEFAULT` and 0 threads taken from `inherited`.
    fn or(self, inherited: ThreadSettings) -> ThreadSettings {
        let policy = match self.policy {
            woolly_thread_policy::WOOLLY_THREADS_DEFAULT => inherited.policy,
            p => p,
        };
        let n_threads = match (self.n_threads, self.policy) {
            (0, woolly_thread_policy::WOOLLY_THREADS_DEFAULT) => inherited.n_threads,
            (n, _) => n,
        };
        ThreadSettings { n_threads, policy }
    }

    fn apply(self, sp: &mut SessionParams) {
        sp.threads = self.n_threads as usize;
        sp.interactive = self.policy == woolly_thread_policy::WOOLLY_THREADS_INTERACTIVE;
        sp.background = self.policy == woolly_thread_policy::WOOLLY_THREADS_BACKGROUND;
    }
}

/// Load progress: `progress` goes from 0 to 1; return false to cancel the load
/// (`WOOLLY_ERR_CANCELLED`). Called on the loading thread.
pub type woolly_progress_callback =
    Option<extern "C" fn(progress: f32, user_data: *mut c_void) -> bool>;

/// How to load a model. Start from [`woolly_model_default_params`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct woolly_model_params {
    /// When the file is read from disk.
    pub preload: woolly_preload,
    /// Lock the model in memory (mlock). When the system refuses (RLIMIT_MEMLOCK), the load
    /// goes on unlocked with a warning to the log callback; [`woolly_model_is_locked`] says.
    pub use_mlock: bool,
    /// Copy weights into faster layouts for this CPU (default true).
    pub repack: bool,
    /// Threads for `woolly_generate` and for sessions whose params leave them to the model
    /// (0: chosen by `thread_policy`; at most 1024). A count above the CPUs available to the
    /// process is capped there, with a warning to the log callback.
    pub n_threads: u32,
    /// Thread policy for the same (`WOOLLY_THREADS_DEFAULT` means `WOOLLY_THREADS_AUTO`).
    pub thread_policy: woolly_thread_policy,
    /// Optional progress callback, and its user data.
    pub progress_callback: woolly_progress_callback,
    pub progress_user_data: *mut c_void,
    /// The context the load plans memory for (0: the smaller of 4096 and the model's): the
    /// load fails with `WOOLLY_ERR_INSUFFICIENT_MEMORY` when the model and one session of it
    /// do not fit.
    pub context_size: u32,
    /// The memory policy of this model (ignored by `woolly_cache_load`: the cache's applies).
    pub memory: woolly_memory_policy,
}

impl woolly_model_params {
    /// The core's params (enums checked).
    fn core(&self) -> Result<ModelParams, Failure> {
        check_enum(raw_enum(&self.preload), 4, "preload")?;
        check_enum(raw_enum(&self.thread_policy), 3, "thread_policy")?;
        if self.n_threads > 1024 {
            return fail(
                WOOLLY_ERR_INVALID_ARGUMENT,
                format!("n_threads = {} is absurd (at most 1024)", self.n_threads),
            );
        }
        let progress = self.progress_callback.map(|f| {
            let ud = UserData(self.progress_user_data);
            Arc::new(move |p: f32| f(p, ud.get())) as woolly_core::model::ProgressFn
        });
        Ok(ModelParams {
            progress,
            preload: self.preload.core(),
            mlock: self.use_mlock,
            repack: self.repack,
            memory: self.memory.core()?,
            context_size: self.context_size as usize,
        })
    }

    /// The thread settings the handle keeps.
    fn threads(&self) -> ThreadSettings {
        ThreadSettings {
            n_threads: self.n_threads,
            policy: self.thread_policy,
        }
        .or(ThreadSettings {
            n_threads: 0,
            policy: woolly_thread_policy::WOOLLY_THREADS_AUTO,
        })
    }
}

/// Default load parameters: lazy mapping, no mlock, repacking on, automatic threads, no
/// progress callback, the default context and memory policy.
#[no_mangle]
pub extern "C" fn woolly_model_default_params() -> woolly_model_params {
    woolly_model_params {
        preload: woolly_preload::WOOLLY_PRELOAD_LAZY,
        use_mlock: false,
        repack: true,
        n_threads: 0,
        thread_policy: woolly_thread_policy::WOOLLY_THREADS_AUTO,
        progress_callback: None,
        progress_user_data: std::ptr::null_mut(),
        context_size: 0,
        memory: woolly_memory_policy::default(),
    }
}

/// The integer a C caller stored in an enum-typed argument or field (C lets any `int` through).
fn raw_enum<T: Copy>(v: &T) -> u32 {
    debug_assert_eq!(std::mem::size_of::<T>(), 4);
    // SAFETY: the `#[repr(C)]` enums of this API are C `int`-sized; their bytes are read as an
    // integer before Rust looks at them as an enum.
    unsafe { std::ptr::read_unaligned(v as *const T as *const u32) }
}

/// Checks an enum value that arrived from C (any integer can arrive where an enum is declared).
fn check_enum(value: u32, max: u32, name: &str) -> Result<(), Failure> {
    if value > max {
        return fail(
            WOOLLY_ERR_INVALID_ARGUMENT,
            format!("{name} = {value} is not a valid value (0 to {max})"),
        );
    }
    Ok(())
}

/// Loads the GGUF model at `path` (NULL: `$WOOLLY_MODEL`, then the default model installed by
/// `make model`) and stores a new handle in `*out_model` (set to NULL on failure). The caller
/// owns the handle and releases it with [`woolly_model_free`].
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out_model` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_load(
    path: *const c_char,
    params: woolly_model_params,
    out_model: *mut *mut woolly_model,
) -> woolly_status {
    guard(|| {
        if out_model.is_null() {
            return fail(WOOLLY_ERR_NULL_ARGUMENT, "out_model is NULL");
        }
        // SAFETY: checked non-NULL above; the caller provides writable storage.
        unsafe { *out_model = std::ptr::null_mut() };
        let mp = params.core()?;
        let path = if path.is_null() {
            None
        } else {
            Some(PathBuf::from(required_str(path, "path")?))
        };
        let model = Model::load(path.as_deref(), &mp)?;
        let threads = params.threads();
        put_handle(
            out_model,
            woolly_model {
                model,
                threads,
                generate_pool: OnceLock::new(),
            },
        );
        Ok(())
    })
}

/// Releases a model (NULL is allowed). Sessions created from it keep their own reference and
/// stay usable until they are freed.
///
/// # Safety
/// `model` is NULL or a handle from [`woolly_model_load`] not freed before.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_free(model: *mut woolly_model) {
    // SAFETY: the caller passes NULL or a live handle from woolly_model_load.
    unsafe { free_handle(model) }
}

/// The model's vocabulary size (0 for NULL).
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_n_vocab(model: *const woolly_model) -> u32 {
    // SAFETY: the caller passes NULL or a live handle.
    unsafe { model.as_ref() }.map_or(0, |m| m.model.hparams().n_vocab as u32)
}

/// The context length the model was trained with, in tokens (0 for NULL).
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_n_ctx_train(model: *const woolly_model) -> u32 {
    // SAFETY: the caller passes NULL or a live handle.
    unsafe { model.as_ref() }.map_or(0, |m| {
        m.model.hparams().n_ctx_train.min(u32::MAX as usize) as u32
    })
}

/// The model's architecture name, e.g. `"gemma3"` (static storage; "" for NULL).
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_architecture(model: *const woolly_model) -> *const c_char {
    // SAFETY: the caller passes NULL or a live handle.
    let name = match unsafe { model.as_ref() }.map(|m| m.model.hparams().architecture.name()) {
        Some("gemma3") => "gemma3\0",
        Some("llama") => "llama\0",
        Some("qwen2") => "qwen2\0",
        _ => "\0",
    };
    name.as_ptr() as *const c_char
}

/// Tokenizes the UTF-8 `text` (BOS added as the model asks; special-token text such as
/// `<start_of_turn>` parsed). Writes up to `capacity` ids to `ids` and the token count to
/// `*n_tokens`. When the ids do not fit, nothing is written to `ids`, `*n_tokens` is the count
/// needed and the result is `WOOLLY_ERR_BUFFER_TOO_SMALL` (so `capacity` 0 with `ids` NULL asks
/// for the size).
///
/// # Safety
/// `model` is a live handle; `text` a NUL-terminated string; `ids` NULL or writable for
/// `capacity` elements; `n_tokens` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_tokenize(
    model: *const woolly_model,
    text: *const c_char,
    ids: *mut i32,
    capacity: usize,
    n_tokens: *mut usize,
) -> woolly_status {
    guard(|| {
        let m = required(model, "model")?;
        let text = required_str(text, "text")?;
        if n_tokens.is_null() {
            return fail(WOOLLY_ERR_NULL_ARGUMENT, "n_tokens is NULL");
        }
        let toks = m.model.tokenize(text, true, true)?;
        // SAFETY: checked non-NULL; the caller provides writable storage.
        unsafe { *n_tokens = toks.len() };
        if toks.len() > capacity {
            return fail(
                WOOLLY_ERR_BUFFER_TOO_SMALL,
                format!(
                    "{} tokens do not fit in a capacity of {capacity}",
                    toks.len()
                ),
            );
        }
        if !toks.is_empty() {
            if ids.is_null() {
                return fail(WOOLLY_ERR_NULL_ARGUMENT, "ids is NULL");
            }
            // SAFETY: `ids` holds `capacity >= toks.len()` writable elements.
            let out = unsafe { std::slice::from_raw_parts_mut(ids, toks.len()) };
            for (o, &t) in out.iter_mut().zip(&toks) {
                *o = t as i32;
            }
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Generation

/// Receives each piece of generated text (`piece[0..len]`, UTF-8, not NUL-terminated; a piece
/// may be empty while a character or a possible stop string is incomplete, and `piece` then
/// points to a valid empty string, never NULL) with the token id. `piece` is valid only during
/// the call.
/// Return false to stop generating. Called on the thread that called the generate function.
pub type woolly_token_callback = Option<
    extern "C" fn(piece: *const c_char, len: usize, id: i32, user_data: *mut c_void) -> bool,
>;

/// What to generate. Start from [`woolly_generate_default_params`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct woolly_generate_params {
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// 0 is greedy.
    pub temperature: f32,
    /// 0 keeps every token.
    pub top_k: u32,
    /// 1 turns nucleus sampling off.
    pub top_p: f32,
    /// 0 turns min-p off.
    pub min_p: f32,
    /// 1 turns the repetition penalty off.
    pub repeat_penalty: f32,
    /// Subtracted from a recent token's logit once per occurrence (0: off).
    pub frequency_penalty: f32,
    /// Subtracted from the logit of every recent token (0: off).
    pub presence_penalty: f32,
    /// How many of the latest tokens the penalties look at.
    pub penalty_last_n: u32,
    /// The same seed, prompt and settings give the same text; [`WOOLLY_SEED_RANDOM`] draws one.
    pub seed: u64,
    /// `n_stop` stop strings (NUL-terminated UTF-8); generation ends before the first one.
    pub stop: *const *const c_char,
    pub n_stop: usize,
    /// Keep going past end-of-generation tokens.
    pub ignore_eos: bool,
    /// Treat the prompt as one user message and apply the model's chat template.
    pub chat: bool,
    /// In a chat (`chat`, [`woolly_session_chat`]), also turn special-token text inside the
    /// messages, such as `<end_of_turn>`, into control tokens. False by default: message text is
    /// tokenized as text, so untrusted content cannot forge a turn; the chat template's own
    /// markup is always parsed. (Added in ABI 3.)
    pub parse_special_in_messages: bool,
}

/// Defaults: 256 tokens, temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no penalty, a
/// random seed, no stop strings.
#[no_mangle]
pub extern "C" fn woolly_generate_default_params() -> woolly_generate_params {
    let s = SamplingParams::default();
    woolly_generate_params {
        max_tokens: 256,
        temperature: s.temperature,
        top_k: s.top_k as u32,
        top_p: s.top_p,
        min_p: s.min_p,
        repeat_penalty: s.repetition_penalty,
        frequency_penalty: s.frequency_penalty,
        presence_penalty: s.presence_penalty,
        penalty_last_n: s.penalty_last_n as u32,
        seed: WOOLLY_SEED_RANDOM,
        stop: std::ptr::null(),
        n_stop: 0,
        ignore_eos: false,
        chat: false,
        parse_special_in_messages: false,
    }
}

fn generate_params(p: &woolly_generate_params) -> Result<GenerateParams, Failure> {
    let mut stop = Vec::with_capacity(p.n_stop.min(64));
    if p.n_stop > 0 {
        if p.stop.is_null() {
            return fail(WOOLLY_ERR_NULL_ARGUMENT, "stop is NULL while n_stop > 0");
        }
        if p.n_stop > 1024 {
            return fail(
                WOOLLY_ERR_INVALID_ARGUMENT,
                format!("{} stop strings is absurd", p.n_stop),
            );
        }
        // SAFETY: the caller passes `n_stop` string pointers at `stop`.
        let ptrs = unsafe { std::slice::from_raw_parts(p.stop, p.n_stop) };
        for (i, &s) in ptrs.iter().enumerate() {
            stop.push(required_str(s, &format!("stop[{i}]"))?.to_string());
        }
    }
    Ok(GenerateParams {
        max_tokens: p.max_tokens as usize,
        sampling: SamplingParams {
            temperature: p.temperature,
            top_k: p.top_k as usize,
            top_p: p.top_p,
            min_p: p.min_p,
            repetition_penalty: p.repeat_penalty,
            frequency_penalty: p.frequency_penalty,
            presence_penalty: p.presence_penalty,
            penalty_last_n: p.penalty_last_n as usize,
            seed: (p.seed != WOOLLY_SEED_RANDOM).then_some(p.seed),
            ..Default::default()
        },
        stop,
        ignore_eos: p.ignore_eos,
        parse_special_in_messages: p.parse_special_in_messages,
        ..Default::default()
    })
}

/// How a generation ended.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_stop_reason {
    /// No generation has finished on this session yet (or the last one failed).
    WOOLLY_STOP_NONE = 0,
    /// `max_tokens` were generated.
    WOOLLY_STOP_MAX_TOKENS = 1,
    /// The model produced an end-of-generation token.
    WOOLLY_STOP_END_OF_GENERATION = 2,
    /// The text reached one of the stop strings.
    WOOLLY_STOP_STOP_STRING = 3,
    /// The token callback returned false.
    WOOLLY_STOP_CALLBACK = 4,
}

/// What the last successful generation on a session did (see [`woolly_session_last_result`]).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct woolly_result {
    pub stop_reason: woolly_stop_reason,
    /// Tokens of the prompt, and how many of them came from the session's cache.
    pub prompt_tokens: u32,
    pub cached_tokens: u32,
    /// Tokens generated.
    pub generated_tokens: u32,
    /// Milliseconds spent on the prompt and on generation, and from the call to the first token.
    pub prompt_ms: f64,
    pub generation_ms: f64,
    pub ttft_ms: f64,
    /// Prompt and generation speed, tokens per second.
    pub prompt_tok_s: f64,
    pub generation_tok_s: f64,
    /// Milliseconds an engine request waited before it started (0 for sessions).
    pub queue_ms: f64,
}

impl woolly_result {
    fn none() -> woolly_result {
        woolly_result {
            stop_reason: woolly_stop_reason::WOOLLY_STOP_NONE,
            prompt_tokens: 0,
            cached_tokens: 0,
            generated_tokens: 0,
            prompt_ms: 0.0,
            generation_ms: 0.0,
            ttft_ms: 0.0,
            prompt_tok_s: 0.0,
            generation_tok_s: 0.0,
            queue_ms: 0.0,
        }
    }

    fn from(g: &Generation) -> woolly_result {
        let t = &g.timings;
        woolly_result {
            stop_reason: match g.stop_reason {
                StopReason::MaxTokens => woolly_stop_reason::WOOLLY_STOP_MAX_TOKENS,
                StopReason::EndOfGeneration => woolly_stop_reason::WOOLLY_STOP_END_OF_GENERATION,
                StopReason::StopString => woolly_stop_reason::WOOLLY_STOP_STOP_STRING,
                StopReason::Callback => woolly_stop_reason::WOOLLY_STOP_CALLBACK,
            },
            prompt_tokens: t.prompt_tokens as u32,
            cached_tokens: t.cached_tokens as u32,
            generated_tokens: t.generated_tokens as u32,
            prompt_ms: t.prompt_ms,
            generation_ms: t.gen_ms,
            ttft_ms: t.ttft_ms,
            prompt_tok_s: t.prompt_tok_s,
            generation_tok_s: t.gen_tok_s,
            queue_ms: t.queue_ms,
        }
    }
}

/// The prompt of a generation: plain text, or chat messages for the model's template.
enum Prompt<'a> {
    Text(&'a str),
    Chat(Vec<ChatMessage>),
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

/// Runs one generation on `session` and streams it to `on_token`.
fn run(
    session: &mut Session,
    prompt: Prompt<'_>,
    params: &woolly_generate_params,
    on_token: woolly_token_callback,
    user_data: *mut c_void,
) -> Result<Generation, Failure> {
    let gp = generate_params(params)?;
    let mut cb = |ev: &woolly_core::generate::TokenEvent<'_>| match on_token {
        Some(f) => f(text_ptr(ev.text), ev.text.len(), ev.id as i32, user_data),
        None => true,
    };
    let g = match prompt {
        Prompt::Text(p) if params.chat => {
            session.chat(&[ChatMessage::new("user", p)], &gp, &mut cb)?
        }
        Prompt::Text(p) => session.generate(p, &gp, &mut cb)?,
        Prompt::Chat(msgs) => session.chat(&msgs, &gp, &mut cb)?,
    };
    Ok(g)
}

/// Generates a reply to the UTF-8 `prompt` on a session the model keeps for these calls
/// (threads as the model was loaded with; concurrent calls each get their own), calling `on_token` (may be NULL) for each piece. Blocks until done. To cancel,
/// return false from `on_token`; to cancel also during the prompt, use a session and
/// [`woolly_abort`].
///
/// # Safety
/// `model` is a live handle; `prompt` a NUL-terminated string; the pointers inside `params`
/// valid as documented there.
#[no_mangle]
pub unsafe extern "C" fn woolly_generate(
    model: *const woolly_model,
    prompt: *const c_char,
    params: woolly_generate_params,
    on_token: woolly_token_callback,
    user_data: *mut c_void,
) -> woolly_status {
    guard(|| {
        let m = required(model, "model")?;
        let prompt = required_str(prompt, "prompt")?;
        let mut session = m.generate_pool()?.acquire()?;
        run(
            &mut session,
            Prompt::Text(prompt),
            &params,
            on_token,
            user_data,
        )
        .map(|_| ())
    })
}

/// Turns `n_ids` token ids into UTF-8 text (control tokens such as BOS render as nothing) and writes
/// it, NUL-terminated, to `buf`. `*len` receives the text's length in bytes without the NUL.
/// The text itself may contain NUL bytes (the byte token `<0x00>` decodes to one, as it does in
/// Python and Node): `*len` is authoritative, not `strlen`.
/// When `capacity` cannot hold the text and its NUL, nothing is written to `buf` and the result
/// is `WOOLLY_ERR_BUFFER_TOO_SMALL` (so `capacity` 0 with `buf` NULL asks for the size). Bytes
/// that are not valid UTF-8 on their own (a character split across the ids) become U+FFFD.
///
/// # Safety
/// `model` is a live handle; `ids` readable for `n_ids` elements (NULL when `n_ids` is 0);
/// `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_detokenize(
    model: *const woolly_model,
    ids: *const i32,
    n_ids: usize,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        let m = required(model, "model")?;
        let ids: &[i32] = if n_ids == 0 {
            &[]
        } else if ids.is_null() {
            return fail(WOOLLY_ERR_NULL_ARGUMENT, "ids is NULL while n_ids > 0");
        } else {
            // SAFETY: the caller passes `n_ids` readable ids.
            unsafe { std::slice::from_raw_parts(ids, n_ids) }
        };
        let vocab = m.model.hparams().n_vocab;
        let mut toks = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            if id < 0 || id as usize >= vocab {
                return fail(
                    WOOLLY_ERR_INVALID_ARGUMENT,
                    format!("ids[{i}] = {id} is outside the vocabulary of {vocab}"),
                );
            }
            toks.push(id as u32);
        }
        let text = m.model.detokenize(&toks)?;
        write_string(&text, buf, capacity, len)
    })
}

/// Writes `text` and a NUL to `buf` (`capacity` bytes) and its length to `*len`; when it does
/// not fit, writes only the length and fails with `WOOLLY_ERR_BUFFER_TOO_SMALL`.
fn write_string(
    text: &str,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> Result<(), Failure> {
    if len.is_null() {
        return fail(WOOLLY_ERR_NULL_ARGUMENT, "len is NULL");
    }
    // SAFETY: checked non-NULL above; the caller provides writable storage.
    unsafe { *len = text.len() };
    if text.len() >= capacity {
        return fail(
            WOOLLY_ERR_BUFFER_TOO_SMALL,
            format!(
                "{} bytes and a NUL do not fit in a capacity of {capacity}",
                text.len()
            ),
        );
    }
    if buf.is_null() {
        return fail(WOOLLY_ERR_NULL_ARGUMENT, "buf is NULL");
    }
    // SAFETY: `buf` holds `capacity > text.len()` writable bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf as *mut u8, text.len());
        *buf.add(text.len()) = 0;
    }
    Ok(())
}

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
        // SAFETY: the caller passes NULL or a live handle.
        let m = unsafe { model.as_ref() }.map(|m| &*m.model);
        write_string(
            &woolly_core::diagnostics::report(m).to_string(),
            buf,
            capacity,
            len,
        )
    })
}

/// The model's facts (architecture, hyperparameters, tensor types and sizes, vocabulary, chat
/// format, load time) as JSON, written like [`woolly_detokenize`] writes text.
///
/// # Safety
/// `model` a live handle; `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_info_json(
    model: *const woolly_model,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        let m = required(model, "model")?;
        write_string(&m.model.info()?.to_string(), buf, capacity, len)
    })
}

/// The model's counters (generations, failures, cancellations, tokens, times, rates) as JSON,
/// written like [`woolly_detokenize`] writes text.
///
/// # Safety
/// `model` a live handle; `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_metrics_json(
    model: *const woolly_model,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        let m = required(model, "model")?;
        write_string(
            &m.model.metrics().snapshot().to_json().to_string(),
            buf,
            capacity,
            len,
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// A conversation with its own KV cache and threads (opaque). One generation at a time per
/// session: a second call from another thread waits for the running one to end; a call from
/// the running generation's own token callback (`woolly_session_generate`, `_chat`, `_reset`)
/// returns `WOOLLY_ERR_BUSY` at once. [`woolly_abort`] and [`woolly_session_last_result`] may
/// be called from any thread (also from the callback) and never wait for a generation.
pub struct woolly_session {
    state: Mutex<SessionState>,
    /// What the last generation did (its own lock, never held during a generation).
    last: Mutex<woolly_result>,
    /// The thread running a generation on this session now ([`thread_number`]; 0: none).
    running_on: std::sync::atomic::AtomicU64,
    cancel: CancelHandle,
}

struct SessionState {
    session: Session,
}

/// A number for the calling thread, unique in the process (never 0).
fn thread_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static NUMBER: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|n| *n)
}

impl woolly_session {
    /// Whether the calling thread runs a generation on this session now (so it is inside that
    /// generation's token callback).
    fn inside_own_generation(&self) -> bool {
        self.running_on.load(std::sync::atomic::Ordering::SeqCst) == thread_number()
    }

    /// `WOOLLY_ERR_BUSY` for a call of `what` from this session's own token callback, which
    /// would wait for itself.
    fn refuse_reentry(&self, what: &str) -> Result<(), Failure> {
        if self.inside_own_generation() {
            return fail(
                WOOLLY_ERR_BUSY,
                format!(
                    "{what} called from the token callback of a generation on the same session \
                     would wait for itself; call it after the generation returns"
                ),
            );
        }
        Ok(())
    }

    /// The session's state, waiting for a generation running on another thread.
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_last(&self, r: woolly_result) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = r;
    }
}

/// How to open a session. Start from [`woolly_session_default_params`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct woolly_session_params {
    /// Context size in tokens (0: the smaller of 4096 and the model's).
    pub context_size: u32,
    /// Threads for both phases, the caller's included (0: chosen by `thread_policy`; at most
    /// 1024). A count above the CPUs available to the process is capped there, with a warning
    /// to the log callback (the `woolly_worker_threads` metric shows what runs).
    pub n_threads: u32,
    /// `WOOLLY_THREADS_DEFAULT`: the model's settings (`n_threads` 0 then means the model's too).
    pub thread_policy: woolly_thread_policy,
    /// Pin worker threads to distinct physical cores (Linux; off by default, as other programs
    /// on a desktop compete for the cores).
    pub pin_threads: bool,
    /// Prompt tokens per forward pass (0: 512); woolly_abort is checked between layers.
    pub batch_size: u32,
    /// How the KV cache stores keys and values.
    pub kv_precision: woolly_kv_precision,
}

/// How a session's KV cache stores keys and values.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_kv_precision {
    /// Half precision, as llama.cpp keeps it (the default).
    WOOLLY_KV_F16 = 0,
    /// Full precision: twice the memory.
    WOOLLY_KV_F32 = 1,
}

/// Defaults: context 0 (automatic), threads as the model was loaded with, no pinning,
/// batch size 512.
#[no_mangle]
pub extern "C" fn woolly_session_default_params() -> woolly_session_params {
    woolly_session_params {
        context_size: 0,
        n_threads: 0,
        thread_policy: woolly_thread_policy::WOOLLY_THREADS_DEFAULT,
        pin_threads: false,
        batch_size: 0,
        kv_precision: woolly_kv_precision::WOOLLY_KV_F16,
    }
}

/// Opens a session on `model` into `*out_session` (NULL on failure). The session keeps the model
/// alive; release it with [`woolly_session_free`].
///
/// # Safety
/// `model` is a live handle; `out_session` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_session_create(
    model: *const woolly_model,
    params: woolly_session_params,
    out_session: *mut *mut woolly_session,
) -> woolly_status {
    guard(|| {
        if out_session.is_null() {
            return fail(WOOLLY_ERR_NULL_ARGUMENT, "out_session is NULL");
        }
        // SAFETY: checked non-NULL above.
        unsafe { *out_session = std::ptr::null_mut() };
        let m = required(model, "model")?;
        check_enum(raw_enum(&params.thread_policy), 3, "thread_policy")?;
        check_enum(raw_enum(&params.kv_precision), 1, "kv_precision")?;
        let mut sp = SessionParams {
            context_size: params.context_size as usize,
            kv_precision: match params.kv_precision {
                woolly_kv_precision::WOOLLY_KV_F16 => woolly_core::model::KvPrecision::F16,
                woolly_kv_precision::WOOLLY_KV_F32 => woolly_core::model::KvPrecision::F32,
            },
            pin_threads: params.pin_threads,
            batch_size: match params.batch_size {
                0 => SessionParams::default().batch_size,
                n => n as usize,
            },
            ..Default::default()
        };
        ThreadSettings {
            n_threads: params.n_threads,
            policy: params.thread_policy,
        }
        .or(m.threads)
        .apply(&mut sp);
        let session = Session::new(m.model.clone(), &sp)?;
        let cancel = session.cancel_handle();
        put_handle(
            out_session,
            woolly_session {
                state: Mutex::new(SessionState { session }),
                last: Mutex::new(woolly_result::none()),
                running_on: Default::default(),
                cancel,
            },
        );
        Ok(())
    })
}

/// Releases a session (NULL is allowed). Must not be called while a generation on it runs on
/// another thread; called from that generation's own token callback it does nothing but log
/// an error (the session stays usable: free it after the generation returns).
///
/// # Safety
/// `session` is NULL or a handle from [`woolly_session_create`] not freed before.
#[no_mangle]
pub unsafe extern "C" fn woolly_session_free(session: *mut woolly_session) {
    // SAFETY: the caller passes NULL or a live handle from woolly_session_create.
    if let Some(s) = unsafe { session.as_ref() } {
        if s.inside_own_generation() {
            woolly_core::log::log(
                woolly_core::log::Level::Error,
                "woolly_session_free called from the token callback of a generation on the same \
                 session: ignored (free it after the generation returns)",
            );
            return;
        }
    }
    // SAFETY: as above.
    unsafe { free_handle(session) }
}

/// Runs `prompt` on a session handle and records the result.
fn session_run<'a>(
    session: *const woolly_session,
    prompt: impl FnOnce() -> Result<Prompt<'a>, Failure>,
    params: &woolly_generate_params,
    on_token: woolly_token_callback,
    user_data: *mut c_void,
) -> Result<(), Failure> {
    let s = required(session, "session")?;
    s.refuse_reentry("woolly_session_generate (or _chat)")?;
    let mut state = s.lock();
    /// Marks the session as running on this thread while it lives.
    struct Running<'a>(&'a std::sync::atomic::AtomicU64);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            self.0.store(0, std::sync::atomic::Ordering::SeqCst);
        }
    }
    s.running_on
        .store(thread_number(), std::sync::atomic::Ordering::SeqCst);
    let _running = Running(&s.running_on);
    s.set_last(woolly_result::none());
    let prompt = prompt()?;
    let g = run(&mut state.session, prompt, params, on_token, user_data)?;
    s.set_last(woolly_result::from(&g));
    Ok(())
}

/// Generates on `session` (its cache keeps the conversation's shared prefix between calls),
/// streaming to `on_token` (may be NULL). Returns `WOOLLY_ERR_CANCELLED` after
/// [`woolly_abort`].
///
/// # Safety
/// As for [`woolly_generate`], with `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn woolly_session_generate(
    session: *const woolly_session,
    prompt: *const c_char,
    params: woolly_generate_params,
    on_token: woolly_token_callback,
    user_data: *mut c_void,
) -> woolly_status {
    guard(|| {
        session_run(
            session,
            || Ok(Prompt::Text(required_str(prompt, "prompt")?)),
            &params,
            on_token,
            user_data,
        )
    })
}

/// One chat message: a role (`"system"`, `"user"`, `"assistant"`) and its content, both
/// NUL-terminated UTF-8.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct woolly_chat_message {
    pub role: *const c_char,
    pub content: *const c_char,
}

/// Generates the assistant's reply to `n_messages` messages, rendered with the model's chat
/// template (its own Jinja template, or the built-in format of its family), on `session`.
/// `params.chat` is ignored. Returns `WOOLLY_ERR_CANCELLED` after [`woolly_abort`].
///
/// # Safety
/// `session` is a live handle; `messages` readable for `n_messages` elements whose strings are
/// NUL-terminated; the pointers inside `params` valid as documented there.
#[no_mangle]
pub unsafe extern "C" fn woolly_session_chat(
    session: *const woolly_session,
    messages: *const woolly_chat_message,
    n_messages: usize,
    params: woolly_generate_params,
    on_token: woolly_token_callback,
    user_data: *mut c_void,
) -> woolly_status {
    guard(|| {
        session_run(
            session,
            || {
                if n_messages == 0 {
                    return fail(WOOLLY_ERR_INVALID_ARGUMENT, "no messages");
                }
                if messages.is_null() {
                    return fail(WOOLLY_ERR_NULL_ARGUMENT, "messages is NULL");
                }
                if n_messages > 1 << 20 {
                    return fail(
                        WOOLLY_ERR_INVALID_ARGUMENT,
                        format!("{n_messages} messages is absurd"),
                    );
                }
                // SAFETY: the caller passes `n_messages` readable messages.
                let msgs = unsafe { std::slice::from_raw_parts(messages, n_messages) };
                let mut out = Vec::with_capacity(msgs.len());
                for (i, m) in msgs.iter().enumerate() {
                    out.push(ChatMessage::new(
                        required_str(m.role, &format!("messages[{i}].role"))?,
                        required_str(m.content, &format!("messages[{i}].content"))?,
                    ));
                }
                Ok(Prompt::Chat(out))
            },
            &params,
            on_token,
            user_data,
        )
    })
}

/// Writes what the last generation on `session` did to `*out` (`stop_reason`
/// `WOOLLY_STOP_NONE` when the last call failed, none has run, or one runs now). Never waits
/// for a running generation; may be called from any thread, its token callback included.
///
/// # Safety
/// `session` is a live handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_session_last_result(
    session: *const woolly_session,
    out: *mut woolly_result,
) -> woolly_status {
    guard(|| {
        let s = required(session, "session")?;
        if out.is_null() {
            return fail(WOOLLY_ERR_NULL_ARGUMENT, "out is NULL");
        }
        let last = *s.last.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: checked non-NULL above.
        unsafe { *out = last };
        Ok(())
    })
}

/// Forgets the conversation kept in `session`'s cache (the next prompt is computed from the
/// start). Waits for a generation running on it on another thread to end; from that
/// generation's own token callback returns `WOOLLY_ERR_BUSY` (nothing reset).
///
/// # Safety
/// `session` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn woolly_session_reset(session: *const woolly_session) -> woolly_status {
    guard(|| {
        let s = required(session, "session")?;
        s.refuse_reentry("woolly_session_reset")?;
        s.lock().session.reset();
        Ok(())
    })
}

/// Stops the generation running on `session`, from any thread (also in the middle of a long
/// prompt): that call returns `WOOLLY_ERR_CANCELLED` within one layer's work. No effect when
/// nothing runs. NULL is allowed.
///
/// # Safety
/// `session` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn woolly_abort(session: *const woolly_session) {
    let _ = guard(|| {
        // SAFETY: the caller passes NULL or a live handle.
        if let Some(s) = unsafe { session.as_ref() } {
            s.cancel.cancel();
        }
        Ok(())
    });
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
                "tests::panic_child",
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
