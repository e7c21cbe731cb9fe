//! The machine and the process as Woolly sees them: hardware, diagnostics, the doctor.

use std::path::PathBuf;
use std::sync::Arc;

use napi_derive::napi;
use serde_json::{json, Value};
use woolly_core::generate::CancelToken;

use crate::task::{send, spawn_worker, EventFn, NativeTask};

/// What Woolly detected about this machine.
#[napi(catch_unwind)]
pub fn hardware() -> Value {
    woolly_core::platform::Hardware::detect().to_json()
}

/// The CUDA devices as the driver reports them now, or why there are none.
#[napi(catch_unwind)]
pub fn cuda_devices() -> Value {
    woolly_core::platform::cuda::report().to_json()
}

/// The diagnostics report of this process (no model).
#[napi(catch_unwind)]
pub fn diagnostics() -> Value {
    woolly_core::diagnostics::report(None)
}

/// The doctor on a new thread. Events: `progress` (`progress`, `message`; when `progress` is
/// true), then `done` with `report`. woolly-core cannot stop it early: the task's `cancel`
/// does nothing.
#[napi(catch_unwind)]
pub fn doctor(
    model: Option<String>,
    measure: Option<bool>,
    progress: bool,
    on_event: EventFn,
) -> napi::Result<NativeTask> {
    let d = woolly_core::diagnostics::DoctorOptions::default();
    let opts = woolly_core::diagnostics::DoctorOptions {
        model: model.map(PathBuf::from),
        measure: measure.unwrap_or(d.measure),
        ..d
    };
    spawn_worker("woolly-doctor", Arc::new(on_event), move |cb| {
        let report = woolly_core::diagnostics::doctor_with(&opts, &mut |f, what| {
            if progress {
                send(
                    cb,
                    json!({ "kind": "progress", "progress": f, "message": what }),
                );
            }
        });
        json!({ "kind": "done", "report": report })
    })?;
    Ok(NativeTask {
        token: CancelToken::new(),
    })
}
