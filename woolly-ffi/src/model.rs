//! Models: `woolly_model`, how it is loaded (`woolly_model_params`, preload, thread policy) and
//! what it tells about itself.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, OnceLock};

use woolly_core::generate::{SessionParams, SessionPool};
use woolly_core::model::{Model, ModelParams, Preload};
use woolly_core::policy::placement::{DeviceOomPolicy, GpuLayers, GpuParams, Margin, SplitMode};
use woolly_core::policy::ThreadPolicy;

use crate::boundary::{
    check_enum, clear_out_handle, fail, free_handle, guard, optional, optional_path, put_handle,
    required, write_string, Failure, UserData,
};
use crate::memory_policy::woolly_memory_policy;
use crate::status::woolly_status;
use crate::status::woolly_status::*;

/// A loaded model (opaque). Immutable: any number of threads and sessions may use one model at
/// once.
pub struct woolly_model {
    pub(crate) model: Arc<Model>,
    /// Thread settings from the load params, for `woolly_generate` and sessions that inherit.
    pub(crate) threads: ThreadSettings,
    /// Sessions `woolly_generate` reuses (opened on its first call).
    generate_pool: OnceLock<SessionPool>,
}

/// Idle sessions a model keeps for `woolly_generate` (each holds a KV cache and threads).
const MAX_IDLE_SESSIONS: usize = 4;

impl woolly_model {
    /// A handle on `model` with the thread settings of `params`.
    pub(crate) fn new(model: Arc<Model>, params: &woolly_model_params) -> woolly_model {
        woolly_model {
            model,
            threads: params.threads(),
            generate_pool: OnceLock::new(),
        }
    }

    /// The pool of sessions for `woolly_generate`, opened on first use.
    pub(crate) fn generate_pool(&self) -> Result<&SessionPool, Failure> {
        if let Some(p) = self.generate_pool.get() {
            return Ok(p);
        }
        let mut sp = SessionParams::default();
        self.threads.apply(&mut sp);
        let pool = SessionPool::new(self.model.clone(), sp, MAX_IDLE_SESSIONS)?;
        // Two first calls at once: one pool wins, the other is dropped.
        let _ = self.generate_pool.set(pool);
        self.generate_pool
            .get()
            .map_or_else(|| fail(WOOLLY_ERR_INTERNAL, "session pool vanished"), Ok)
    }
}

/// How a session spreads its work over threads (Woolly's own policy, `policy::threads`).
/// Python, Node and JSON name these `auto`, `interactive` and `background`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_thread_policy {
    /// In session params: whatever the model was loaded with. In model params: `WOOLLY_THREADS_AUTO`.
    WOOLLY_THREADS_DEFAULT = 0,
    /// Per phase: one thread per physical core for the prompt, capped for generation.
    WOOLLY_THREADS_AUTO = 1,
    /// Inside an application with a UI: leave a core to it (never fewer than one thread).
    WOOLLY_THREADS_INTERACTIVE = 2,
    /// Background work: the worker threads run at a lower priority (nice 10).
    WOOLLY_THREADS_BACKGROUND = 3,
}

impl woolly_thread_policy {
    /// woolly-core's policy (`WOOLLY_THREADS_DEFAULT`, once nothing is inherited, is auto).
    fn core(self) -> ThreadPolicy {
        match self {
            woolly_thread_policy::WOOLLY_THREADS_DEFAULT
            | woolly_thread_policy::WOOLLY_THREADS_AUTO => ThreadPolicy::Auto,
            woolly_thread_policy::WOOLLY_THREADS_INTERACTIVE => ThreadPolicy::Interactive,
            woolly_thread_policy::WOOLLY_THREADS_BACKGROUND => ThreadPolicy::Background,
        }
    }
}

/// How a model uses several GPUs. Python, Node and JSON name these `none` and `layer`. (Added in
/// ABI 4.)
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_split_mode {
    /// One GPU: `main_gpu`, or the one with the most free memory.
    WOOLLY_SPLIT_NONE = 0,
    /// The offloaded layers split across every GPU in proportion to its free memory (the
    /// default).
    WOOLLY_SPLIT_LAYER = 1,
}

impl woolly_split_mode {
    fn core(self) -> SplitMode {
        match self {
            woolly_split_mode::WOOLLY_SPLIT_NONE => SplitMode::None,
            woolly_split_mode::WOOLLY_SPLIT_LAYER => SplitMode::Layer,
        }
    }
}

/// What a sequence does when its KV cache does not fit in GPU memory during generation (the
/// load itself never fails for lack of device memory: it offloads fewer layers). Python, Node
/// and JSON name these `cpu` and `error`. (Added in ABI 4.)
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_device_oom {
    /// The sequence runs all its layers on the CPU (the default): a warning to the log
    /// callback, once per model, and `woolly_gpu_oom_fallbacks_total` in the metrics counts
    /// each one. It produces the tokens the CPU alone would.
    WOOLLY_DEVICE_OOM_CPU = 0,
    /// The generation (or that engine request) fails with `WOOLLY_ERR_OUT_OF_DEVICE_MEMORY`;
    /// other sessions and requests go on.
    WOOLLY_DEVICE_OOM_ERROR = 1,
}

impl woolly_device_oom {
    fn core(self) -> DeviceOomPolicy {
        match self {
            woolly_device_oom::WOOLLY_DEVICE_OOM_CPU => DeviceOomPolicy::Cpu,
            woolly_device_oom::WOOLLY_DEVICE_OOM_ERROR => DeviceOomPolicy::Error,
        }
    }
}

/// When the model's pages are read from disk. Python, Node and JSON name these `lazy`,
/// `full_blocking`, `sequential`, `critical` and `full` (see each value).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_preload {
    /// On first use (the mapping is lazy): the fastest load.
    WOOLLY_PRELOAD_LAZY = 0,
    /// All of them during the load, so that the first generation does not wait for the disk.
    /// Python, Node and JSON call it `full_blocking`; its older C name `WOOLLY_PRELOAD_FULL`
    /// stays as a deprecated alias.
    WOOLLY_PRELOAD_FULL_BLOCKING = 1,
    /// Sequential read-ahead into the page cache by a background thread; the load does not
    /// wait ([`woolly_model_preload_progress`] tells how far it got).
    WOOLLY_PRELOAD_SEQUENTIAL = 2,
    /// The header and the first quarter of the layers during the load, the rest on first use.
    WOOLLY_PRELOAD_CRITICAL = 3,
    /// Every page, read by a background thread after the load returns. Python, Node and JSON
    /// call it `full`; in C, `WOOLLY_PRELOAD_FULL` is the deprecated name of 1, not this.
    WOOLLY_PRELOAD_FULL_BACKGROUND = 4,
}

/// Deprecated: the old name of `WOOLLY_PRELOAD_FULL_BLOCKING` (1, the preload Python, Node and
/// JSON call `full_blocking`). What they call `full` is `WOOLLY_PRELOAD_FULL_BACKGROUND` (4).
#[deprecated(note = "use WOOLLY_PRELOAD_FULL_BLOCKING (the same number)")]
pub const WOOLLY_PRELOAD_FULL: woolly_preload = woolly_preload::WOOLLY_PRELOAD_FULL_BLOCKING;

impl woolly_preload {
    fn core(self) -> Preload {
        match self {
            woolly_preload::WOOLLY_PRELOAD_LAZY => Preload::Lazy,
            woolly_preload::WOOLLY_PRELOAD_FULL_BLOCKING => Preload::FullBlocking,
            woolly_preload::WOOLLY_PRELOAD_SEQUENTIAL => Preload::Sequential,
            woolly_preload::WOOLLY_PRELOAD_CRITICAL => Preload::Critical,
            woolly_preload::WOOLLY_PRELOAD_FULL_BACKGROUND => Preload::Full,
        }
    }
}

/// How many threads, under which policy (a model's, or a session's before inheritance).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ThreadSettings {
    pub(crate) n_threads: u32,
    pub(crate) policy: woolly_thread_policy,
}

impl ThreadSettings {
    /// `self`, with `WOOLLY_THREADS_DEFAULT` and 0 threads taken from `inherited`.
    pub(crate) fn or(self, inherited: ThreadSettings) -> ThreadSettings {
        let policy = match self.policy {
            woolly_thread_policy::WOOLLY_THREADS_DEFAULT => inherited.policy,
            p => p,
        };
        let n_threads = match (self.n_threads, self.policy) {
            (0, woolly_thread_policy::WOOLLY_THREADS_DEFAULT) => inherited.n_threads,
            (n, _) => n,
        };
        ThreadSettings { n_threads, policy }
    }

    pub(crate) fn apply(self, sp: &mut SessionParams) {
        sp.threads = self.n_threads as usize;
        sp.set_thread_policy(self.policy.core());
    }
}

/// Load progress: `progress` goes from 0 to 1; return false to cancel the load
/// (`WOOLLY_ERR_CANCELLED`). Called on the loading thread.
pub type woolly_progress_callback =
    Option<extern "C" fn(progress: f32, user_data: *mut c_void) -> bool>;

/// How to load a model. Start from [`woolly_model_default_params`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct woolly_model_params {
    /// When the file is read from disk.
    pub preload: woolly_preload,
    /// Lock the model in memory (mlock). When the system refuses (RLIMIT_MEMLOCK), the load
    /// goes on unlocked with a warning to the log callback; [`woolly_model_is_locked`] says.
    pub use_mlock: bool,
    /// Copy weights into faster layouts for this CPU (default true).
    pub repack: bool,
    /// Threads for `woolly_generate` and for sessions whose params leave them to the model
    /// (0: chosen by `thread_policy`; at most 1024). A count above the CPUs available to the
    /// process is capped there, with a warning to the log callback.
    pub n_threads: u32,
    /// Thread policy for the same (`WOOLLY_THREADS_DEFAULT` means `WOOLLY_THREADS_AUTO`).
    pub thread_policy: woolly_thread_policy,
    /// Optional progress callback, and its user data.
    pub progress_callback: woolly_progress_callback,
    pub progress_user_data: *mut c_void,
    /// The context the load plans memory for (0: the smaller of 4096 and the model's): the
    /// load fails with `WOOLLY_ERR_INSUFFICIENT_MEMORY` when the model and one session of it
    /// do not fit.
    pub context_size: u32,
    /// The memory policy of this model (ignored by `woolly_cache_load`: the cache's applies).
    pub memory: woolly_memory_policy,
    /// Layers to run on CUDA GPUs, counted from the last, with the output projection: -1 (the
    /// default) as many as fit in free device memory after the margin, 0 none (CPU only), `n`
    /// that many (fewer when they do not fit: the load never fails for lack of device memory).
    /// Below -1: `WOOLLY_ERR_INVALID_ARGUMENT`. (Added in ABI 4.)
    pub gpu_layers: i32,
    /// The GPU that holds the output and the last layers (its CUDA ordinal); -1 (the default)
    /// the one with the most free memory. (Added in ABI 4.)
    pub main_gpu: i32,
    /// How several GPUs share the offloaded layers (default `WOOLLY_SPLIT_LAYER`). (Added in
    /// ABI 4.)
    pub split_mode: woolly_split_mode,
    /// Device memory to leave free on each GPU, in bytes; 0 (the default) the larger of 1 GiB
    /// and 10% of the device. (Added in ABI 4.)
    pub gpu_margin_bytes: u64,
    /// What a sequence whose KV cache does not fit in GPU memory does (default
    /// `WOOLLY_DEVICE_OOM_CPU`). (Added in ABI 4.)
    pub on_device_oom: woolly_device_oom,
}

impl woolly_model_params {
    /// The core's params (enums checked).
    pub(crate) fn core(&self) -> Result<ModelParams, Failure> {
        check_enum(&self.preload, 4, "preload")?;
        check_enum(&self.thread_policy, 3, "thread_policy")?;
        check_enum(&self.split_mode, 1, "split_mode")?;
        check_enum(&self.on_device_oom, 1, "on_device_oom")?;
        let layers = match GpuLayers::from_i64(i64::from(self.gpu_layers)) {
            Ok(l) => l,
            Err(e) => return fail(WOOLLY_ERR_INVALID_ARGUMENT, e.to_string()),
        };
        let main_gpu = match self.main_gpu {
            -1 => None,
            g if g >= 0 => Some(g as usize),
            g => {
                return fail(
                    WOOLLY_ERR_INVALID_ARGUMENT,
                    format!("main_gpu must be -1 (the best) or a device index >= 0, not {g}"),
                )
            }
        };
        if self.n_threads > 1024 {
            return fail(
                WOOLLY_ERR_INVALID_ARGUMENT,
                format!("n_threads = {} is absurd (at most 1024)", self.n_threads),
            );
        }
        let progress = self.progress_callback.map(|f| {
            let ud = UserData(self.progress_user_data);
            Arc::new(move |p: f32| f(p, ud.get())) as woolly_core::model::ProgressFn
        });
        Ok(ModelParams {
            progress,
            preload: self.preload.core(),
            mlock: self.use_mlock,
            repack: self.repack,
            memory: self.memory.core()?,
            context_size: self.context_size as usize,
            gpu: GpuParams {
                layers,
                main_gpu,
                split: self.split_mode.core(),
                margin: Margin::from_bytes(self.gpu_margin_bytes),
                on_device_oom: self.on_device_oom.core(),
            },
        })
    }

    /// The thread settings the handle keeps.
    pub(crate) fn threads(&self) -> ThreadSettings {
        ThreadSettings {
            n_threads: self.n_threads,
            policy: self.thread_policy,
        }
        .or(ThreadSettings {
            n_threads: 0,
            policy: woolly_thread_policy::WOOLLY_THREADS_AUTO,
        })
    }
}

/// Default load parameters: lazy mapping, no mlock, repacking on, automatic threads, no
/// progress callback, the default context and memory policy, and on CUDA GPUs as many layers
/// as fit (`gpu_layers` -1, `main_gpu` -1, `WOOLLY_SPLIT_LAYER`, the default margin,
/// `WOOLLY_DEVICE_OOM_CPU`).
#[no_mangle]
pub extern "C" fn woolly_model_default_params() -> woolly_model_params {
    woolly_model_params {
        preload: woolly_preload::WOOLLY_PRELOAD_LAZY,
        use_mlock: false,
        repack: true,
        n_threads: 0,
        thread_policy: woolly_thread_policy::WOOLLY_THREADS_AUTO,
        progress_callback: None,
        progress_user_data: std::ptr::null_mut(),
        context_size: 0,
        memory: woolly_memory_policy::default(),
        gpu_layers: -1,
        main_gpu: -1,
        split_mode: woolly_split_mode::WOOLLY_SPLIT_LAYER,
        gpu_margin_bytes: 0,
        on_device_oom: woolly_device_oom::WOOLLY_DEVICE_OOM_CPU,
    }
}

/// Loads the GGUF model at `path` (NULL: `$WOOLLY_MODEL`, then the default model installed by
/// `make model`) and stores a new handle in `*out_model` (set to NULL on failure). The caller
/// owns the handle and releases it with [`woolly_model_free`].
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out_model` points to writable storage.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_load(
    path: *const c_char,
    params: woolly_model_params,
    out_model: *mut *mut woolly_model,
) -> woolly_status {
    guard(|| {
        clear_out_handle(out_model, "out_model")?;
        let mp = params.core()?;
        let path = optional_path(path)?;
        let model = Model::load(path.as_deref(), &mp)?;
        put_handle(out_model, woolly_model::new(model, &params));
        Ok(())
    })
}

/// Releases a model (NULL is allowed). Sessions created from it keep their own reference and
/// stay usable until they are freed.
///
/// # Safety
/// `model` is NULL or a handle from [`woolly_model_load`] not freed before.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_free(model: *mut woolly_model) {
    // SAFETY: the caller passes NULL or a live handle from woolly_model_load.
    unsafe { free_handle(model) }
}

/// The model's vocabulary size (0 for NULL).
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_n_vocab(model: *const woolly_model) -> u32 {
    optional(model).map_or(0, |m| m.model.hparams().n_vocab as u32)
}

/// The context length the model was trained with, in tokens (0 for NULL).
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_n_ctx_train(model: *const woolly_model) -> u32 {
    optional(model).map_or(0, |m| {
        m.model.hparams().n_ctx_train.min(u32::MAX as usize) as u32
    })
}

/// The model's architecture name, e.g. `"gemma3"` (static storage; "" for NULL).
///
/// # Safety
/// `model` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_architecture(model: *const woolly_model) -> *const c_char {
    let name = match optional(model).map(|m| m.model.hparams().architecture.name()) {
        Some("gemma3") => "gemma3\0",
        Some("llama") => "llama\0",
        Some("qwen2") => "qwen2\0",
        _ => "\0",
    };
    name.as_ptr() as *const c_char
}

/// The model's facts (architecture, hyperparameters, tensor types and sizes, vocabulary, chat
/// format, load time) as JSON, written like [`woolly_detokenize`] writes text.
///
/// # Safety
/// `model` a live handle; `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_model_info_json(
    model: *const woolly_model,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        let m = required(model, "model")?;
        write_string(&m.model.info()?.to_string(), buf, capacity, len)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each C name is the front ends' name (`Preload::name`) in capitals, but for 4, which
    /// they call `full` and C `FULL_BACKGROUND` (C's `WOOLLY_PRELOAD_FULL` was 1 first).
    #[test]
    fn preload_names_match_the_front_ends() {
        use woolly_preload::*;
        for p in [
            WOOLLY_PRELOAD_LAZY,
            WOOLLY_PRELOAD_FULL_BLOCKING,
            WOOLLY_PRELOAD_SEQUENTIAL,
            WOOLLY_PRELOAD_CRITICAL,
            WOOLLY_PRELOAD_FULL_BACKGROUND,
        ] {
            let c = format!("{p:?}");
            let expected = match p.core().name() {
                "full" => "FULL_BACKGROUND".to_string(),
                n => n.to_uppercase(),
            };
            assert_eq!(c, format!("WOOLLY_PRELOAD_{expected}"));
        }
        #[allow(deprecated)]
        let alias = WOOLLY_PRELOAD_FULL;
        assert_eq!(alias as u32, 1);
        assert_eq!(alias.core().name(), "full_blocking");
    }

    /// The GPU fields convert into the core's `GpuParams` (the defaults into its defaults);
    /// out-of-range values are invalid arguments.
    #[test]
    fn gpu_params_convert_and_bad_ones_are_refused() {
        let d = woolly_model_default_params();
        assert_eq!(d.core().ok().unwrap().gpu, GpuParams::default());
        assert_eq!(
            format!("{:?}", woolly_split_mode::WOOLLY_SPLIT_NONE),
            format!("WOOLLY_SPLIT_{}", SplitMode::None.name().to_uppercase())
        );
        assert_eq!(
            format!("{:?}", woolly_split_mode::WOOLLY_SPLIT_LAYER),
            format!("WOOLLY_SPLIT_{}", SplitMode::Layer.name().to_uppercase())
        );
        let p = woolly_model_params {
            gpu_layers: 0,
            main_gpu: 1,
            split_mode: woolly_split_mode::WOOLLY_SPLIT_NONE,
            gpu_margin_bytes: 1 << 20,
            on_device_oom: woolly_device_oom::WOOLLY_DEVICE_OOM_ERROR,
            ..d
        };
        assert_eq!(
            p.core().ok().unwrap().gpu,
            GpuParams {
                layers: GpuLayers::Count(0),
                main_gpu: Some(1),
                split: SplitMode::None,
                margin: Margin {
                    bytes: 1 << 20,
                    fraction: 0.0
                },
                on_device_oom: DeviceOomPolicy::Error,
            }
        );
        for p in [
            woolly_device_oom::WOOLLY_DEVICE_OOM_CPU,
            woolly_device_oom::WOOLLY_DEVICE_OOM_ERROR,
        ] {
            assert_eq!(
                format!("{p:?}"),
                format!("WOOLLY_DEVICE_OOM_{}", p.core().name().to_uppercase())
            );
        }
        for bad in [
            woolly_model_params {
                gpu_layers: -2,
                ..d
            },
            woolly_model_params { main_gpu: -7, ..d },
        ] {
            let Err(Failure(status, msg)) = bad.core() else {
                panic!("accepted {bad:?}");
            };
            assert_eq!(status, WOOLLY_ERR_INVALID_ARGUMENT, "{msg}");
        }
    }
}
