//! Woolly's core: GGUF models run on the user's own machine.
//!
//! The modules follow the data: [`gguf`] reads model files over mmap, [`quant`] knows the block
//! formats of quantized tensors, [`kernels`] computes with them, [`tokenizer`] turns text into token
//! ids and back.

pub mod chat;
pub mod diagnostics;
pub mod engine;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod kernels;
pub mod log;
pub mod metrics;
pub mod model;
pub mod panics;
pub mod platform;
pub mod policy;
pub mod quant;
pub mod tokenizer;

pub use error::{Error, ErrorKind, Result};

/// This library's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
