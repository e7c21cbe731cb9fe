//! Models: where to find them, their hyperparameters and (one file per architecture) their weights.

pub mod gemma3;
mod hparams;
pub mod llama;
pub mod qwen2;
mod resolve;
mod summary;
pub mod transformer;
pub mod weights;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use hparams::{Architecture, HParams, RopeScaling};
pub use resolve::{default_model_path, resolve_model_path, DEFAULT_MODEL_FILE, MODEL_ENV};
pub use summary::{ModelSummary, TypeCount};

use crate::generate::chat::{BuiltinTemplate, ChatMessage, ChatTemplate};
use crate::gguf::GgufFile;
use crate::tokenizer::{TokenId, Tokenizer, TokenizerKind};
use crate::Result;
use transformer::Transformer;

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct ModelParams {}

/// A loaded model: the mapped file, its tokenizer, its weights and its chat format. Immutable and
/// shareable: any number of [`crate::generate::Session`]s can use one model at once.
pub struct Model {
    file: GgufFile,
    hparams: HParams,
    tokenizer: Tokenizer,
    transformer: Transformer,
    chat_template: ChatTemplate,
    load_time: Duration,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.file.path())
            .field("architecture", &self.hparams.architecture)
            .finish()
    }
}

impl Model {
    /// Loads the model at `path`, or (with `None`) the one [`resolve_model_path`] finds.
    pub fn load(path: Option<&Path>, _params: &ModelParams) -> Result<Arc<Model>> {
        let start = Instant::now();
        let path = resolve_model_path(path)?;
        let file = GgufFile::open(&path)?;
        let hparams = HParams::from_gguf(&file)?;
        let tokenizer = Tokenizer::from_gguf(&file)?;
        let mut transformer = match hparams.architecture {
            Architecture::Gemma3 => gemma3::load(&file, &hparams)?,
            Architecture::Llama => llama::load(&file, &hparams)?,
            Architecture::Qwen2 => qwen2::load(&file, &hparams)?,
        };
        transformer.pack_weights(&file);
        let chat_template = match file.get_str("tokenizer.chat_template")? {
            Some(src) => ChatTemplate::Jinja(src.to_string()),
            None => ChatTemplate::Builtin(match (hparams.architecture, tokenizer.kind()) {
                (Architecture::Gemma3, _) => BuiltinTemplate::Gemma,
                (Architecture::Llama, TokenizerKind::Bpe { .. }) => BuiltinTemplate::Llama3,
                _ => BuiltinTemplate::ChatMl,
            }),
        };
        Ok(Arc::new(Model {
            file,
            hparams,
            tokenizer,
            transformer,
            chat_template,
            load_time: start.elapsed(),
        }))
    }

    /// The mapped file.
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// The model's shape.
    pub fn hparams(&self) -> &HParams {
        &self.hparams
    }

    /// The model's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub(crate) fn transformer(&self) -> &Transformer {
        &self.transformer
    }

    /// Bytes of weights copied into layouts made for this CPU at load (the mapped pages they
    /// came from were released).
    pub fn packed_bytes(&self) -> usize {
        self.transformer.packed_bytes()
    }

    /// The chat format in use.
    pub fn chat_template(&self) -> &ChatTemplate {
        &self.chat_template
    }

    /// How long loading took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// A description of the model file.
    pub fn summary(&self) -> Result<ModelSummary> {
        ModelSummary::from_gguf(&self.file)
    }

    /// Token ids of `text`, with BOS/EOS as the model asks and special-token text parsed.
    pub fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<TokenId>> {
        self.tokenizer.encode(text, add_special, parse_special)
    }

    /// Text of `ids` (special tokens rendered as nothing).
    pub fn detokenize(&self, ids: &[TokenId]) -> Result<String> {
        self.tokenizer.decode(ids, false)
    }

    /// The prompt text for `messages`, ending where the assistant's reply begins.
    pub fn apply_chat_template(&self, messages: &[ChatMessage]) -> Result<String> {
        let text = |id: Option<TokenId>| {
            id.and_then(|i| self.tokenizer.piece(i, true).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        self.chat_template.render(
            messages,
            true,
            &text(self.tokenizer.bos()),
            &text(self.tokenizer.eos()),
        )
    }
}
