//! Text and tokens: tokenizing, detokenizing (ids checked against the vocabulary) and the
//! model's chat template. The work runs with the GIL released.

use pyo3::prelude::*;
use woolly_core::model::Model;

use crate::errors::{invalid, IntoPy};
use crate::options::chat_messages;

/// Token ids of `text`.
pub fn tokenize(
    py: Python<'_>,
    model: &Model,
    text: &str,
    add_special: bool,
    parse_special: bool,
) -> PyResult<Vec<u32>> {
    py.detach(|| model.tokenize(text, add_special, parse_special))
        .py_err(py)
}

/// Text of `ids`; an id outside the vocabulary is an `InvalidArgumentError`.
pub fn detokenize(py: Python<'_>, model: &Model, ids: &[i64]) -> PyResult<String> {
    let vocab = model.hparams().n_vocab;
    let mut toks = Vec::with_capacity(ids.len());
    for (i, &id) in ids.iter().enumerate() {
        if id < 0 || id as u64 >= vocab as u64 {
            return Err(invalid(
                py,
                format!("ids[{i}] = {id} is outside the vocabulary of {vocab}"),
            ));
        }
        toks.push(id as u32);
    }
    py.detach(|| model.detokenize(&toks)).py_err(py)
}

/// The prompt text that `messages` become under the model's chat template.
pub fn apply_chat_template(
    py: Python<'_>,
    model: &Model,
    messages: Vec<(String, String)>,
) -> PyResult<String> {
    model
        .apply_chat_template(&chat_messages(messages))
        .py_err(py)
}
