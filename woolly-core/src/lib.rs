//! Woolly's core: GGUF models run on the user's own machine.
//!
//! The modules follow the data, each importing only those below it:
//!
//! - [`platform`] — what the machine reports (CPU, GPU, memory figures, this process, model
//!   files), per-OS code behind `cfg`; with [`error`], [`log`] and [`panics`] at the bottom
//!   (the error type stands aside: it wraps the GGUF reader's errors).
//! - [`gguf`] reads model files over mmap.
//! - [`tokenizer`] turns text into token ids and back (SPM and BPE, exact to llama.cpp);
//!   [`chat`] turns messages into prompt text (templates rendered within bounds);
//!   [`quant`] knows the block formats of quantized tensors.
//! - [`kernels`] computes with them: SIMD chosen at run time beside its scalar twin, the thread
//!   pool, matrix products and attention, and the KV cache's storage formats.
//! - [`backend`] is where a forward pass runs: the `Backend` interface (weights prepared for
//!   it, activation buffers, the steps of a pass) and its CPU implementation over the kernels,
//!   with the KV cache.
//! - [`metrics`] counts what Woolly does; [`policy`] decides from the platform's figures
//!   (threads, the memory budget, power and heat).
//! - [`model`] loads a model (hyperparameters, weights per architecture) and describes the
//!   transformer's forward pass once, run on a backend.
//! - [`generate`] samples and runs one conversation ([`generate::Session`]); [`engine`] serves
//!   many requests on one model at once; [`diagnostics`] reports it all for `woolly doctor`.

pub mod backend;
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
pub mod openai;
pub mod panics;
pub mod platform;
pub mod policy;
pub mod quant;
#[cfg(any(test, feature = "test-support"))]
#[doc(hidden)]
pub mod testing;
pub mod tokenizer;

pub use error::{Error, ErrorKind, Result};

/// This library's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
