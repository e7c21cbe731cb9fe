//! Models: where to find them, their hyperparameters and (per architecture) their forward passes.

mod hparams;
mod resolve;
mod summary;

pub use hparams::{Architecture, HParams, RopeScaling};
pub use summary::{ModelSummary, TypeCount};
pub use resolve::{default_model_path, resolve_model_path, DEFAULT_MODEL_FILE, MODEL_ENV};
