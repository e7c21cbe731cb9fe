//! The one place where Woolly's errors become Python exceptions. The classes live in
//! `woolly/_errors.py` (so that they can also derive from the built-in ones, such as `OSError`);
//! each carries `code` (the C status name) and `status` (its number).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use woolly_core::{Error, ErrorKind};

fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidArgument => "InvalidArgumentError",
        ErrorKind::Io => "WoollyIOError",
        ErrorKind::InvalidModel => "InvalidModelError",
        ErrorKind::Unsupported => "UnsupportedError",
        ErrorKind::ModelNotFound => "ModelNotFoundError",
        ErrorKind::Tokenizer => "TokenizerError",
        ErrorKind::ContextOverflow => "ContextOverflowError",
        ErrorKind::Cancelled => "CancelledError",
        ErrorKind::Internal => "InternalError",
        ErrorKind::PermissionDenied => "PermissionDeniedError",
        ErrorKind::InsufficientMemory => "InsufficientMemoryError",
        ErrorKind::Busy => "BusyError",
        ErrorKind::DeadlineExceeded => "DeadlineExceededError",
        ErrorKind::OutOfDeviceMemory => "OutOfDeviceMemoryError",
        ErrorKind::Device => "DeviceError",
    }
}

/// The Python exception for `e`.
pub fn to_py(py: Python<'_>, e: &Error) -> PyErr {
    let kind = e.kind();
    let made = (|| -> PyResult<PyErr> {
        let cls = py.import("woolly._errors")?.getattr(class_name(kind))?;
        let exc = cls.call1((e.to_string(), kind.code(), kind.status()))?;
        if let Some(serde_json::Value::Object(fields)) = e.details() {
            for (k, v) in fields {
                match v {
                    serde_json::Value::Bool(b) => exc.setattr(k.as_str(), b)?,
                    v => exc.setattr(k.as_str(), v.as_u64())?,
                }
            }
        }
        Ok(PyErr::from_value(exc))
    })();
    made.unwrap_or_else(|import_err| {
        PyRuntimeError::new_err(format!("{e} (and woolly._errors failed: {import_err})"))
    })
}

/// `Result<T, woolly_core::Error>` to `PyResult<T>`.
pub trait IntoPy<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, Error> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, &e))
    }
}

/// An `InvalidArgumentError` with `msg`.
pub fn invalid(py: Python<'_>, msg: String) -> PyErr {
    to_py(py, &Error::InvalidArgument(msg))
}

/// An `InternalError` for a failure that is Woolly's (a thread that cannot start, a value
/// that cannot be serialized).
pub fn internal(py: Python<'_>, e: impl std::fmt::Display) -> PyErr {
    to_py(py, &Error::Internal(e.to_string()))
}
