//! Woolly's C ABI (`libwoolly.so`, `libwoolly.a`, `include/woolly.h`).
//!
//! Conventions, as in the header:
//! - Every fallible function returns a [`woolly_status`]; [`woolly_last_error`] gives the calling
//!   thread's message for its last failure. Status numbers are never reused.
//! - Handles are opaque, created by `*_load` / `*_create` and released by `*_free`, which accept
//!   NULL. A NULL where a pointer is required is `WOOLLY_ERR_NULL_ARGUMENT`, never a crash.
//! - No panic crosses the boundary: every fallible export runs inside `boundary::guard`, which
//!   turns a panic into `WOOLLY_ERR_INTERNAL`.
//! - Params structs are passed by value and start from the `*_default_params()` functions.
//! - Callbacks take a `void *user_data`; token callbacks run on the thread that called the
//!   generate function, log callbacks on whichever thread logs.
//! - Enum numbers are never changed or reused. Where a C name came to disagree with the name
//!   the other front ends (Python, Node, JSON) use, the front ends' name is added and the old C
//!   name stays as a deprecated alias of the same number.
//!
//! Layout, one module per C type family (as rustls-ffi does), each holding its types and the
//! exports that take them:
//! - `boundary`: the helpers every export goes through: the panic boundary (`guard`), the
//!   thread's last error, NULL checks of arguments, out-pointer writers, handle boxes, string
//!   and array conversions, enum values checked as they arrive from C. Exports use these rather
//!   than writing their own NULL prelude.
//! - `status`: `woolly_status` and the library and ABI versions (below the boundary, which
//!   returns statuses).
//! - `errors`: what a caller reads after a failure: the thread's last error, status names.
//! - `log`: `woolly_log_level` and the log callback.
//! - `model`: `woolly_model`, `woolly_model_params`, `woolly_preload`, `woolly_thread_policy`;
//!   loading, freeing, the model's facts.
//! - `text`: tokenizing and detokenizing.
//! - `generate`: `woolly_generate_params`, `woolly_stop_reason`, `woolly_result`, the token
//!   callback and `woolly_generate`.
//! - `session`: `woolly_session`, `woolly_session_params`, `woolly_kv_precision`, chat, abort.
//! - `engine`: `woolly_engine`, requests, events, priorities.
//! - `memory_policy`: `woolly_memory_policy` (model params carry one, so it sits below `model`).
//! - `memory`: estimates, memory reports, preload progress, locking.
//! - `cache`: `woolly_cache`, the model cache under a memory budget.
//! - `power`: `woolly_power_profile`, the thermal monitor and the explicit system opt-ins.
//! - `metrics`: the metrics registry and a model's counters.
//! - `diagnostics`: the hardware, the diagnostics report and the doctor.
//!
//! `include/woolly.h` is generated from these modules by `make header` (cbindgen).
#![allow(non_camel_case_types)]

// The boundary helpers, then the families in the order the header lists their functions
// (cbindgen follows the declarations; blank lines keep rustfmt from sorting them).
mod boundary;

mod status;

mod errors;

mod log;

mod memory_policy;

mod model;

mod text;

mod generate;

mod session;

mod engine;

mod openai;

mod memory;

mod cache;

mod power;

mod metrics;

mod diagnostics;

pub use cache::*;
pub use diagnostics::*;
pub use engine::*;
pub use errors::*;
pub use generate::*;
pub use log::*;
pub use memory::*;
pub use memory_policy::*;
pub use metrics::*;
pub use model::*;
pub use openai::*;
pub use power::*;
pub use session::*;
pub use status::*;
pub use text::*;
