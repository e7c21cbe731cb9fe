//! Models: where to find them, their hyperparameters and (one file per architecture) their weights.
//!
//! What lives where: `hparams.rs` reads the shape from the file's metadata; `gemma3.rs`,
//! `llama.rs` and `qwen2.rs` describe each architecture once (its [`transformer::Config`] and
//! layers, over the file's matrices found by [`weights`]); [`transformer`] writes the forward
//! pass once, as a sequence of steps a backend computes (the CPU's here, which prepares the
//! weights at load); [`Model`] loads it all (`preload.rs`: when the pages are read) and is what
//! sessions and the engine call ([`Model::new_kv_cache`], [`Model::forward`]). The memory a
//! load needs is estimated in `estimate.rs`; the KV cache's storage belongs to the backend.

mod cache;
mod estimate;
pub mod gemma3;
mod hparams;
pub mod llama;
mod offload;
mod preload;
pub mod qwen2;
mod resolve;
mod summary;
pub mod transformer;
pub mod weights;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::backend::{kv_cache, SeqBatch};
pub use cache::ModelCache;
pub use estimate::{kv_bytes, scratch_bytes, MemoryEstimate};
pub use hparams::{Architecture, HParams, RopeScaling};
pub use kv_cache::{KvCache, KvPrecision};
pub use offload::Scratch;
pub use preload::{Preload, PreloadProgress};
pub use resolve::{default_model_path, resolve_model_path, DEFAULT_MODEL_FILE, MODEL_ENV};
pub use summary::{ModelSummary, TypeCount};

use crate::backend::cpu::{Cpu, CpuWeight};
use crate::backend::{Backend, Matrix};
use crate::chat::{BuiltinTemplate, ChatMessage, ChatTemplate};
use crate::gguf::GgufFile;
use crate::kernels::cpu::ThreadPool;
use crate::policy::memory::{MemoryAccount, MemoryPolicy};
use crate::policy::placement::DeviceOomPolicy;
use crate::tokenizer::{TokenId, Tokenizer, TokenizerKind};
use crate::Result;
use preload::PreloadTask;
use transformer::{Config, Transformer};

/// Load progress callback: called with the fraction done (0 to 1); returning false cancels the
/// load, which then fails with [`crate::Error::Cancelled`].
pub type ProgressFn = Arc<dyn Fn(f32) -> bool + Send + Sync>;

/// How to load a model.
#[derive(Clone)]
pub struct ModelParams {
    /// Progress reports and cancellation.
    pub progress: Option<ProgressFn>,
    /// When to read the file.
    pub preload: Preload,
    /// Lock the model's memory so the system cannot page it out (`mlock`). When the system
    /// refuses (`RLIMIT_MEMLOCK`, permissions) the load goes on unlocked with a warning in the
    /// log, and [`Model::is_locked`] says so.
    pub mlock: bool,
    /// Copy the weights that have a faster layout on this CPU into it (the default).
    pub repack: bool,
    /// What a model loaded on its own may use (a [`ModelCache`]'s models share the cache's).
    pub memory: MemoryPolicy,
    /// The context the load plans for (0: [`default_context`]): it fails early with
    /// [`crate::Error::InsufficientMemory`] when the model plus one session of this context do
    /// not fit.
    pub context_size: usize,
    /// What runs on a GPU (see [`crate::policy::placement`]).
    pub gpu: crate::policy::placement::GpuParams,
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams {
            progress: None,
            preload: Preload::Lazy,
            mlock: false,
            repack: true,
            memory: MemoryPolicy::default(),
            context_size: 0,
            gpu: Default::default(),
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
            .field("memory", &self.memory)
            .field("context_size", &self.context_size)
            .field("gpu", &self.gpu)
            .finish()
    }
}

/// The context size a session gets when it asks for none: the smaller of 4096 and the
/// model's trained context.
pub fn default_context(hp: &HParams) -> usize {
    hp.n_ctx_train.clamp(1, 4096)
}

/// The context a session or engine gets for `requested` tokens (0: [`default_context`]).
///
/// # Errors
/// [`crate::Error::InvalidArgument`] for a context far beyond the model's trained one.
pub fn resolve_context(hp: &HParams, requested: usize) -> Result<usize> {
    let n_ctx = match requested {
        0 => default_context(hp),
        n => n,
    };
    if n_ctx > hp.n_ctx_train.max(4096).saturating_mul(4) || n_ctx > 1 << 22 {
        return Err(crate::Error::InvalidArgument(format!(
            "context_size {n_ctx} is far beyond the model's trained context of {}",
            hp.n_ctx_train
        )));
    }
    Ok(n_ctx)
}

/// Batch size the load's estimate assumes (the sessions' default).
const ESTIMATE_BATCH: usize = 512;

/// A load's charge on its account, returned when dropped unless the load completed (`.2`).
struct Charge<'a>(&'a MemoryAccount, u64, bool);

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        if !self.2 {
            self.0.release(self.1);
        }
    }
}

/// A loaded model: the mapped file, its tokenizer, its weights and its chat format. Immutable and
/// shareable: any number of [`crate::generate::Session`]s can use one model at once.
pub struct Model {
    file: GgufFile,
    hparams: HParams,
    tokenizer: Tokenizer,
    /// Where the forward pass runs, and the weights prepared for it.
    backend: Cpu,
    /// The layers that run on the CPU (all of them without a GPU part).
    transformer: Transformer<CpuWeight>,
    /// The last layers and the output, when they run on a GPU.
    gpu: Option<offload::GpuPart>,
    placement: crate::policy::placement::Placement,
    chat_template: ChatTemplate,
    load_time: Duration,
    metrics: crate::metrics::ModelMetrics,
    estimate: MemoryEstimate,
    account: Arc<MemoryAccount>,
    charged: u64,
    preload: PreloadTask,
    locked: bool,
}

impl Drop for Model {
    fn drop(&mut self) {
        self.preload.stop.store(true, Ordering::Relaxed);
        self.preload.join();
        self.account.release(self.charged);
    }
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
    ///
    /// # Errors
    /// Besides a missing or invalid file: [`crate::Error::InsufficientMemory`] when the
    /// model and one session of `params.context_size` do not fit in `params.memory`, and
    /// [`crate::Error::Cancelled`] when the progress callback says so.
    pub fn load(path: Option<&Path>, params: &ModelParams) -> Result<Arc<Model>> {
        params.memory.validate()?;
        Model::load_charged(path, params, Arc::new(MemoryAccount::new(params.memory)))
    }

    /// What loading the model at `path` with `params` would take, from its header alone.
    ///
    /// # Errors
    /// As [`Model::load`] for the file.
    pub fn estimate(path: Option<&Path>, params: &ModelParams) -> Result<MemoryEstimate> {
        let path = resolve_model_path(path)?;
        let file = GgufFile::open(&path)?;
        let hparams = HParams::from_gguf(&file)?;
        Ok(Self::estimate_file(&file, &hparams, params))
    }

    fn estimate_file(file: &GgufFile, hp: &HParams, params: &ModelParams) -> MemoryEstimate {
        let n_ctx = match params.context_size {
            0 => default_context(hp),
            n => n,
        };
        MemoryEstimate::for_file(file, hp, n_ctx, ESTIMATE_BATCH, KvPrecision::F16)
    }

    /// [`Model::load`] charging `account` (a cache's, or the model's own).
    pub(crate) fn load_charged(
        path: Option<&Path>,
        params: &ModelParams,
        account: Arc<MemoryAccount>,
    ) -> Result<Arc<Model>> {
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
        let hparams = HParams::from_gguf(&file)?;
        // Fail before anything is committed when the model and one session cannot fit; from
        // then on the charge is returned on every path (the Model's Drop, or this guard).
        let (estimate, charged) = Self::charge_estimate(&path, &file, &hparams, params, &account)?;
        let mut charge = Charge(&account, charged, false);
        // While the load reads its few small tensors (norms, biases), the kernel's read-around
        // would pull in megabytes beside each of them; the lazy strategies read only what they
        // touch until the load is done, then the normal read-ahead applies again.
        let quiet_load = matches!(params.preload, Preload::Lazy | Preload::Critical);
        if quiet_load {
            file.advise(crate::gguf::Advice::Random);
        }
        let mut preload = PreloadTask::start(&file, &hparams, params.preload)?;
        let locked = params.mlock && Self::lock(&file);
        report(0.1)?;
        let tokenizer = Self::load_tokenizer(&file, &hparams)?;
        report(0.2)?;
        let described = Self::describe(&file, &hparams)?;
        if quiet_load {
            // Repacking reads whole tensors: the normal read-ahead serves it best.
            file.advise(crate::gguf::Advice::Normal);
        }
        report(0.3)?;
        let repack_share = if params.preload == Preload::FullBlocking {
            0.5
        } else {
            0.7
        };
        // (With mlock the mapping stays resident anyway; a copy would only double it.)
        let repack = params.repack && !locked;
        let n_ctx = match params.context_size {
            0 => default_context(&hparams),
            n => n,
        };
        let (placement, described, mut gpu) =
            offload::place(&file, described, &params.gpu, n_ctx, ESTIMATE_BATCH)?;
        crate::log!(crate::log::Level::Info, "placement: {}", placement.reason);
        // Sequences whose KV cache does not fit on the GPU may run the whole model here.
        let whole = gpu.is_some() && placement.on_device_oom == DeviceOomPolicy::Cpu;
        let (backend, transformer, whole) =
            Self::prepare_weights(&file, described, repack, &placement, whole, &|f| {
                report(0.3 + repack_share * f)
            })?;
        #[cfg(feature = "cuda")]
        if let Some(g) = gpu.as_mut() {
            g.host = whole;
        }
        #[cfg(not(feature = "cuda"))]
        let _ = (&mut gpu, whole);
        if matches!(params.preload, Preload::Full | Preload::FullBlocking) {
            let ranges = transformer.file_ranges(&backend);
            preload.read_weights(&file, params.preload, ranges, &report, 0.3 + repack_share)?;
        }
        report(1.0)?;
        crate::log!(
            crate::log::Level::Info,
            "loaded {} ({}, {} layers) in {:.0} ms; {} MiB repacked; preload {}",
            path.display(),
            hparams.architecture.name(),
            hparams.n_layer,
            start.elapsed().as_secs_f64() * 1e3,
            backend.prepared_bytes() >> 20,
            params.preload.name()
        );
        let chat_template = Self::chat_template_of(&file, &hparams, &tokenizer)?;
        charge.2 = true;
        drop(charge);
        let metrics = crate::metrics::ModelMetrics::default();
        if let Some(stem) = path.file_stem() {
            metrics.set_label(stem.to_string_lossy());
        }
        #[cfg(feature = "cuda")]
        let device_bytes = gpu.as_ref().map_or(0, |g| g.device_bytes());
        #[cfg(not(feature = "cuda"))]
        let device_bytes = 0;
        metrics.set_device(placement.gpu_layers(), device_bytes);
        #[cfg(feature = "cuda")]
        if let Some(g) = &gpu {
            metrics.set_gpu_activity(g.activity_source());
        }
        Ok(Arc::new(Model {
            file,
            hparams,
            tokenizer,
            backend,
            transformer,
            gpu,
            placement,
            chat_template,
            load_time: start.elapsed(),
            metrics,
            estimate,
            account,
            charged,
            preload,
            locked,
        }))
    }

    /// The architecture's description of the model: its configuration and the file's
    /// matrices of each layer.
    fn describe(file: &GgufFile, hp: &HParams) -> Result<Transformer<Matrix>> {
        match hp.architecture {
            Architecture::Gemma3 => gemma3::load(file, hp),
            Architecture::Llama => llama::load(file, hp),
            Architecture::Qwen2 => qwen2::load(file, hp),
        }
    }

    /// The CPU backend and the weights prepared on it: with `repack`, copied into this CPU's
    /// layouts where it has them (reporting the fraction done), else read from the mapping.
    fn prepare_weights(
        file: &GgufFile,
        described: Transformer<Matrix>,
        repack: bool,
        placement: &crate::policy::placement::Placement,
        whole: bool,
        report: &dyn Fn(f32) -> Result<()>,
    ) -> Result<(Cpu, Transformer<CpuWeight>, Option<Transformer<CpuWeight>>)> {
        let mut backend = Cpu::new(file, repack);
        let quiet = |_| Ok(());
        let progress: &dyn Fn(f32) -> Result<()> = if repack { report } else { &quiet };
        let k = placement.layers.len() - placement.gpu_layers();
        let output_on_gpu = placement.output.is_some();
        let (transformer, whole) = offload::prepare_cpu(
            &mut backend,
            file,
            described,
            k,
            output_on_gpu,
            whole,
            progress,
        )?;
        Ok((backend, transformer, whole))
    }

    /// Charges `account` for the model at `path` and one session, then gives the session's
    /// part back: the estimate, and what stays charged.
    fn charge_estimate(
        path: &Path,
        file: &GgufFile,
        hp: &HParams,
        params: &ModelParams,
        account: &MemoryAccount,
    ) -> Result<(MemoryEstimate, u64)> {
        let estimate = Self::estimate_file(file, hp, params);
        let what = format!(
            "{} and a {}-token context",
            path.display(),
            estimate.context_size
        );
        account.charge(&what, estimate.total_bytes)?;
        account.release(estimate.session_bytes());
        Ok((estimate, estimate.model_bytes()))
    }

    /// Locks the mapping in memory; false (with a warning) when the system refuses.
    fn lock(file: &GgufFile) -> bool {
        match file.lock_in_memory() {
            Ok(()) => true,
            Err(e) => {
                crate::log!(crate::log::Level::Warn, "{e}; the model stays unlocked");
                false
            }
        }
    }

    /// The tokenizer, whose vocabulary must match the embedding's rows.
    fn load_tokenizer(file: &GgufFile, hp: &HParams) -> Result<Tokenizer> {
        let tokenizer = Tokenizer::from_gguf(file)?;
        // Every row of the output is a token the sampler may pick: the two must agree (as in
        // llama.cpp, which sizes the embedding from the vocabulary).
        if tokenizer.vocab_size() != hp.n_vocab {
            return Err(crate::Error::InvalidModel(format!(
                "the vocabulary has {} tokens but token_embd.weight has {} rows",
                tokenizer.vocab_size(),
                hp.n_vocab
            )));
        }
        Ok(tokenizer)
    }

    /// The file's chat template, or the built-in one its architecture and tokenizer suggest.
    fn chat_template_of(file: &GgufFile, hp: &HParams, tok: &Tokenizer) -> Result<ChatTemplate> {
        Ok(match file.get_str("tokenizer.chat_template")? {
            Some(src) => ChatTemplate::Jinja(src.to_string()),
            None => ChatTemplate::Builtin(match (hp.architecture, tok.kind()) {
                (Architecture::Gemma3, _) => BuiltinTemplate::Gemma,
                (Architecture::Llama, TokenizerKind::Bpe { .. }) => BuiltinTemplate::Llama3,
                _ => BuiltinTemplate::ChatMl,
            }),
        })
    }

    /// The memory this model was estimated to need (with one session of the planned context).
    pub fn memory_estimate(&self) -> &MemoryEstimate {
        &self.estimate
    }

    /// The account this model and its sessions charge.
    pub fn memory_account(&self) -> &Arc<MemoryAccount> {
        &self.account
    }

    /// Whether the model's memory is locked (`mlock` was asked for and allowed).
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// How far the background read of [`Preload::Full`] or [`Preload::Sequential`] got
    /// (finished at once for the other strategies, which do not read in the background).
    pub fn preload_progress(&self) -> PreloadProgress {
        let has_thread = self
            .preload
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        PreloadProgress {
            done_bytes: self.preload.done.load(Ordering::Relaxed),
            total_bytes: self.preload.total,
            finished: !has_thread || self.preload.finished.load(Ordering::Relaxed),
        }
    }

    /// Waits until a background preload has read every page (at once when there is none).
    pub fn wait_preloaded(&self) {
        self.preload.join();
        self.preload.finished.store(true, Ordering::Relaxed);
    }

    /// This model's memory as JSON: the estimate, what is charged and left, the file's
    /// residency, the preload and lock state, and the process's RSS.
    pub fn memory_report(&self) -> serde_json::Value {
        let b = self.account.budget();
        let residency = self.file.residency();
        serde_json::json!({
            "estimate": self.estimate,
            "charged_bytes": self.charged,
            "account_held_bytes": self.account.held(),
            "headroom_bytes": b.headroom(self.account.held()),
            "budget_bytes": b.budget_bytes,
            "reserve_bytes": b.reserve_bytes,
            "available_bytes": b.available_bytes,
            "under_pressure": b.under_pressure(),
            "file_bytes": self.file.file_size(),
            "file_resident_bytes":
                residency.map(|(r, _)| (r as u64 * crate::platform::memory::page_size()).min(self.file.file_size())),
            "repacked_bytes": self.packed_bytes(),
            "locked": self.locked,
            "preload": self.preload_progress(),
            "process_rss_bytes": crate::platform::process::rss_bytes(),
        })
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

    /// The numbers that shape the forward pass (widths of the KV cache among them).
    pub fn config(&self) -> &Config {
        &self.transformer.config
    }

    /// An empty KV cache for one sequence of up to `n_ctx` positions.
    pub fn new_kv_cache(&self, n_ctx: usize, precision: KvPrecision) -> KvCache {
        let c = &self.transformer.config;
        let on_gpu = self.placement.gpu_layers();
        KvCache::new(
            self.hparams.n_layer - on_gpu,
            c.k_width(),
            c.v_width(),
            n_ctx,
            precision,
        )
        .with_device_layers(on_gpu)
    }

    /// Runs one forward pass over `seqs` on `pool`: afterwards each sequence's cache holds its
    /// new tokens, and `scratch.logits` the logits of the sequences that asked for them, in
    /// batch order.
    ///
    /// # Errors
    /// [`crate::Error::ContextOverflow`] when a sequence's tokens do not fit its cache,
    /// [`crate::Error::InvalidArgument`] for a token outside the vocabulary, and
    /// [`crate::Error::Cancelled`] when `cancelled` (polled between layers) returns true; the
    /// caches are then left as they were before the pass.
    pub fn forward(
        &self,
        seqs: &mut [SeqBatch<'_>],
        scratch: &mut Scratch,
        pool: &ThreadPool,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<()> {
        let gpu = self.gpu.as_ref();
        offload::forward(
            &self.backend,
            &self.transformer,
            gpu,
            &self.metrics,
            seqs,
            scratch,
            pool,
            cancelled,
        )
    }

    /// Allocates `cache`'s storage on the GPUs unless it has it (a sequence's first pass does
    /// this too). When it does not fit, the load's [`DeviceOomPolicy`] decides: `Cpu` keeps the
    /// cache on the host, and its sequence runs on the CPU alone from then on (producing the
    /// CPU's tokens); `Error` fails. A caller batching several sequences (the engine) calls
    /// this for each one first, so that one whose cache does not fit fails alone. Nothing to
    /// do for a model on the CPU alone.
    ///
    /// # Errors
    /// [`crate::Error::OutOfDeviceMemory`] under [`DeviceOomPolicy::Error`] when the cache
    /// does not fit (nothing stays allocated).
    pub fn ensure_device_kv(&self, cache: &mut KvCache) -> Result<()> {
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            return offload::ensure_device_kv(g, cache, &self.metrics);
        }
        let _ = cache;
        Ok(())
    }

    /// What a sequence whose KV cache does not fit on the GPU does (the load's choice).
    pub fn on_device_oom(&self) -> DeviceOomPolicy {
        self.placement.on_device_oom
    }

    /// Bytes of weights held on a GPU.
    pub fn device_weight_bytes(&self) -> usize {
        #[cfg(feature = "cuda")]
        if let Some(g) = &self.gpu {
            return g.device_bytes();
        }
        0
    }

    /// Where the layers run, and why (the placement planned at load).
    pub fn placement(&self) -> &crate::policy::placement::Placement {
        &self.placement
    }

    /// Bytes of weights copied into layouts made for this CPU at load (the mapped pages they
    /// came from were released).
    pub fn packed_bytes(&self) -> usize {
        self.backend.prepared_bytes()
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
        v["placement"] = serde_json::to_value(&self.placement).unwrap_or_default();
        v["device_weight_bytes"] = self.device_weight_bytes().into();
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
        self.apply_chat_template_cancellable(messages, &|| false)
    }

    /// [`apply_chat_template`](Self::apply_chat_template) that returns [`crate::Error::Cancelled`]
    /// soon after `cancelled` turns true.
    pub fn apply_chat_template_cancellable(
        &self,
        messages: &[ChatMessage],
        cancelled: &dyn Fn() -> bool,
    ) -> Result<String> {
        self.apply_chat_template_with_tools(messages, None, cancelled)
    }

    /// [`apply_chat_template_cancellable`](Self::apply_chat_template_cancellable) with `tools`
    /// as the template's `tools` variable (templates that do not use it ignore it).
    pub fn apply_chat_template_with_tools(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<String> {
        let text = |id: Option<TokenId>| {
            id.and_then(|i| self.tokenizer.piece(i, true).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        self.chat_template.render_with_tools(
            messages,
            tools,
            true,
            &text(self.tokenizer.bos()),
            &text(self.tokenizer.eos()),
            cancelled,
        )
    }
}
