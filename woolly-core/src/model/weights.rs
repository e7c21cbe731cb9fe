//! A model's weights as its file stores them: matrices located in the mapping, vectors read.

use crate::backend::Matrix;
use crate::gguf::GgufFile;
use crate::quant;
use crate::{Error, Result};

/// The matrix `name`, which must have `cols` columns and `rows` rows (GGML dims `[cols, rows]`)
/// and a type Woolly can compute with.
pub fn matrix(f: &GgufFile, name: &str, cols: usize, rows: usize) -> Result<Matrix> {
    let t = f.require_tensor(name)?;
    let ok_shape = t.dims.len() == 2 && t.dims[0] == cols as u64 && t.dims[1] == rows as u64
        || (rows == 1 && t.dims.len() == 1 && t.dims[0] == cols as u64);
    if !ok_shape {
        return Err(Error::InvalidModel(format!(
            "tensor `{name}` has shape {:?}, expected [{cols}, {rows}]",
            t.dims
        )));
    }
    if !t.ggml_type.is_computable() {
        return Err(Error::Unsupported(format!(
            "tensor `{name}` has type {}, which Woolly cannot compute with yet",
            t.ggml_type
        )));
    }
    Ok(Matrix::new(
        t.ggml_type,
        rows,
        cols,
        t.offset as usize,
        t.size as usize,
    ))
}

/// The matrix `name` when present.
pub fn optional_matrix(
    f: &GgufFile,
    name: &str,
    cols: usize,
    rows: usize,
) -> Result<Option<Matrix>> {
    match f.tensor(name) {
        None => Ok(None),
        Some(_) => matrix(f, name, cols, rows).map(Some),
    }
}

/// The vector `name` of `len` elements, dequantized to f32 (norm weights, biases).
pub fn vector(f: &GgufFile, name: &str, len: usize) -> Result<Vec<f32>> {
    let m = matrix(f, name, len, 1)?;
    let mut out = vec![0f32; len];
    quant::dequantize_row(m.ty, m.data(f.bytes()), &mut out)?;
    Ok(out)
}

/// The vector `name` when present.
pub fn optional_vector(f: &GgufFile, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
    match f.tensor(name) {
        None => Ok(None),
        Some(_) => vector(f, name, len).map(Some),
    }
}
