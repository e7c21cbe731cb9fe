//! Panics inside Woolly reach the log callback, never the host's stderr.
//!
//! Woolly catches panics at its boundaries (the C ABI's guard, the worker pool, the engine), but
//! Rust's panic hook runs before any `catch_unwind` and the default one prints to stderr. A
//! library must not print, nor take the host application's hook away: [`install`] chains a hook
//! in front of the one in place, once. Panics on Woolly's own threads (named `woolly-*`) and
//! inside a [`scope`] go to the log callback as errors; every other panic goes to the previous
//! hook exactly as before.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// Set by [`claim_all`]: every panic in this binary is Woolly's.
static ALL: AtomicBool = AtomicBool::new(false);

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether a panic on this thread now is Woolly's.
fn ours() -> bool {
    ALL.load(Ordering::Relaxed)
        || DEPTH.try_with(|d| d.get() > 0).unwrap_or(false)
        || std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("woolly-"))
}

/// Chains Woolly's panic hook in front of the one installed now (once per process; later calls
/// do nothing). A host that installs its own hook afterwards replaces it, as is its right.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if ours() {
                crate::log::log(
                    crate::log::Level::Error,
                    &format!("internal error (a bug in Woolly), caught: {info}"),
                );
            } else {
                previous(info);
            }
        }));
    });
}

/// Counts every panic in this binary as Woolly's, on any thread (and installs the hook).
///
/// For a front end whose binary holds no Rust code but Woolly's: a Python or Node extension
/// module carries its own copy of the Rust runtime, with a panic hook of its own that no other
/// code in the host process shares, so a panic there can only be Woolly's. Its message then goes
/// to the log callback (nothing is printed), and the binding turns the panic into an exception.
/// Not for the C library, which may be linked into a Rust host: it uses [`scope`].
pub fn claim_all() {
    ALL.store(true, Ordering::Relaxed);
    install();
}

/// Runs `f` with panics on this thread counted as Woolly's (see [`install`], which this calls).
/// The front ends run each call into Woolly inside one, around their `catch_unwind`.
pub fn scope<R>(f: impl FnOnce() -> R) -> R {
    install();
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            let _ = DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
    DEPTH.with(|d| d.set(d.get() + 1));
    let _leave = Leave;
    f()
}
