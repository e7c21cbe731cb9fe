//! Woolly's core: GGUF models run on the user's own machine.
//!
//! The modules follow the data: [`gguf`] reads model files over mmap, [`quant`] knows the block
//! formats of quantized tensors, [`kernels`] computes with them, [`tokenizer`] turns text into token
//! ids and back.

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
pub mod quant;
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod testing;
pub mod tokenizer;
pub mod tune;

pub use error::{Error, ErrorKind, Result};

/// This library's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
