//! What a model would take, and the machine's memory.

use std::path::Path;
use std::sync::Arc;

use napi_derive::napi;
use serde_json::{json, Value};
use woolly_core::generate::CancelToken;
use woolly_core::model::Model;

use crate::error::{to_event, to_js};
use crate::options::{LoadOptions, MemoryOptions};
use crate::task::{spawn_worker, EventFn, NativeTask};

/// What loading the model at `path` with `options` would take, from its header alone, read on
/// a new thread. Events: `done` with `estimate` (woolly-core's `MemoryEstimate`), or `error`.
#[napi(catch_unwind)]
pub fn estimate(
    path: Option<String>,
    options: Option<LoadOptions>,
    on_event: EventFn,
) -> napi::Result<NativeTask> {
    let params = options
        .unwrap_or_default()
        .model_params()
        .map_err(|e| to_js(&e))?;
    spawn_worker(
        "woolly-estimate",
        Arc::new(on_event),
        move |_| match Model::estimate(path.as_deref().map(Path::new), &params) {
            Ok(est) => json!({ "kind": "done", "estimate": est }),
            Err(e) => to_event(&e),
        },
    )?;
    Ok(NativeTask {
        token: CancelToken::new(),
    })
}

/// The machine's memory under `options`' policy, and this process's (woolly-core's
/// `policy::memory::report`).
#[napi(catch_unwind)]
pub fn memory_report(options: Option<MemoryOptions>) -> napi::Result<Value> {
    let policy = options
        .unwrap_or_default()
        .policy()
        .map_err(|e| to_js(&e))?;
    Ok(woolly_core::policy::memory::report(&policy))
}
