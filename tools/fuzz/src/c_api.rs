//! The C API's argument handling, driven from Rust through the same `extern "C"` functions a C
//! program calls: NULL and dangling-free pointer choices, short buffers, strings that are not
//! UTF-8, absurd sizes and floats. Every call must return a status (never panic or crash), and
//! the size a `WOOLLY_ERR_BUFFER_TOO_SMALL` asks for must then be enough.

use std::ffi::{c_char, CStr, CString};
use std::sync::OnceLock;

use woolly::*;

/// A model handle shared by every input (the synthetic model; loading is not what this target
/// fuzzes).
struct Shared(*mut woolly_model);
// SAFETY: model handles are documented as usable from any thread.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

fn model() -> *const woolly_model {
    static M: OnceLock<Shared> = OnceLock::new();
    M.get_or_init(|| {
        let path = CString::new(woolly_core::testing::synthetic_model().to_str().unwrap()).unwrap();
        let mut params = woolly_model_default_params();
        params.preload = woolly_preload::WOOLLY_PRELOAD_LAZY;
        let mut m = std::ptr::null_mut();
        // SAFETY: valid string and out-pointer.
        let st = unsafe { woolly_model_load(path.as_ptr(), params, &mut m) };
        assert_eq!(st, woolly_status::WOOLLY_OK, "the synthetic model loads");
        Shared(m)
    })
    .0
}

/// Reads the input as a sequence of small decisions.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn f32(&mut self) -> f32 {
        f32::from_bits(self.u32())
    }
    /// A string of up to 64 bytes without NUL (so possibly invalid UTF-8).
    fn cstring(&mut self) -> CString {
        let n = (self.byte() % 64) as usize;
        let bytes: Vec<u8> = (0..n).map(|_| self.byte()).filter(|&b| b != 0).collect();
        CString::new(bytes).unwrap()
    }
    fn empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The status of a call must be a known one, and its error text readable.
fn check(st: woolly_status) {
    // SAFETY: both return static or thread-local NUL-terminated strings.
    let name = unsafe { CStr::from_ptr(woolly_status_name(st)) };
    assert_ne!(name.to_bytes(), b"WOOLLY_STATUS_UNKNOWN", "{st:?}");
    if st != woolly_status::WOOLLY_OK {
        let msg = unsafe { CStr::from_ptr(woolly_last_error()) };
        assert!(!msg.to_bytes().is_empty(), "{st:?} without a message");
    }
}

extern "C" fn on_token(
    _piece: *const c_char,
    _len: usize,
    _id: i32,
    user: *mut std::ffi::c_void,
) -> bool {
    // SAFETY: user points to the caller's counter.
    let n = unsafe { &mut *(user as *mut u32) };
    *n += 1;
    *n < 3
}

/// One call per decision until the input runs out.
pub fn c_api(data: &[u8]) {
    let mut inp = Input(data);
    let m = model();
    let mut ops = 0;
    while !inp.empty() && ops < 16 {
        ops += 1;
        let which = inp.byte();
        let model_arg = if which & 0x80 != 0 {
            std::ptr::null()
        } else {
            m
        };
        match which % 8 {
            0 => {
                let text = inp.cstring();
                let cap = (inp.byte() % 40) as usize;
                let mut ids = vec![0i32; cap];
                let ids_ptr = if inp.byte() % 4 == 0 {
                    std::ptr::null_mut()
                } else {
                    ids.as_mut_ptr()
                };
                let mut n = 0usize;
                let n_ptr: *mut usize = if inp.byte() % 8 == 0 {
                    std::ptr::null_mut()
                } else {
                    &mut n
                };
                let text_ptr = if inp.byte() % 8 == 0 {
                    std::ptr::null()
                } else {
                    text.as_ptr()
                };
                // SAFETY: every pointer is NULL or valid for what it claims.
                let st = unsafe {
                    woolly_tokenize(
                        model_arg,
                        text_ptr,
                        ids_ptr,
                        if ids_ptr.is_null() { 0 } else { cap },
                        n_ptr,
                    )
                };
                check(st);
                if st == woolly_status::WOOLLY_ERR_BUFFER_TOO_SMALL && !model_arg.is_null() {
                    let mut ids = vec![0i32; n];
                    let mut n2 = 0usize;
                    let st = unsafe {
                        woolly_tokenize(model_arg, text.as_ptr(), ids.as_mut_ptr(), n, &mut n2)
                    };
                    assert_eq!(st, woolly_status::WOOLLY_OK, "the size asked for is enough");
                    assert_eq!(n2, n);
                }
            }
            1 => {
                let n_ids = (inp.byte() % 16) as usize;
                let ids: Vec<i32> = (0..n_ids)
                    .map(|_| {
                        let v = inp.u32() as i32;
                        if inp.byte() % 2 == 0 {
                            v.rem_euclid(300)
                        } else {
                            v
                        }
                    })
                    .collect();
                let cap = (inp.byte() % 64) as usize;
                let mut buf = vec![0u8; cap];
                let buf_ptr = if cap == 0 || inp.byte() % 4 == 0 {
                    std::ptr::null_mut()
                } else {
                    buf.as_mut_ptr() as *mut c_char
                };
                let mut len = 0usize;
                let ids_ptr = if n_ids == 0 && inp.byte() % 2 == 0 {
                    std::ptr::null()
                } else {
                    ids.as_ptr()
                };
                // SAFETY: as above.
                let st = unsafe {
                    woolly_detokenize(
                        model_arg,
                        ids_ptr,
                        n_ids,
                        buf_ptr,
                        if buf_ptr.is_null() { 0 } else { cap },
                        &mut len,
                    )
                };
                check(st);
                if st == woolly_status::WOOLLY_OK && !buf_ptr.is_null() {
                    assert_eq!(buf[len], 0, "NUL-terminated");
                    assert!(std::str::from_utf8(&buf[..len]).is_ok(), "UTF-8 out");
                }
                if st == woolly_status::WOOLLY_ERR_BUFFER_TOO_SMALL {
                    let mut buf = vec![0u8; len + 1];
                    let mut len2 = 0usize;
                    let st = unsafe {
                        woolly_detokenize(
                            model_arg,
                            ids.as_ptr(),
                            n_ids,
                            buf.as_mut_ptr() as *mut c_char,
                            len + 1,
                            &mut len2,
                        )
                    };
                    assert_eq!(st, woolly_status::WOOLLY_OK, "the size asked for is enough");
                }
            }
            2 | 3 => {
                let mut sp = woolly_session_default_params();
                sp.context_size = match inp.byte() % 4 {
                    0 => inp.u32(),
                    1 => inp.u32() % 300,
                    _ => 0,
                };
                sp.n_threads = if inp.byte() % 2 == 0 {
                    inp.u32()
                } else {
                    inp.u32() % 4
                };
                sp.batch_size = if inp.byte() % 2 == 0 {
                    inp.u32()
                } else {
                    inp.u32() % 70
                };
                let mut s = std::ptr::null_mut();
                // SAFETY: as above.
                let st = unsafe { woolly_session_create(model_arg, sp, &mut s) };
                check(st);
                if st != woolly_status::WOOLLY_OK {
                    assert!(s.is_null());
                    continue;
                }
                let mut gp = woolly_generate_default_params();
                gp.max_tokens = inp.u32() % 4;
                gp.temperature = inp.f32();
                gp.top_k = inp.u32();
                gp.top_p = inp.f32();
                gp.min_p = inp.f32();
                gp.repeat_penalty = inp.f32();
                gp.frequency_penalty = inp.f32();
                gp.presence_penalty = inp.f32();
                gp.penalty_last_n = inp.u32();
                gp.seed = inp.u32() as u64;
                gp.ignore_eos = inp.byte() % 2 == 0;
                gp.chat = which % 8 == 3;
                let stops = [inp.cstring(), inp.cstring()];
                let stop_ptrs: Vec<*const c_char> = stops.iter().map(|s| s.as_ptr()).collect();
                let n_stop = (inp.byte() % 3) as usize;
                gp.stop = if n_stop == 0 {
                    std::ptr::null()
                } else {
                    stop_ptrs.as_ptr()
                };
                gp.n_stop = n_stop;
                let prompt = inp.cstring();
                let mut count = 0u32;
                let cb: woolly_token_callback = if inp.byte() % 2 == 0 {
                    Some(on_token)
                } else {
                    None
                };
                let st = if inp.byte() % 3 == 0 {
                    let role = inp.cstring();
                    let msgs = [woolly_chat_message {
                        role: if inp.byte() % 5 == 0 {
                            std::ptr::null()
                        } else {
                            role.as_ptr()
                        },
                        content: prompt.as_ptr(),
                    }];
                    let n = (inp.byte() % 2) as usize;
                    unsafe {
                        woolly_session_chat(
                            s,
                            msgs.as_ptr(),
                            n,
                            gp,
                            cb,
                            &mut count as *mut u32 as *mut _,
                        )
                    }
                } else {
                    unsafe {
                        woolly_session_generate(
                            s,
                            prompt.as_ptr(),
                            gp,
                            cb,
                            &mut count as *mut u32 as *mut _,
                        )
                    }
                };
                check(st);
                let mut result = std::mem::MaybeUninit::<woolly_result>::zeroed();
                check(unsafe { woolly_session_last_result(s, result.as_mut_ptr()) });
                unsafe { woolly_session_free(s) };
            }
            4 => {
                // Loading from paths that are not model files, or NULL out-pointers.
                let name = inp.cstring();
                let mut path = b"/nonexistent-woolly/".to_vec();
                path.extend_from_slice(name.as_bytes());
                let path = CString::new(path).unwrap();
                let mut params = woolly_model_default_params();
                params.context_size = inp.u32();
                let mut out = std::ptr::null_mut();
                let out_ptr: *mut *mut woolly_model = if inp.byte() % 4 == 0 {
                    std::ptr::null_mut()
                } else {
                    &mut out
                };
                let st = unsafe { woolly_model_load(path.as_ptr(), params, out_ptr) };
                check(st);
                assert_ne!(st, woolly_status::WOOLLY_OK);
            }
            5 => {
                let cap = (inp.byte() as usize) * 16;
                let mut buf = vec![0u8; cap];
                let mut len = 0usize;
                let buf_ptr = if cap == 0 {
                    std::ptr::null_mut()
                } else {
                    buf.as_mut_ptr() as *mut c_char
                };
                let st = match inp.byte() % 3 {
                    0 => unsafe { woolly_model_info_json(model_arg, buf_ptr, cap, &mut len) },
                    1 => unsafe { woolly_model_metrics_json(model_arg, buf_ptr, cap, &mut len) },
                    _ => unsafe { woolly_model_memory_json(model_arg, buf_ptr, cap, &mut len) },
                };
                check(st);
            }
            6 => {
                let n = unsafe { woolly_model_n_vocab(model_arg) };
                assert!(if model_arg.is_null() { n == 0 } else { n > 0 });
                let _ = unsafe { woolly_model_n_ctx_train(model_arg) };
                let _ = unsafe { woolly_model_architecture(model_arg) };
            }
            _ => {
                // Free of NULL is allowed.
                unsafe {
                    woolly_model_free(std::ptr::null_mut());
                    woolly_session_free(std::ptr::null_mut());
                }
            }
        }
    }
}
