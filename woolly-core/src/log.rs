//! Woolly's log messages, delivered to a callback the host application installs (no output of
//! its own: a library inside a desktop app does not write to the app's stderr).

use std::sync::{Arc, RwLock};

/// How important a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

/// A log callback: called on whichever thread logs, so it must be thread-safe.
pub type LogFn = Arc<dyn Fn(Level, &str) + Send + Sync>;

static CALLBACK: RwLock<Option<LogFn>> = RwLock::new(None);

/// Installs (or, with `None`, removes) the process-wide log callback.
pub fn set_callback(cb: Option<LogFn>) {
    *CALLBACK.write().unwrap_or_else(|e| e.into_inner()) = cb;
}

/// Whether a callback is installed (to skip formatting otherwise).
pub fn enabled() -> bool {
    CALLBACK.read().map(|c| c.is_some()).unwrap_or(false)
}

/// Delivers `msg` to the callback, if any.
pub fn log(level: Level, msg: &str) {
    let cb = CALLBACK.read().ok().and_then(|c| c.clone());
    if let Some(cb) = cb {
        cb(level, msg);
    }
}

/// `log!(Level::Info, "format {}", args)`: formats only when a callback is installed.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)*) => {
        if $crate::log::enabled() {
            $crate::log::log($level, &format!($($arg)*));
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn messages_reach_the_callback() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        set_callback(Some(Arc::new(move |l, m: &str| {
            sink.lock().unwrap().push((l, m.to_string()))
        })));
        crate::log!(Level::Warn, "x = {}", 3);
        set_callback(None);
        crate::log!(Level::Warn, "dropped");
        let got = got.lock().unwrap();
        assert!(got.contains(&(Level::Warn, "x = 3".to_string())));
        assert!(!got.iter().any(|(_, m)| m == "dropped"));
    }
}
