//! Qwen2: the llama block with q/k/v biases and RoPE in the NEOX layout.

use super::hparams::HParams;
use super::llama::{load_variant, Variant};
use super::transformer::Transformer;
use crate::backend::Matrix;
use crate::gguf::GgufFile;
use crate::kernels::cpu::ops::RopeLayout;
use crate::Result;

/// Loads a qwen2 model.
pub fn load(f: &GgufFile, hp: &HParams) -> Result<Transformer<Matrix>> {
    load_variant(
        f,
        hp,
        Variant {
            rope_layout: RopeLayout::Neox,
            biases_required: true,
        },
    )
}
