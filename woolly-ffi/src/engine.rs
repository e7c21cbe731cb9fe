//! The engine through the C ABI: many requests on one model, batched, by priority and
//! deadline, each cancellable by id.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use woolly_core::engine::{Engine, EngineParams, Event, Priority, Request};
use woolly_core::generate::{ChatMessage, KvPrecision};

use crate::boundary::{
    check_enum, clear_out_handle, fail, free_handle, guard, message_cstring, put_handle, required,
    required_str, status_of, text_ptr, write_optional, write_string, Failure, UserData,
};
use crate::generate::{
    generate_params, with_logprobs, woolly_generate_default_params, woolly_generate_params,
    woolly_result, woolly_token_callback, woolly_token_logprobs,
};
use crate::model::woolly_model;
use crate::session::woolly_kv_precision;
use crate::status::woolly_status;
use crate::status::woolly_status::*;

/// How urgent a request is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_priority {
    WOOLLY_PRIORITY_LOW = 0,
    WOOLLY_PRIORITY_NORMAL = 1,
    WOOLLY_PRIORITY_HIGH = 2,
    WOOLLY_PRIORITY_CRITICAL = 3,
}

/// How an engine runs. Start from [`woolly_engine_default_params`]; 0 in a field means its
/// default.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct woolly_engine_params {
    /// Most sequences in one step (16).
    pub max_batch_size: u32,
    /// Most requests running at once, each with a KV cache of `context_size` (16).
    pub max_concurrent: u32,
    /// Most requests waiting; beyond it submissions fail with `WOOLLY_ERR_BUSY` (256).
    pub queue_capacity: u32,
    /// Prompt tokens read per step (256).
    pub prefill_chunk: u32,
    /// When idle, how long a new request may wait for others to share its first step (0).
    pub max_latency_ms: u32,
    /// Context of each sequence (the smaller of 4096 and the model's).
    pub context_size: u32,
    pub kv_precision: woolly_kv_precision,
    /// Threads, the engine's own included (Woolly's policy for batched work).
    pub n_threads: u32,
}

/// The defaults (all zero: see each field).
#[no_mangle]
pub extern "C" fn woolly_engine_default_params() -> woolly_engine_params {
    woolly_engine_params {
        max_batch_size: 0,
        max_concurrent: 0,
        queue_capacity: 0,
        prefill_chunk: 0,
        max_latency_ms: 0,
        context_size: 0,
        kv_precision: woolly_kv_precision::WOOLLY_KV_F16,
        n_threads: 0,
    }
}

/// How to run one request. Start from [`woolly_request_default_params`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct woolly_request_params {
    /// What to generate (`generate.chat` renders the prompt as one user message).
    pub generate: woolly_generate_params,
    pub priority: woolly_priority,
    /// Someone waits for the first token: ahead of its priority's others, and urgent.
    pub latency_sensitive: bool,
    /// The request fails with `WOOLLY_ERR_DEADLINE_EXCEEDED` unless it finishes within this
    /// many milliseconds of its submission (0: no deadline).
    pub timeout_ms: u32,
}

/// Defaults: `woolly_generate_default_params()`, Normal priority, no deadline.
#[no_mangle]
pub extern "C" fn woolly_request_default_params() -> woolly_request_params {
    woolly_request_params {
        generate: woolly_generate_default_params(),
        priority: woolly_priority::WOOLLY_PRIORITY_NORMAL,
        latency_sensitive: false,
        timeout_ms: 0,
    }
}

/// What an event reports.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_event_kind {
    /// A generated token: `token`, and `text`/`text_len` (the text it made final, maybe empty).
    WOOLLY_EVENT_TOKEN = 0,
    /// The request finished: `result`.
    WOOLLY_EVENT_DONE = 1,
    /// The request failed, was cancelled or expired: `status` and `message`.
    WOOLLY_EVENT_ERROR = 2,
}

/// One event of a request, valid only during the callback (copy what you keep). Woolly
/// writes it and passes it by pointer, so fields are added only at its end.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct woolly_event {
    pub kind: woolly_event_kind,
    pub request_id: u64,
    pub token: i32,
    /// Not NUL-terminated; `text_len` bytes of UTF-8 (when 0, a valid empty string, never NULL).
    pub text: *const c_char,
    pub text_len: usize,
    /// `WOOLLY_OK`, or the failure of an ERROR event.
    pub status: woolly_status,
    /// NUL-terminated message of an ERROR event ("" otherwise).
    pub message: *const c_char,
    /// The figures of a DONE event.
    pub result: woolly_result,
    /// A TOKEN event's log probabilities when the request asked for them (`logprobs` 0 to 20
    /// in its params), else NULL; what [`woolly_current_logprobs`] returns during the callback.
    /// Valid only during the callback. (Added in ABI 5.)
    pub logprobs: *const woolly_token_logprobs,
}

/// Receives a request's events: tokens, then exactly one DONE or ERROR. Called on the engine's
/// thread (never the submitting one); keep it short. From it, [`woolly_engine_submit`] and
/// [`woolly_engine_cancel`] work, [`woolly_engine_generate`] on the same engine returns
/// `WOOLLY_ERR_BUSY` (it would wait for itself), and [`woolly_engine_free`] of the same engine
/// returns at once, the engine stopping when the callback returns.
pub type woolly_event_callback =
    Option<extern "C" fn(event: *const woolly_event, user_data: *mut c_void)>;

/// One model serving many requests (opaque). Thread-safe: submit and cancel from any thread;
/// a long prompt being prepared (tokenized, its template rendered) holds up no other call.
pub struct woolly_engine {
    pub(crate) engine: Engine,
}

/// Starts an engine on `model` into `*out_engine` (NULL on failure). The engine keeps the
/// model alive; free it with [`woolly_engine_free`].
///
/// # Safety
/// `model` a live handle; `out_engine` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_engine_create(
    model: *const woolly_model,
    params: woolly_engine_params,
    out_engine: *mut *mut woolly_engine,
) -> woolly_status {
    guard(|| {
        clear_out_handle(out_engine, "out_engine")?;
        let m = required(model, "model")?;
        check_enum(&params.kv_precision, 1, "kv_precision")?;
        let d = EngineParams::default();
        let or = |v: u32, default: usize| if v == 0 { default } else { v as usize };
        let ep = EngineParams {
            max_batch_size: or(params.max_batch_size, d.max_batch_size),
            max_concurrent: or(params.max_concurrent, d.max_concurrent),
            queue_capacity: or(params.queue_capacity, d.queue_capacity),
            prefill_chunk: or(params.prefill_chunk, d.prefill_chunk),
            max_latency: Duration::from_millis(params.max_latency_ms as u64),
            context_size: params.context_size as usize,
            kv_precision: match params.kv_precision {
                woolly_kv_precision::WOOLLY_KV_F16 => KvPrecision::F16,
                woolly_kv_precision::WOOLLY_KV_F32 => KvPrecision::F32,
            },
            threads: params.n_threads as usize,
        };
        let engine = Engine::new(m.model.clone(), ep)?;
        put_handle(out_engine, woolly_engine { engine });
        Ok(())
    })
}

/// Stops an engine (NULL is allowed): every request still waiting or running ends with an
/// ERROR event (`WOOLLY_ERR_CANCELLED`) before this returns. From one of the engine's own
/// event callbacks it returns at once instead (the handle is gone; the engine's thread ends
/// the other requests the same way once the callback returns, and the callback's own request
/// gets no further event after an ERROR).
///
/// # Safety
/// `engine` NULL or a handle from [`woolly_engine_create`] not freed before.
#[no_mangle]
pub unsafe extern "C" fn woolly_engine_free(engine: *mut woolly_engine) {
    // SAFETY: the caller's promise, as documented.
    unsafe { free_handle(engine) }
}

fn request(prompt: *const c_char, params: &woolly_request_params) -> Result<Request, Failure> {
    let text = required_str(prompt, "prompt")?;
    check_enum(&params.priority, 3, "priority")?;
    let gp = generate_params(&params.generate)?;
    let mut r = if params.generate.chat {
        Request::chat(vec![ChatMessage::new("user", text)], gp)
    } else {
        Request::text(text, gp)
    };
    r.priority = match params.priority {
        woolly_priority::WOOLLY_PRIORITY_LOW => Priority::Low,
        woolly_priority::WOOLLY_PRIORITY_NORMAL => Priority::Normal,
        woolly_priority::WOOLLY_PRIORITY_HIGH => Priority::High,
        woolly_priority::WOOLLY_PRIORITY_CRITICAL => Priority::Critical,
    };
    r.latency_sensitive = params.latency_sensitive;
    if params.timeout_ms > 0 {
        r = r.with_timeout(Duration::from_millis(params.timeout_ms as u64));
    }
    Ok(r)
}

/// Delivers `ev` to a C callback as a [`woolly_event`].
fn deliver(cb: woolly_event_callback, ud: &UserData, id: u64, ev: &Event) {
    let Some(f) = cb else { return };
    let empty = c"";
    let mut out = woolly_event {
        kind: woolly_event_kind::WOOLLY_EVENT_TOKEN,
        request_id: id,
        token: -1,
        text: empty.as_ptr(),
        text_len: 0,
        status: WOOLLY_OK,
        message: empty.as_ptr(),
        result: woolly_result::none(),
        logprobs: std::ptr::null(),
    };
    let message;
    match ev {
        Event::Token {
            id: tok,
            text,
            logprob,
            ..
        } => {
            out.token = *tok as i32;
            out.text = text_ptr(text);
            out.text_len = text.len();
            with_logprobs(logprob.as_ref(), |lp| {
                out.logprobs = lp;
                f(&out, ud.get())
            });
            return;
        }
        Event::Done(g) => {
            out.kind = woolly_event_kind::WOOLLY_EVENT_DONE;
            out.result = woolly_result::from(g);
            out.text = text_ptr(&g.text);
            out.text_len = g.text.len();
        }
        Event::Error(e) => {
            out.kind = woolly_event_kind::WOOLLY_EVENT_ERROR;
            out.status = status_of(e.kind());
            message = message_cstring(&e.to_string());
            out.message = message.as_ptr();
            f(&out, ud.get());
            return;
        }
    }
    f(&out, ud.get());
}

/// Submits `prompt` with `params`; its events go to `callback` (may be NULL) with
/// `user_data`, on the engine's thread; `*out_id` (may be NULL) gets its id for
/// [`woolly_engine_cancel`]. Fails at once, and never calls `callback`, with `WOOLLY_ERR_BUSY`
/// (queue full), `WOOLLY_ERR_DEADLINE_EXCEEDED`, `WOOLLY_ERR_CONTEXT_OVERFLOW` or an argument
/// error; otherwise exactly one DONE or ERROR event ends the request.
///
/// # Safety
/// `engine` a live handle; `prompt` a NUL-terminated string; `user_data` valid until the last
/// event; `out_id` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_engine_submit(
    engine: *const woolly_engine,
    prompt: *const c_char,
    params: woolly_request_params,
    callback: woolly_event_callback,
    user_data: *mut c_void,
    out_id: *mut u64,
) -> woolly_status {
    guard(|| {
        let e = required(engine, "engine")?;
        let req = request(prompt, &params)?;
        let ud = UserData(user_data);
        // Tokenizing and rendering take no lock of the engine's; the id is known before the
        // request is queued, so the sink has it from the first event.
        let prepared = e.engine.prepare(req)?;
        let id = prepared.id();
        let sink = Box::new(move |ev: Event| {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                deliver(callback, &ud, id, &ev)
            }));
        });
        e.engine.enqueue(prepared, sink)?;
        write_optional(out_id, id);
        Ok(())
    })
}

/// Cancels request `id` (from any thread): it ends with an ERROR event
/// (`WOOLLY_ERR_CANCELLED`) within a step, and its slot goes to the next request. No effect
/// (still `WOOLLY_OK`) when it already ended.
///
/// # Safety
/// `engine` a live handle.
#[no_mangle]
pub unsafe extern "C" fn woolly_engine_cancel(
    engine: *const woolly_engine,
    id: u64,
) -> woolly_status {
    guard(|| {
        let e = required(engine, "engine")?;
        e.engine.cancel(id);
        Ok(())
    })
}

/// Submits `prompt` and waits for its end, streaming tokens to `on_token` (may be NULL; its
/// return value is ignored: cancel with [`woolly_engine_cancel`] and the id written to
/// `*out_id` (may be NULL) as soon as the request is queued). `*out_result` (may be NULL) gets
/// the figures. Returns the request's status (`WOOLLY_ERR_CANCELLED`,
/// `WOOLLY_ERR_DEADLINE_EXCEEDED`, `WOOLLY_ERR_BUSY`, ...); `WOOLLY_ERR_BUSY` at once, with
/// nothing queued, when called from an event callback of the same engine (it would wait for
/// itself: use [`woolly_engine_submit`] there).
///
/// # Safety
/// As [`woolly_engine_submit`]; `out_result` NULL or writable. `on_token` runs on the engine's
/// thread.
#[no_mangle]
pub unsafe extern "C" fn woolly_engine_generate(
    engine: *const woolly_engine,
    prompt: *const c_char,
    params: woolly_request_params,
    on_token: woolly_token_callback,
    user_data: *mut c_void,
    out_id: *mut u64,
    out_result: *mut woolly_result,
) -> woolly_status {
    guard(|| {
        let e = required(engine, "engine")?;
        if e.engine.is_engine_thread() {
            return fail(
                WOOLLY_ERR_BUSY,
                "woolly_engine_generate called from an event callback of the same engine \
                 would wait for itself; use woolly_engine_submit there",
            );
        }
        let req = request(prompt, &params)?;
        let prepared = e.engine.prepare(req)?;
        let id = prepared.id();
        // The sink owns the sending end and this call the receiving one: neither touches
        // memory of the other after this call returns (no waiter on this stack).
        let (tx, rx) = std::sync::mpsc::channel::<Result<woolly_result, woolly_core::Error>>();
        let ud = UserData(user_data);
        let sink = Box::new(move |ev: Event| {
            let end = match ev {
                Event::Token {
                    id: tok,
                    text,
                    logprob,
                    ..
                } => {
                    if let Some(f) = on_token {
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            with_logprobs(logprob.as_ref(), |_| {
                                f(text_ptr(&text), text.len(), tok as i32, ud.get())
                            })
                        }));
                    }
                    return;
                }
                Event::Done(g) => Ok(woolly_result::from(&g)),
                Event::Error(e) => Err(e),
            };
            let _ = tx.send(end);
        });
        e.engine.enqueue(prepared, sink)?;
        write_optional(out_id, id);
        // The error becomes a status on this thread (with its memory figures, if any).
        let r = rx.recv().unwrap_or_else(|_| {
            Err(woolly_core::Error::Internal(
                "the engine dropped a request without an answer".into(),
            ))
        })?;
        write_optional(out_result, r);
        Ok(())
    })
}

/// The engine's counters (submitted, completed, failed, cancelled, deadline_exceeded,
/// rejected_busy, steps, preempted_steps, mean_batch_size, queued, active, decode_step_ms,
/// mean_queue_ms, mean_ttft_ms) and `estimated_wait_ms` for a Normal request, as JSON, written
/// like `woolly_detokenize` writes text.
///
/// # Safety
/// `engine` a live handle; `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_engine_stats_json(
    engine: *const woolly_engine,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        let e = required(engine, "engine")?;
        let mut v = serde_json::to_value(e.engine.stats()).unwrap_or_default();
        v["estimated_wait_ms"] =
            (e.engine.estimated_wait(Priority::Normal).as_secs_f64() * 1e3).into();
        write_string(&v.to_string(), buf, capacity, len)
    })
}
