//! The error type shared by every layer of Woolly.
//!
//! Each error has an [`ErrorKind`], a stable category that the C ABI and the language bindings map to
//! their own status codes and exception classes. Messages say what went wrong and, where there is
//! something to do about it, what to do.

use std::path::PathBuf;

use crate::gguf::GgufError;

/// Stable categories of failure. Their order and meaning never change; new kinds are only appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// An argument was out of range or malformed.
    InvalidArgument,
    /// A file could not be opened or read.
    Io,
    /// The model file is not a valid GGUF file or is inconsistent with itself.
    InvalidModel,
    /// The model is valid but uses something Woolly does not support.
    Unsupported,
    /// No model was given and none was found where Woolly looks for one.
    ModelNotFound,
    /// The text or tokens could not be encoded or decoded.
    Tokenizer,
    /// The prompt and requested tokens do not fit in the context.
    ContextOverflow,
    /// The operation was cancelled by the caller.
    Cancelled,
    /// A bug inside Woolly.
    Internal,
    /// The operating system refused an operation the caller opted into (priorities, governor).
    PermissionDenied,
    /// What was asked for does not fit in the memory Woolly may use, even after evicting what
    /// it could.
    InsufficientMemory,
    /// The request queue is full; try again later.
    Busy,
    /// The request's deadline passed before it finished.
    DeadlineExceeded,
    /// A GPU ran out of memory for what was asked (the load itself offloads less instead).
    OutOfDeviceMemory,
    /// The GPU driver reported an error.
    Device,
}

impl ErrorKind {
    /// The stable name every front end uses for this kind: the C status name
    /// (`WOOLLY_ERR_IO`), the `code` of Node errors and the `code` of Python exceptions.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "WOOLLY_ERR_INVALID_ARGUMENT",
            ErrorKind::Io => "WOOLLY_ERR_IO",
            ErrorKind::InvalidModel => "WOOLLY_ERR_INVALID_MODEL",
            ErrorKind::Unsupported => "WOOLLY_ERR_UNSUPPORTED",
            ErrorKind::ModelNotFound => "WOOLLY_ERR_MODEL_NOT_FOUND",
            ErrorKind::Tokenizer => "WOOLLY_ERR_TOKENIZER",
            ErrorKind::ContextOverflow => "WOOLLY_ERR_CONTEXT_OVERFLOW",
            ErrorKind::Cancelled => "WOOLLY_ERR_CANCELLED",
            ErrorKind::Internal => "WOOLLY_ERR_INTERNAL",
            ErrorKind::PermissionDenied => "WOOLLY_ERR_PERMISSION_DENIED",
            ErrorKind::InsufficientMemory => "WOOLLY_ERR_INSUFFICIENT_MEMORY",
            ErrorKind::Busy => "WOOLLY_ERR_BUSY",
            ErrorKind::DeadlineExceeded => "WOOLLY_ERR_DEADLINE_EXCEEDED",
            ErrorKind::OutOfDeviceMemory => "WOOLLY_ERR_OUT_OF_DEVICE_MEMORY",
            ErrorKind::Device => "WOOLLY_ERR_DEVICE",
        }
    }

    /// The number of the C `woolly_status` for this kind (never changed, never reused).
    pub fn status(self) -> u32 {
        match self {
            ErrorKind::InvalidArgument => 1,
            ErrorKind::Io => 3,
            ErrorKind::InvalidModel => 4,
            ErrorKind::Unsupported => 5,
            ErrorKind::ModelNotFound => 6,
            ErrorKind::Tokenizer => 7,
            ErrorKind::ContextOverflow => 8,
            ErrorKind::Cancelled => 9,
            ErrorKind::PermissionDenied => 12,
            ErrorKind::InsufficientMemory => 13,
            ErrorKind::Busy => 14,
            ErrorKind::DeadlineExceeded => 15,
            ErrorKind::OutOfDeviceMemory => 16,
            ErrorKind::Device => 17,
            ErrorKind::Internal => 100,
        }
    }

    /// Every kind.
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::InvalidArgument,
        ErrorKind::Io,
        ErrorKind::InvalidModel,
        ErrorKind::Unsupported,
        ErrorKind::ModelNotFound,
        ErrorKind::Tokenizer,
        ErrorKind::ContextOverflow,
        ErrorKind::Cancelled,
        ErrorKind::Internal,
        ErrorKind::PermissionDenied,
        ErrorKind::InsufficientMemory,
        ErrorKind::Busy,
        ErrorKind::DeadlineExceeded,
        ErrorKind::OutOfDeviceMemory,
        ErrorKind::Device,
    ];
}

/// Every failure Woolly reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Gguf {
        path: PathBuf,
        #[source]
        source: GgufError,
    },
    /// `tried` says, in words, each place Woolly looked (paths, and the variables that were unset).
    #[error("no model file found (looked at: {}); run `make model` to install the default model, or pass a path / set WOOLLY_MODEL", tried.join("; "))]
    ModelNotFound { tried: Vec<String> },
    #[error("invalid model: {0}")]
    InvalidModel(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("the prompt ({prompt} tokens) plus max_tokens ({requested}) exceeds the context of {context} tokens; shorten the prompt, lower max_tokens or raise the context size")]
    ContextOverflow {
        prompt: usize,
        requested: usize,
        context: usize,
    },
    #[error("cancelled")]
    Cancelled,
    #[error("internal error: {0}")]
    Internal(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("not enough memory for {what}: it needs {} but only {} may be used (available memory less the reserve for other programs{}); free memory, unload a model, lower the context size or raise the budget", mib(*required), mib(*available), if *budgeted { ", within the memory budget" } else { "" })]
    InsufficientMemory {
        what: String,
        required: u64,
        available: u64,
        /// Whether a hard budget set by the host application was the limit.
        budgeted: bool,
    },
    #[error("busy: {0}")]
    Busy(String),
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    #[error("out of device memory on GPU {device} for {what}: it needs {} and {} is free; lower the context size, offload fewer layers (gpu_layers) or run on the CPU", mib(*required), mib(*free))]
    OutOfDeviceMemory {
        device: usize,
        what: String,
        required: u64,
        free: u64,
    },
    #[error("GPU {device}: {message}")]
    Device { device: usize, message: String },
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

impl Error {
    /// Structured figures of the error, for front ends that expose them as fields:
    /// `{"required": bytes, "available": bytes, "budgeted": bool}` for
    /// [`Error::InsufficientMemory`]; `None` for the others.
    pub fn details(&self) -> Option<serde_json::Value> {
        match self {
            Error::InsufficientMemory {
                required,
                available,
                budgeted,
                ..
            } => Some(serde_json::json!({
                "required": required,
                "available": available,
                "budgeted": budgeted,
            })),
            Error::OutOfDeviceMemory {
                device,
                required,
                free,
                ..
            } => Some(serde_json::json!({
                "device": device,
                "required": required,
                "free": free,
            })),
            _ => None,
        }
    }

    /// The stable category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Io,
            Error::Gguf { source, .. } => match source {
                GgufError::Io(_) => ErrorKind::Io,
                _ => ErrorKind::InvalidModel,
            },
            Error::ModelNotFound { .. } => ErrorKind::ModelNotFound,
            Error::InvalidModel(_) => ErrorKind::InvalidModel,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::Tokenizer(_) => ErrorKind::Tokenizer,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::ContextOverflow { .. } => ErrorKind::ContextOverflow,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Internal(_) => ErrorKind::Internal,
            Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Error::InsufficientMemory { .. } => ErrorKind::InsufficientMemory,
            Error::Busy(_) => ErrorKind::Busy,
            Error::DeadlineExceeded(_) => ErrorKind::DeadlineExceeded,
            Error::OutOfDeviceMemory { .. } => ErrorKind::OutOfDeviceMemory,
            Error::Device { .. } => ErrorKind::Device,
        }
    }
}

/// Result with Woolly's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
