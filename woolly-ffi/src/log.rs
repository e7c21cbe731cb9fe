//! Logging: the process-wide log callback. Woolly writes nothing to stdout/stderr itself.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use crate::boundary::{guard, UserData};

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
