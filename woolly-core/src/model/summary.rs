//! A description of a model file, for `woolly inspect` and the bindings' `info`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::HParams;
use crate::gguf::GgufFile;
use crate::Result;

/// Count and bytes of the tensors of one type.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TypeCount {
    pub tensors: usize,
    pub bytes: u64,
}

/// What a model file holds.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    pub path: String,
    pub name: Option<String>,
    pub gguf_version: u32,
    pub file_size: u64,
    pub hparams: HParams,
    pub n_params: u64,
    pub n_tensors: usize,
    /// Tensor counts and bytes by type name, e.g. `"Q4_K"`.
    pub tensor_types: BTreeMap<String, TypeCount>,
    /// `tokenizer.ggml.model`: `llama` (SentencePiece) or `gpt2` (byte-level BPE).
    pub vocab_kind: Option<String>,
    /// `tokenizer.ggml.pre`, the BPE pre-tokenizer.
    pub vocab_pre: Option<String>,
    pub vocab_size: usize,
    pub has_chat_template: bool,
}

impl ModelSummary {
    /// Summarises an opened model file.
    pub fn from_gguf(f: &GgufFile) -> Result<ModelSummary> {
        let hparams = HParams::from_gguf(f)?;
        let mut tensor_types: BTreeMap<String, TypeCount> = BTreeMap::new();
        let mut n_params = 0u64;
        for t in f.tensors() {
            let e = tensor_types
                .entry(t.ggml_type.name().to_string())
                .or_insert(TypeCount {
                    tensors: 0,
                    bytes: 0,
                });
            e.tensors += 1;
            e.bytes += t.size;
            n_params += t.n_elements();
        }
        Ok(ModelSummary {
            path: f.path().display().to_string(),
            name: f.get_str("general.name")?.map(str::to_string),
            gguf_version: f.version(),
            file_size: f.file_size(),
            n_params,
            n_tensors: f.tensors().len(),
            tensor_types,
            vocab_kind: f.get_str("tokenizer.ggml.model")?.map(str::to_string),
            vocab_pre: f.get_str("tokenizer.ggml.pre")?.map(str::to_string),
            vocab_size: f
                .get_array("tokenizer.ggml.tokens")?
                .map(|a| a.len())
                .unwrap_or(0),
            has_chat_template: f.get_str("tokenizer.chat_template")?.is_some(),
            hparams,
        })
    }
}
