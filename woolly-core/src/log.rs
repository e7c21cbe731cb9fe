//! Woolly's log messages, delivered to a callback the host application installs (no output of
//! its own: a library inside a desktop app does not write to the app's stderr).
//!
//! Replacing the callback is synchronous: once [`set_callback`] returns, the callback it
//! replaced is never called again and no call of it is still running on another thread (so
//! the host may free what the old callback uses). Messages logged from inside the callback
//! itself (the callback calling back into Woolly) are dropped, so a callback cannot recurse,
//! and [`set_callback`] called from inside the callback does not wait for that very call.

use std::cell::Cell;
use std::sync::{Arc, Condvar, Mutex};

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

struct State {
    callback: Option<LogFn>,
    /// Bumped by every replacement.
    generation: u64,
    /// Calls running now of the installed callback, and of callbacks replaced since.
    current_calls: usize,
    old_calls: usize,
}

static STATE: Mutex<State> = Mutex::new(State {
    callback: None,
    generation: 0,
    current_calls: 0,
    old_calls: 0,
});
/// Signalled when the last call of a replaced callback ends.
static OLD_CALLS_DONE: Condvar = Condvar::new();

thread_local! {
    /// The generation of the callback this thread is inside of, while it runs.
    static IN_CALL: Cell<Option<u64>> = const { Cell::new(None) };
}

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Ends the accounting of a call of generation `g`.
fn end_call(s: &mut State, g: u64) {
    if g == s.generation {
        s.current_calls -= 1;
    } else {
        s.old_calls -= 1;
        if s.old_calls == 0 {
            OLD_CALLS_DONE.notify_all();
        }
    }
}

/// Installs (or, with `None`, removes) the process-wide log callback. Returns once no call of
/// the callback it replaces runs any more (except the caller's own, when called from inside the
/// callback).
pub fn set_callback(cb: Option<LogFn>) {
    let mut s = state();
    // Called from inside a call of the callback: that call no longer counts (it cannot end
    // while we wait for it).
    if let Some(g) = IN_CALL.with(|c| c.take()) {
        end_call(&mut s, g);
    }
    let old = std::mem::replace(&mut s.callback, cb);
    s.generation += 1;
    s.old_calls += s.current_calls;
    s.current_calls = 0;
    while s.old_calls > 0 {
        s = OLD_CALLS_DONE.wait(s).unwrap_or_else(|e| e.into_inner());
    }
    drop(s);
    // The old callback (and what it owns) goes here, after its last call.
    drop(old);
}

/// Whether a callback is installed (to skip formatting otherwise).
pub fn enabled() -> bool {
    IN_CALL.with(|c| c.get()).is_none() && state().callback.is_some()
}

/// Delivers `msg` to the callback, if any (not from inside the callback: dropped there).
pub fn log(level: Level, msg: &str) {
    if IN_CALL.with(|c| c.get()).is_some() {
        return;
    }
    let (cb, g) = {
        let mut s = state();
        let Some(cb) = s.callback.clone() else { return };
        s.current_calls += 1;
        (cb, s.generation)
    };
    /// Ends the call's accounting also when the callback panics.
    struct Call(u64);
    impl Drop for Call {
        fn drop(&mut self) {
            // Taken by `set_callback` when the callback replaced itself.
            if IN_CALL.with(|c| c.take()).is_some() {
                end_call(&mut state(), self.0);
            }
        }
    }
    IN_CALL.with(|c| c.set(Some(g)));
    let _call = Call(g);
    cb(level, msg);
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
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// One test for everything: the callback is process-wide.
    #[test]
    fn replacement_is_synchronous_and_reentry_is_safe() {
        // Messages reach the callback; none after it is removed.
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        set_callback(Some(Arc::new(move |l, m: &str| {
            sink.lock().unwrap().push((l, m.to_string()))
        })));
        crate::log!(Level::Warn, "x = {}", 3);
        set_callback(None);
        crate::log!(Level::Warn, "dropped");
        {
            let got = got.lock().unwrap();
            assert!(got.contains(&(Level::Warn, "x = 3".to_string())));
            assert!(!got.iter().any(|(_, m)| m == "dropped"));
        }

        // A call running on another thread: removal waits for it, and nothing runs after.
        let inside = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let after_removal = Arc::new(AtomicUsize::new(0));
        let removed = Arc::new(AtomicBool::new(false));
        let (i, r, a, rm) = (
            inside.clone(),
            release.clone(),
            after_removal.clone(),
            removed.clone(),
        );
        set_callback(Some(Arc::new(move |_, _: &str| {
            if rm.load(Ordering::SeqCst) {
                a.fetch_add(1, Ordering::SeqCst);
            }
            i.store(true, Ordering::SeqCst);
            while !r.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            // Still running: the removal has not returned.
            if rm.load(Ordering::SeqCst) {
                a.fetch_add(1, Ordering::SeqCst);
            }
        })));
        let t = std::thread::spawn(|| log(Level::Info, "slow"));
        while !inside.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let remover = std::thread::spawn({
            let removed = removed.clone();
            move || {
                set_callback(None);
                removed.store(true, Ordering::SeqCst);
            }
        });
        // The remover cannot return while the call runs (this is the watchdog-free check:
        // whatever the timing, `removed` may only be set after the call ends).
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !removed.load(Ordering::SeqCst),
            "removal returned during a call"
        );
        release.store(true, Ordering::SeqCst);
        t.join().unwrap();
        remover.join().unwrap();
        assert!(removed.load(Ordering::SeqCst));
        for _ in 0..10 {
            log(Level::Info, "after");
        }
        assert_eq!(after_removal.load(Ordering::SeqCst), 0);

        // Logging and replacing from inside the callback neither recurse nor deadlock.
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        set_callback(Some(Arc::new(move |_, _: &str| {
            c.fetch_add(1, Ordering::SeqCst);
            log(Level::Warn, "from inside");
            set_callback(None);
        })));
        log(Level::Info, "outer");
        log(Level::Info, "gone");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(!enabled());
        let s = state();
        assert_eq!((s.current_calls, s.old_calls), (0, 0));
    }
}
