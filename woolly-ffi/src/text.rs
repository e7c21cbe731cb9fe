//! Text: tokenizing and detokenizing with a model's vocabulary.

use std::ffi::c_char;

use crate::boundary::{
    fail, guard, required, required_array, required_out, required_out_array, required_str,
    write_string,
};
use crate::model::woolly_model;
use crate::status::woolly_status;
use crate::status::woolly_status::*;

/// Tokenizes the UTF-8 `text` (BOS added as the model asks; special-token text such as
/// `<start_of_turn>` parsed). Writes up to `capacity` ids to `ids` and the token count to
/// `*n_tokens`. When the ids do not fit, nothing is written to `ids`, `*n_tokens` is the count
/// needed and the result is `WOOLLY_ERR_BUFFER_TOO_SMALL` (so `capacity` 0 with `ids` NULL asks
/// for the size).
///
/// # Safety
/// `model` is a live handle; `text` a NUL-terminated string; `ids` NULL or writable for
/// `capacity` elements; `n_tokens` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_tokenize(
    model: *const woolly_model,
    text: *const c_char,
    ids: *mut i32,
    capacity: usize,
    n_tokens: *mut usize,
) -> woolly_status {
    guard(|| {
        let m = required(model, "model")?;
        let text = required_str(text, "text")?;
        let n_tokens = required_out(n_tokens, "n_tokens")?;
        let toks = m.model.tokenize(text, true, true)?;
        *n_tokens = toks.len();
        if toks.len() > capacity {
            return fail(
                WOOLLY_ERR_BUFFER_TOO_SMALL,
                format!(
                    "{} tokens do not fit in a capacity of {capacity}",
                    toks.len()
                ),
            );
        }
        // `ids` holds `capacity >= toks.len()` elements.
        let out = required_out_array(ids, toks.len(), "ids")?;
        for (o, &t) in out.iter_mut().zip(&toks) {
            *o = t as i32;
        }
        Ok(())
    })
}

/// Turns `n_ids` token ids into UTF-8 text (control tokens such as BOS render as nothing) and writes
/// it, NUL-terminated, to `buf`. `*len` receives the text's length in bytes without the NUL.
/// The text itself may contain NUL bytes (the byte token `<0x00>` decodes to one, as it does in
/// Python and Node): `*len` is authoritative, not `strlen`.
/// When `capacity` cannot hold the text and its NUL, nothing is written to `buf` and the result
/// is `WOOLLY_ERR_BUFFER_TOO_SMALL` (so `capacity` 0 with `buf` NULL asks for the size). Bytes
/// that are not valid UTF-8 on their own (a character split across the ids) become U+FFFD.
///
/// # Safety
/// `model` is a live handle; `ids` readable for `n_ids` elements (NULL when `n_ids` is 0);
/// `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_detokenize(
    model: *const woolly_model,
    ids: *const i32,
    n_ids: usize,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        let m = required(model, "model")?;
        let ids = required_array(ids, n_ids, "ids is NULL while n_ids > 0", usize::MAX, "ids")?;
        let vocab = m.model.hparams().n_vocab;
        let mut toks = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            if id < 0 || id as usize >= vocab {
                return fail(
                    WOOLLY_ERR_INVALID_ARGUMENT,
                    format!("ids[{i}] = {id} is outside the vocabulary of {vocab}"),
                );
            }
            toks.push(id as u32);
        }
        let text = m.model.detokenize(&toks)?;
        write_string(&text, buf, capacity, len)
    })
}
