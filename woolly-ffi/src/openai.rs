//! OpenAI-shaped requests as JSON: `woolly_session_openai` and `woolly_engine_openai` take a
//! chat completions or completions request body and stream the response chunks (or pass the
//! one response object) to a callback, as `woolly serve` answers the same body.

use std::ffi::{c_char, c_void, CString};

use woolly_core::openai::{self, Plan};

use crate::boundary::{check_enum, fail, guard, required, required_str, Failure};
use crate::engine::woolly_engine;
use crate::session::{with_session, woolly_session};
use crate::status::woolly_status;
use crate::status::woolly_status::*;

/// Which OpenAI endpoint a request body is for.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_openai_endpoint {
    /// `/v1/chat/completions`: `messages`, `tools`, `tool_choice`, `response_format`, ...
    WOOLLY_OPENAI_CHAT = 0,
    /// `/v1/completions`: `prompt`.
    WOOLLY_OPENAI_COMPLETION = 1,
}

/// Receives one JSON object: NUL-terminated UTF-8, owned by Woolly and valid only during the
/// call. Return false to stop (the reply then ends as it stands, and the function returns
/// `WOOLLY_OK`). Called on the thread that called the function.
pub type woolly_json_callback =
    Option<extern "C" fn(json: *const c_char, user_data: *mut c_void) -> bool>;

fn plan(
    endpoint: woolly_openai_endpoint,
    body: &str,
    model: &woolly_core::model::Model,
    context: usize,
) -> Result<Plan, Failure> {
    let kind = match endpoint {
        woolly_openai_endpoint::WOOLLY_OPENAI_CHAT => openai::Kind::Chat,
        woolly_openai_endpoint::WOOLLY_OPENAI_COMPLETION => openai::Kind::Completion,
    };
    Ok(openai::plan_json(
        kind,
        body.as_bytes(),
        model,
        None,
        context,
    )?)
}

fn send(
    cb: extern "C" fn(*const c_char, *mut c_void) -> bool,
    v: &serde_json::Value,
    user_data: *mut c_void,
) -> bool {
    // JSON text never holds a NUL byte (serde escapes U+0000 as \u0000).
    let text = CString::new(v.to_string()).expect("JSON text has no NUL byte");
    cb(text.as_ptr(), user_data)
}

/// Runs an OpenAI-shaped request (`request_json`, the body a client would POST) on `session`.
/// Not streaming, `on_json` receives the response object once (`chat.completion` or
/// `text_completion`, with `usage`, `finish_reason`, `tool_calls`, `logprobs`); with
/// `"stream": true` it receives each chunk (`chat.completion.chunk` / `text_completion`), the
/// closing one with `finish_reason`, then the `usage` chunk when
/// `stream_options.include_usage`. The request's fields and Woolly's extensions are those of
/// `woolly serve` (see the README). An invalid body is `WOOLLY_ERR_INVALID_ARGUMENT` (its
/// message in [`woolly_last_error`](crate::woolly_last_error)) before any work;
/// [`woolly_abort`](crate::woolly_abort) cancels. The session's cache keeps the shared prefix
/// between calls.
///
/// # Safety
/// `session` a live handle; `request_json` NUL-terminated; `on_json` safe to call on this
/// thread with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn woolly_session_openai(
    session: *const woolly_session,
    endpoint: woolly_openai_endpoint,
    request_json: *const c_char,
    on_json: woolly_json_callback,
    user_data: *mut c_void,
) -> woolly_status {
    guard(|| {
        check_enum(&endpoint, 1, "endpoint")?;
        let body = required_str(request_json, "request_json")?;
        let Some(cb) = on_json else {
            return fail(WOOLLY_ERR_NULL_ARGUMENT, "on_json is NULL");
        };
        with_session(session, "woolly_session_openai", |_, s| {
            let model = s.model().clone();
            let plan = plan(endpoint, body, &model, s.context_size())?;
            let response = openai::run_session(s, &plan, |chunk| send(cb, &chunk, user_data))?;
            if !response.is_null() {
                send(cb, &response, user_data);
            }
            Ok(())
        })
    })
}

/// [`woolly_session_openai`] through `engine`: the request is batched with the engine's others
/// (its `priority`, `deadline_ms` and `latency_sensitive` fields are honoured). The call waits
/// for the reply, passing the chunks (or the response) to `on_json` on this thread; returning
/// false cancels the request. A full queue is `WOOLLY_ERR_BUSY`, a passed deadline
/// `WOOLLY_ERR_DEADLINE_EXCEEDED`. Not from an engine's own event callback (that would wait for
/// itself: `WOOLLY_ERR_BUSY`).
///
/// # Safety
/// `engine` a live handle; `request_json` NUL-terminated; `on_json` safe to call on this
/// thread with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn woolly_engine_openai(
    engine: *const woolly_engine,
    endpoint: woolly_openai_endpoint,
    request_json: *const c_char,
    on_json: woolly_json_callback,
    user_data: *mut c_void,
) -> woolly_status {
    guard(|| {
        check_enum(&endpoint, 1, "endpoint")?;
        let e = &required(engine, "engine")?.engine;
        let body = required_str(request_json, "request_json")?;
        let Some(cb) = on_json else {
            return fail(WOOLLY_ERR_NULL_ARGUMENT, "on_json is NULL");
        };
        if e.is_engine_thread() {
            return fail(
                WOOLLY_ERR_BUSY,
                "woolly_engine_openai called from the engine's own event callback would wait \
                 for itself",
            );
        }
        let plan = plan(endpoint, body, e.model(), e.context_size())?;
        let (request, mut responder) = plan.into_engine();
        let (tx, rx) = std::sync::mpsc::channel();
        let id = e.submit_with(
            request,
            Box::new(move |ev| {
                let end = !matches!(ev, woolly_core::engine::Event::Token { .. });
                let _ = tx.send((responder.event(ev), end));
            }),
        )?;
        let mut stopped = false;
        while let Ok((r, end)) = rx.recv() {
            match r {
                Ok(values) => {
                    for v in values {
                        if !stopped && !send(cb, &v, user_data) {
                            stopped = true;
                            e.cancel(id);
                        }
                    }
                }
                // The caller's own stop ends in Cancelled: that is the reply as it stands.
                Err(err) if stopped && err.kind() == woolly_core::ErrorKind::Cancelled => {}
                Err(err) => return Err(err.into()),
            }
            if end {
                break;
            }
        }
        Ok(())
    })
}
