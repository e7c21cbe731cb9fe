//! Woolly for Node.js and Electron (Node-API through napi-rs).
//!
//! This native module is deliberately thin; `index.js` is the public API. Slow work (loading,
//! generating) runs on threads of its own, never on the JavaScript thread nor on libuv's pool, and
//! reports back through a thread-safe function as plain event objects:
//! `{ kind: "progress", progress }`, `{ kind: "loaded" }`, `{ kind: "token", text, id, index }`,
//! `{ kind: "done", ... }` and `{ kind: "error", code, message, details? }` (codes as in the C
//! ABI; `details` holds an error's figures, such as the bytes of an InsufficientMemory error).
//!
//! One module per concept: `task` (worker threads, events, cancellation), `model`, `engine`,
//! `cache` (the model cache), `openai` (OpenAI-shaped requests), `memory`, `power`, `metrics`,
//! `diagnostics`; `options` turns JavaScript option bags into woolly-core's parameters and
//! `error` its errors into JavaScript ones. This file registers the module and holds the few facts about the library itself.

mod cache;
mod diagnostics;
mod engine;
mod error;
mod memory;
mod metrics;
mod model;
mod openai;
mod options;
mod power;
mod task;

use napi_derive::napi;

/// This addon carries its own Rust runtime: every panic in it is Woolly's, and none may print to
/// the host's stderr. Each exported function catches its panics (`catch_unwind`) and throws them
/// as errors, which `index.js` reports as `WOOLLY_ERR_INTERNAL`.
#[napi_derive::module_init]
fn init() {
    woolly_core::panics::claim_all();
}

/// For the tests only: panics on the JavaScript thread, as a bug inside Woolly would.
#[napi(js_name = "panicForTests", catch_unwind)]
pub fn panic_for_tests(message: String) {
    panic!("{message}");
}

/// Woolly's version.
#[napi(catch_unwind)]
pub fn version() -> String {
    woolly_core::VERSION.to_string()
}

/// Where the default model lives (whether or not it is installed).
#[napi(catch_unwind)]
pub fn default_model_path() -> Option<String> {
    woolly_core::model::default_model_path().map(|p| p.display().to_string())
}
