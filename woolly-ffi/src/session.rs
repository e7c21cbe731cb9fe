//! Sessions: `woolly_session`, a conversation with its own KV cache and threads, and chat.

use std::ffi::{c_char, c_void};
use std::sync::Mutex;

use woolly_core::generate::{CancelHandle, ChatMessage, Prompt, Session, SessionParams};

use crate::boundary::{
    check_enum, clear_out_handle, fail, free_handle, guard, optional, put_handle, required,
    required_array, required_out, required_str, Failure,
};
use crate::generate::{run, woolly_generate_params, woolly_result, woolly_token_callback};
use crate::model::{woolly_model, woolly_thread_policy, ThreadSettings};
use crate::status::woolly_status;
use crate::status::woolly_status::*;

/// A conversation with its own KV cache and threads (opaque). One generation at a time per
/// session: a second call from another thread waits for the running one to end; a call from
/// the running generation's own token callback (`woolly_session_generate`, `_chat`, `_reset`)
/// returns `WOOLLY_ERR_BUSY` at once. [`woolly_abort`] and [`woolly_session_last_result`] may
/// be called from any thread (also from the callback) and never wait for a generation.
pub struct woolly_session {
    state: Mutex<SessionState>,
    /// What the last generation did (its own lock, never held during a generation).
    last: Mutex<woolly_result>,
    /// The thread running a generation on this session now ([`thread_number`]; 0: none).
    running_on: std::sync::atomic::AtomicU64,
    cancel: CancelHandle,
}

struct SessionState {
    session: Session,
}

/// A number for the calling thread, unique in the process (never 0).
fn thread_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static NUMBER: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|n| *n)
}

impl woolly_session {
    /// Whether the calling thread runs a generation on this session now (so it is inside that
    /// generation's token callback).
    fn inside_own_generation(&self) -> bool {
        self.running_on.load(std::sync::atomic::Ordering::SeqCst) == thread_number()
    }

    /// `WOOLLY_ERR_BUSY` for a call of `what` from this session's own token callback, which
    /// would wait for itself.
    fn refuse_reentry(&self, what: &str) -> Result<(), Failure> {
        if self.inside_own_generation() {
            return fail(
                WOOLLY_ERR_BUSY,
                format!(
                    "{what} called from the token callback of a generation on the same session \
                     would wait for itself; call it after the generation returns"
                ),
            );
        }
        Ok(())
    }

    /// The session's state, waiting for a generation running on another thread.
    fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_last(&self, r: woolly_result) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = r;
    }
}

/// How to open a session. Start from [`woolly_session_default_params`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct woolly_session_params {
    /// Context size in tokens (0: the smaller of 4096 and the model's).
    pub context_size: u32,
    /// Threads for both phases, the caller's included (0: chosen by `thread_policy`; at most
    /// 1024). A count above the CPUs available to the process is capped there, with a warning
    /// to the log callback (the `woolly_worker_threads` metric shows what runs).
    pub n_threads: u32,
    /// `WOOLLY_THREADS_DEFAULT`: the model's settings (`n_threads` 0 then means the model's too).
    pub thread_policy: woolly_thread_policy,
    /// Pin worker threads to distinct physical cores (Linux; off by default, as other programs
    /// on a desktop compete for the cores).
    pub pin_threads: bool,
    /// Prompt tokens per forward pass (0: 512); woolly_abort is checked between layers.
    pub batch_size: u32,
    /// How the KV cache stores keys and values.
    pub kv_precision: woolly_kv_precision,
}

/// How a session's KV cache stores keys and values.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_kv_precision {
    /// Half precision, as llama.cpp keeps it (the default).
    WOOLLY_KV_F16 = 0,
    /// Full precision: twice the memory.
    WOOLLY_KV_F32 = 1,
}

/// Defaults: context 0 (automatic), threads as the model was loaded with, no pinning,
/// batch size 512.
#[no_mangle]
pub extern "C" fn woolly_session_default_params() -> woolly_session_params {
    woolly_session_params {
        context_size: 0,
        n_threads: 0,
        thread_policy: woolly_thread_policy::WOOLLY_THREADS_DEFAULT,
        pin_threads: false,
        batch_size: 0,
        kv_precision: woolly_kv_precision::WOOLLY_KV_F16,
    }
}

/// Opens a session on `model` into `*out_session` (NULL on failure). The session keeps the model
/// alive; release it with [`woolly_session_free`].
///
/// # Safety
/// `model` is a live handle; `out_session` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_session_create(
    model: *const woolly_model,
    params: woolly_session_params,
    out_session: *mut *mut woolly_session,
) -> woolly_status {
    guard(|| {
        clear_out_handle(out_session, "out_session")?;
        let m = required(model, "model")?;
        check_enum(&params.thread_policy, 3, "thread_policy")?;
        check_enum(&params.kv_precision, 1, "kv_precision")?;
        let mut sp = SessionParams {
            context_size: params.context_size as usize,
            kv_precision: match params.kv_precision {
                woolly_kv_precision::WOOLLY_KV_F16 => woolly_core::model::KvPrecision::F16,
                woolly_kv_precision::WOOLLY_KV_F32 => woolly_core::model::KvPrecision::F32,
            },
            pin_threads: params.pin_threads,
            batch_size: match params.batch_size {
                0 => SessionParams::default().batch_size,
                n => n as usize,
            },
            ..Default::default()
        };
        ThreadSettings {
            n_threads: params.n_threads,
            policy: params.thread_policy,
        }
        .or(m.threads)
        .apply(&mut sp);
        let session = Session::new(m.model.clone(), &sp)?;
        let cancel = session.cancel_handle();
        put_handle(
            out_session,
            woolly_session {
                state: Mutex::new(SessionState { session }),
                last: Mutex::new(woolly_result::none()),
                running_on: Default::default(),
                cancel,
            },
        );
        Ok(())
    })
}

/// Releases a session (NULL is allowed). Must not be called while a generation on it runs on
/// another thread; called from that generation's own token callback it does nothing but log
/// an error (the session stays usable: free it after the generation returns).
///
/// # Safety
/// `session` is NULL or a handle from [`woolly_session_create`] not freed before.
#[no_mangle]
pub unsafe extern "C" fn woolly_session_free(session: *mut woolly_session) {
    if let Some(s) = optional(session) {
        if s.inside_own_generation() {
            woolly_core::log::log(
                woolly_core::log::Level::Error,
                "woolly_session_free called from the token callback of a generation on the same \
                 session: ignored (free it after the generation returns)",
            );
            return;
        }
    }
    // SAFETY: the caller passes NULL or a live handle from woolly_session_create.
    unsafe { free_handle(session) }
}

/// Runs `f` on a session handle's session, marked as running on this thread (so that a call
/// from inside its own callbacks is refused instead of waiting for itself).
pub(crate) fn with_session<T>(
    session: *const woolly_session,
    what: &str,
    f: impl FnOnce(&woolly_session, &mut Session) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let s = required(session, "session")?;
    s.refuse_reentry(what)?;
    let mut state = s.lock();
    /// Marks the session as running on this thread while it lives.
    struct Running<'a>(&'a std::sync::atomic::AtomicU64);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            self.0.store(0, std::sync::atomic::Ordering::SeqCst);
        }
    }
    s.running_on
        .store(thread_number(), std::sync::atomic::Ordering::SeqCst);
    let _running = Running(&s.running_on);
    f(s, &mut state.session)
}

/// Runs `prompt` on a session handle and records the result.
fn session_run(
    session: *const woolly_session,
    prompt: impl FnOnce() -> Result<Prompt, Failure>,
    params: &woolly_generate_params,
    on_token: woolly_token_callback,
    user_data: *mut c_void,
) -> Result<(), Failure> {
    with_session(
        session,
        "woolly_session_generate (or _chat)",
        |s, session| {
            s.set_last(woolly_result::none());
            let prompt = prompt()?;
            let g = run(session, prompt, params, on_token, user_data)?;
            s.set_last(woolly_result::from(&g));
            Ok(())
        },
    )
}

/// Generates on `session` (its cache keeps the conversation's shared prefix between calls),
/// streaming to `on_token` (may be NULL). Returns `WOOLLY_ERR_CANCELLED` after
/// [`woolly_abort`].
///
/// # Safety
/// As for [`woolly_generate`], with `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn woolly_session_generate(
    session: *const woolly_session,
    prompt: *const c_char,
    params: woolly_generate_params,
    on_token: woolly_token_callback,
    user_data: *mut c_void,
) -> woolly_status {
    guard(|| {
        session_run(
            session,
            || Ok(Prompt::Text(required_str(prompt, "prompt")?.to_string())),
            &params,
            on_token,
            user_data,
        )
    })
}

/// One chat message: a role (`"system"`, `"user"`, `"assistant"`) and its content, both
/// NUL-terminated UTF-8.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct woolly_chat_message {
    pub role: *const c_char,
    pub content: *const c_char,
}

/// Generates the assistant's reply to `n_messages` messages, rendered with the model's chat
/// template (its own Jinja template, or the built-in format of its family), on `session`.
/// `params.chat` is ignored. Returns `WOOLLY_ERR_CANCELLED` after [`woolly_abort`].
///
/// # Safety
/// `session` is a live handle; `messages` readable for `n_messages` elements whose strings are
/// NUL-terminated; the pointers inside `params` valid as documented there.
#[no_mangle]
pub unsafe extern "C" fn woolly_session_chat(
    session: *const woolly_session,
    messages: *const woolly_chat_message,
    n_messages: usize,
    params: woolly_generate_params,
    on_token: woolly_token_callback,
    user_data: *mut c_void,
) -> woolly_status {
    guard(|| {
        session_run(
            session,
            || {
                if n_messages == 0 {
                    return fail(WOOLLY_ERR_INVALID_ARGUMENT, "no messages");
                }
                let msgs = required_array(
                    messages,
                    n_messages,
                    "messages is NULL",
                    1 << 20,
                    "messages",
                )?;
                let mut out = Vec::with_capacity(msgs.len());
                for (i, m) in msgs.iter().enumerate() {
                    out.push(ChatMessage::new(
                        required_str(m.role, &format!("messages[{i}].role"))?,
                        required_str(m.content, &format!("messages[{i}].content"))?,
                    ));
                }
                Ok(Prompt::Messages(out))
            },
            &params,
            on_token,
            user_data,
        )
    })
}

/// Writes what the last generation on `session` did to `*out` (`stop_reason`
/// `WOOLLY_STOP_NONE` when the last call failed, none has run, or one runs now). Never waits
/// for a running generation; may be called from any thread, its token callback included.
///
/// # Safety
/// `session` is a live handle; `out` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_session_last_result(
    session: *const woolly_session,
    out: *mut woolly_result,
) -> woolly_status {
    guard(|| {
        let s = required(session, "session")?;
        let out = required_out(out, "out")?;
        *out = *s.last.lock().unwrap_or_else(|e| e.into_inner());
        Ok(())
    })
}

/// Forgets the conversation kept in `session`'s cache (the next prompt is computed from the
/// start). Waits for a generation running on it on another thread to end; from that
/// generation's own token callback returns `WOOLLY_ERR_BUSY` (nothing reset).
///
/// # Safety
/// `session` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn woolly_session_reset(session: *const woolly_session) -> woolly_status {
    guard(|| {
        let s = required(session, "session")?;
        s.refuse_reentry("woolly_session_reset")?;
        s.lock().session.reset();
        Ok(())
    })
}

/// Stops the generation running on `session`, from any thread (also in the middle of a long
/// prompt): that call returns `WOOLLY_ERR_CANCELLED` within one layer's work. No effect when
/// nothing runs. NULL is allowed.
///
/// # Safety
/// `session` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn woolly_abort(session: *const woolly_session) {
    let _ = guard(|| {
        if let Some(s) = optional(session) {
            s.cancel.cancel();
        }
        Ok(())
    });
}
