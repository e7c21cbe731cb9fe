//! The one place where Woolly's errors become JavaScript ones: an [`ErrorKind`] becomes the same
//! status name the C ABI uses (`WOOLLY_ERR_IO`, ...), which the JS layer puts on `error.code`.

use napi::Status;
use woolly_core::{Error, ErrorKind};

/// The C ABI's status name for `kind` (woolly-core's `ErrorKind::code`, which woolly-ffi and the
/// Python binding use too).
pub fn code_of(kind: ErrorKind) -> &'static str {
    kind.code()
}

// Synchronous methods return `napi::Result` (spelled out: napi-derive throws only for a literal
// `Result` return type). napi-rs throws these with `code: "GenericFailure"`; the message starts
// with `[WOOLLY_ERR_...] `, which `index.js` moves into `error.code`.

/// A Woolly error as a thrown JavaScript error.
pub fn to_js(e: &Error) -> napi::Error {
    match e.details() {
        // `[CODE {"required":..}] message`: index.js puts the fields on the error.
        Some(d) => napi::Error::new(
            Status::GenericFailure,
            format!("[{} {d}] {e}", code_of(e.kind())),
        ),
        None => js_error(code_of(e.kind()), e.to_string()),
    }
}

/// An error with an explicit code (for the binding's own checks).
pub fn js_error(code: &'static str, message: impl std::fmt::Display) -> napi::Error {
    napi::Error::new(Status::GenericFailure, format!("[{code}] {message}"))
}

/// A Woolly error as the payload of an `error` event sent to a callback.
pub fn to_event(e: &Error) -> serde_json::Value {
    let mut ev =
        serde_json::json!({ "kind": "error", "code": code_of(e.kind()), "message": e.to_string() });
    if let Some(d) = e.details() {
        ev["details"] = d;
    }
    ev
}

/// A panic caught on a worker thread, as an `error` event.
pub fn panic_event(payload: &(dyn std::any::Any + Send)) -> serde_json::Value {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    serde_json::json!({
        "kind": "error",
        "code": "WOOLLY_ERR_INTERNAL",
        "message": format!("internal error: a Woolly worker thread panicked: {what}"),
    })
}
