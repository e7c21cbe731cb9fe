//! Memory: sizes, what a load would take, and the machine's and policy's figures.

use std::path::PathBuf;

use pyo3::prelude::*;
use woolly_core::model::Model;
use woolly_core::policy::memory;

use crate::errors::{self, IntoPy};
use crate::options::{memory_policy, LoadOptions};

/// Bytes of a size such as `"512MB"`, `"1.5GiB"` or `"1048576"`.
#[pyfunction]
pub fn parse_size(py: Python<'_>, text: &str) -> PyResult<u64> {
    memory::parse_size(text).py_err(py)
}

/// What loading the model at `path` with `options` would take (from its header), as JSON.
#[pyfunction]
#[pyo3(signature = (path, options))]
pub fn estimate_json(
    py: Python<'_>,
    path: Option<PathBuf>,
    options: PyRef<'_, LoadOptions>,
) -> PyResult<String> {
    let params = &options.model;
    let est = py
        .detach(|| Model::estimate(path.as_deref(), params))
        .py_err(py)?;
    serde_json::to_string(&est).map_err(|e| errors::internal(py, e))
}

/// The machine's memory, the policy's figures and this process, as JSON.
#[pyfunction]
#[pyo3(signature = (memory_budget, memory_reserve, pressure_threshold))]
pub fn memory_report_json(
    py: Python<'_>,
    memory_budget: Option<u64>,
    memory_reserve: Option<u64>,
    pressure_threshold: Option<f64>,
) -> PyResult<String> {
    let policy = memory_policy(py, memory_budget, memory_reserve, pressure_threshold)?;
    Ok(memory::report(&policy).to_string())
}
