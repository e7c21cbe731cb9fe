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

/// Load progress callback: called with the fraction done (0 to 1); returning false cancels the
/// load, which then fails with [`crate::Error::Cancelled`].
pub type ProgressFn = Arc<dyn Fn(f32) -> bool + Send + Sync>;

/// When the model's pages are read from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preload {
    /// On first use (the mapping is lazy); the fastest load.
    #[default]
    Lazy,
    /// All of them during the load, so that the first generation does not wait for the disk.
    Prefault,
}

/// How to load a model.
#[derive(Clone)]
pub struct ModelParams {
    /// Progress reports and cancellation.
    pub progress: Option<ProgressFn>,
    /// When to read the file.
    pub preload: Preload,
    /// Lock the model's memory so the system cannot page it out (`mlock`). An explicit opt-in:
    /// when the system refuses (limits, permissions) the load fails with
    /// [`crate::Error::PermissionDenied`] rather than going on silently.
    pub mlock: bool,
    /// Copy the weights that have a faster layout on this CPU into it (the default).
    pub repack: bool,
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams {
            progress: None,
            preload: Preload::Lazy,
            mlock: false,
            repack: true,
        }
    }
}

impl std::fmt::Debug for ModelParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelParams")
            .field("progress", &self.progress.is_some())
            .field("preload", &self.preload)
            .field("mlock", &self.mlock)
            .field("repack", &self.repack)
            .finish()
    }
}

/// A loaded model: the mapped file, its tokenizer, its weights and its chat format. Immutable and
/// shareable: any number of [`crate::generate::Session`]s can use one model at once.
pub struct Model {
    file: GgufFile,
    hparams: HParams,
    tokenizer: Tokenizer,
    transformer: Transformer,
    chat_template: ChatTemplate,
    load_time: Duration,
    metrics: crate::metrics::ModelMetrics,
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
    pub fn load(path: Option<&Path>, params: &ModelParams) -> Result<Arc<Model>> {
        let start = Instant::now();
        let report = |f: f32| -> Result<()> {
            match &params.progress {
                Some(cb) if !cb(f) => Err(crate::Error::Cancelled),
                _ => Ok(()),
            }
        };
        report(0.0)?;
        let path = resolve_model_path(path)?;
        let file = GgufFile::open(&path)?;
        if params.preload == Preload::Prefault {
            file.prefault();
        }
        if params.mlock {
            file.lock_in_memory()?;
        }
        report(0.1)?;
        let hparams = HParams::from_gguf(&file)?;
        let tokenizer = Tokenizer::from_gguf(&file)?;
        report(0.2)?;
        let mut transformer = match hparams.architecture {
            Architecture::Gemma3 => gemma3::load(&file, &hparams)?,
            Architecture::Llama => llama::load(&file, &hparams)?,
            Architecture::Qwen2 => qwen2::load(&file, &hparams)?,
        };
        report(0.3)?;
        if params.repack && !params.mlock {
            // (With mlock the mapping stays resident anyway; a copy would only double it.)
            transformer.pack_weights(&file, &|f| report(0.3 + 0.7 * f))?;
        }
        report(1.0)?;
        crate::log!(
            crate::log::Level::Info,
            "loaded {} ({}, {} layers) in {:.0} ms; {} MiB repacked",
            path.display(),
            hparams.architecture.name(),
            hparams.n_layer,
            start.elapsed().as_secs_f64() * 1e3,
            transformer.packed_bytes() >> 20
        );
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
            metrics: Default::default(),
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

    /// The facts every front end reports about a loaded model, as JSON: the file's summary
    /// ([`ModelSummary`]) plus `architecture`, `chat_template`, `file_bytes`, `repacked_bytes`
    /// and `load_ms`, with `n_layer`, `n_vocab` and `n_ctx_train` also at the top.
    ///
    /// # Errors
    /// As [`Model::summary`].
    pub fn info(&self) -> Result<serde_json::Value> {
        let mut v = serde_json::to_value(self.summary()?).unwrap_or(serde_json::Value::Null);
        v["architecture"] = self.hparams.architecture.name().into();
        v["n_layer"] = self.hparams.n_layer.into();
        v["n_vocab"] = self.hparams.n_vocab.into();
        v["n_ctx_train"] = self.hparams.n_ctx_train.into();
        v["chat_template"] = self.chat_template.name().into();
        v["file_bytes"] = self.file.bytes().len().into();
        v["repacked_bytes"] = self.packed_bytes().into();
        v["load_ms"] = (self.load_time.as_secs_f64() * 1e3).into();
        Ok(v)
    }

    /// Counters of the generations run on this model (by every session).
    pub fn metrics(&self) -> &crate::metrics::ModelMetrics {
        &self.metrics
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
