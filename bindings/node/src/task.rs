//! The plumbing of every slow call: a worker thread, the thread-safe function that carries its
//! events back to JavaScript, and the task object JavaScript cancels it with.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use napi::bindgen_prelude::Unknown;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use serde_json::Value;
use woolly_core::generate::CancelToken;

use crate::error::{self, js_error};

/// A JavaScript callback that receives one event object, callable from any thread.
pub(crate) type EventFn = ThreadsafeFunction<Value, Unknown<'static>, Value, Status, false>;

/// Stack of the load and generation threads (the forward pass recurses little, but a chat
/// template render can).
pub(crate) const WORKER_STACK: usize = 8 << 20;

pub(crate) fn send(cb: &EventFn, ev: Value) {
    // NonBlocking on an unbounded queue never waits; it fails only while Node shuts down.
    let _ = cb.call(ev, ThreadsafeFunctionCallMode::NonBlocking);
}

/// Runs `work` on a new thread; a panic there becomes an `error` event instead of an abort (its
/// message goes to the log callback, not to the application's stderr: `woolly_core::panics`).
pub(crate) fn spawn_worker(
    name: &str,
    cb: Arc<EventFn>,
    work: impl FnOnce(&EventFn) -> Value + Send + 'static,
) -> napi::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(WORKER_STACK)
        .spawn(move || {
            let last = match catch_unwind(AssertUnwindSafe(|| work(&cb))) {
                Ok(ev) => ev,
                Err(p) => error::panic_event(&*p),
            };
            send(&cb, last);
        })
        .map(|_| ())
        .map_err(|e| js_error("WOOLLY_ERR_INTERNAL", format!("cannot start a thread: {e}")))
}

/// A load or generation in progress, as JavaScript holds it.
#[napi]
pub struct NativeTask {
    pub(crate) token: CancelToken,
}

#[napi]
impl NativeTask {
    /// Asks the work to stop; it then ends with a `WOOLLY_ERR_CANCELLED` error event (or, when it
    /// had already finished, with its normal result). Safe to call any number of times.
    #[napi(catch_unwind)]
    pub fn cancel(&self) {
        self.token.cancel();
    }
}
