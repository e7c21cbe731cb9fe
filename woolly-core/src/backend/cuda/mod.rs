//! The CUDA backend's runtime: a device's context and stream, and the kernels of `kernels/`
//! (CUDA C compiled to PTX by `make kernels`, embedded here; the driver compiles the PTX for
//! whatever GPU is present, so users need only the NVIDIA driver, 535 or later).
//!
//! The driver library is loaded at run time: a build with the `cuda` feature runs on machines
//! without one, where [`Gpu::open`] fails with the reason and everything stays on the CPU.
//! [`check`] compares every kernel with its CPU scalar twin on a real device (`woolly
//! gpu-check kernels`).

pub mod check;
#[cfg(feature = "cuda-emulator")]
pub mod emulator;
pub mod ops;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DeviceRepr,
    DriverError, PushKernelArg, ValidAsZeroBits,
};

use crate::gguf::GgmlType;
use crate::platform::cuda::CudaDevice;
use crate::{Error, Result};

/// The kernels, as PTX for compute capability 7.5 and later (`kernels/woolly.ptx`), when the
/// tree this was built from has them (`make kernels`); without them no device is opened.
#[cfg(woolly_ptx)]
pub const PTX: Option<&str> = Some(include_str!(env!("WOOLLY_PTX")));
/// See above: this build has no kernels.
#[cfg(not(woolly_ptx))]
pub const PTX: Option<&str> = None;

/// The weight types the kernels read, with the suffix of their kernels' names.
pub const WEIGHT_TYPES: [(GgmlType, &str); 13] = [
    (GgmlType::F32, "f32"),
    (GgmlType::F16, "f16"),
    (GgmlType::BF16, "bf16"),
    (GgmlType::Q4_0, "q4_0"),
    (GgmlType::Q4_1, "q4_1"),
    (GgmlType::Q5_0, "q5_0"),
    (GgmlType::Q5_1, "q5_1"),
    (GgmlType::Q8_0, "q8_0"),
    (GgmlType::Q2_K, "q2_k"),
    (GgmlType::Q3_K, "q3_k"),
    (GgmlType::Q4_K, "q4_k"),
    (GgmlType::Q5_K, "q5_k"),
    (GgmlType::Q6_K, "q6_k"),
];

/// The families of kernels that exist for every weight type (`mmv_q4_k`, …).
pub const WEIGHT_FAMILIES: [&str; 4] = ["mmv", "mm", "dequant", "get_rows"];

/// The kernels that do not depend on a weight type.
pub const OTHER_KERNELS: [&str; 12] = [
    "rms_norm",
    "add",
    "add_bias",
    "geglu",
    "swiglu",
    "rope_store",
    "attention",
    "attention_partial",
    "attention_combine",
    "attention_tiled",
    "gather_rows",
    "softmax_rows",
];

/// Every kernel's entry name.
pub fn kernel_names() -> Vec<String> {
    let mut v: Vec<String> = WEIGHT_FAMILIES
        .iter()
        .flat_map(|f| WEIGHT_TYPES.iter().map(move |(_, t)| format!("{f}_{t}")))
        .collect();
    v.extend(OTHER_KERNELS.iter().map(|s| s.to_string()));
    v
}

/// The suffix of `ty`'s kernels, if the kernels read it.
pub fn type_suffix(ty: GgmlType) -> Option<&'static str> {
    WEIGHT_TYPES.iter().find(|(t, _)| *t == ty).map(|(_, s)| *s)
}

/// One kernel parameter, passed by value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param {
    /// A device address (of a [`DevBuf`]), or 0 for none.
    Ptr(u64),
    /// An `int`.
    I32(i32),
    /// A `float`.
    F32(f32),
}

impl From<u64> for Param {
    fn from(v: u64) -> Param {
        Param::Ptr(v)
    }
}

impl From<i32> for Param {
    fn from(v: i32) -> Param {
        Param::I32(v)
    }
}

impl From<f32> for Param {
    fn from(v: f32) -> Param {
        Param::F32(v)
    }
}

/// A buffer of `T` in device memory (or, under the host emulation, in host memory the
/// emulated kernels address directly). Freed when dropped.
pub struct DevBuf<T> {
    inner: BufInner<T>,
}

enum BufInner<T> {
    Cuda(CudaSlice<T>),
    #[cfg(feature = "cuda-emulator")]
    Host {
        words: Vec<u64>,
        len: usize,
        _t: std::marker::PhantomData<T>,
        /// Its share of the emulated device's memory.
        _held: emulator::Held,
    },
}

impl<T> std::fmt::Debug for DevBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevBuf").field("len", &self.len()).finish()
    }
}

impl<T> DevBuf<T> {
    /// Values it holds.
    pub fn len(&self) -> usize {
        match &self.inner {
            BufInner::Cuda(s) => s.len(),
            #[cfg(feature = "cuda-emulator")]
            BufInner::Host { len, .. } => *len,
        }
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a [`Gpu`] runs: through the driver, or on the kernels built for the host.
enum Runtime {
    Driver {
        ctx: Arc<CudaContext>,
        stream: Arc<CudaStream>,
        _module: Arc<CudaModule>,
        functions: HashMap<String, CudaFunction>,
    },
    #[cfg(feature = "cuda-emulator")]
    Host(Arc<emulator::HostKernels>),
}

/// One device opened for computing: its context, a stream, and the kernels loaded.
pub struct Gpu {
    /// What the driver reports of it.
    pub device: CudaDevice,
    rt: Runtime,
    /// Passes' device time and graph use on this device (the model's metrics read them).
    pub counters: Arc<DeviceCounters>,
    /// Scratch sets (sessions, engines) now using the stream: a graph is captured only while
    /// there is one, since a capture takes in whatever else the stream receives meanwhile.
    users: AtomicUsize,
    /// Held while capturing and while a user registers.
    capture_lock: Mutex<()>,
    /// Set when the driver refused a capture: passes launch kernel by kernel from then on.
    no_graphs: AtomicBool,
}

/// What a device did for a model's passes, for its metrics.
#[derive(Debug, Default)]
pub struct DeviceCounters {
    /// Device time of forward passes, in nanoseconds (from the first launch to the results).
    pub busy_ns: AtomicU64,
    /// Passes captured as a CUDA graph, and passes that replayed one.
    pub graph_captures: AtomicU64,
    pub graph_replays: AtomicU64,
}

/// One kernel launch, as a graph holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelCall {
    /// The kernel's entry name.
    pub name: String,
    /// Blocks and threads per block.
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    /// Its parameters, in order.
    pub params: Vec<Param>,
}

/// The launches of a forward pass captured once and replayed with one call: a CUDA graph on a
/// GPU (on the host emulation, the recorded launches run again). Its parameters are fixed at
/// capture, so everything that changes from step to step (positions, the cache) is read from
/// device memory, and a pass replays a graph only when its launches equal the captured ones.
pub struct Graph {
    calls: Vec<KernelCall>,
    exec: GraphExec,
}

enum GraphExec {
    Cuda(cudarc::driver::CudaGraph),
    #[cfg(feature = "cuda-emulator")]
    Host,
}

// SAFETY: a graph is used by one thread at a time (through the `&mut` of the scratch set that
// owns it), which is what the driver asks of graph objects; it holds no thread-bound state.
unsafe impl Send for Graph {}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("launches", &self.calls.len())
            .finish()
    }
}

impl Graph {
    /// The launches it replays.
    pub fn calls(&self) -> &[KernelCall] {
        &self.calls
    }
}

/// A registered user of a [`Gpu`]'s stream (see [`Gpu::register`]); unregisters when dropped.
pub struct GpuUser {
    gpu: Arc<Gpu>,
}

impl std::fmt::Debug for GpuUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GpuUser")
    }
}

impl GpuUser {
    /// The device.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }
}

impl Drop for GpuUser {
    fn drop(&mut self) {
        self.gpu.users.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A point in a device's stream, for timing passes.
pub enum Mark {
    Event(cudarc::driver::CudaEvent),
    #[cfg(feature = "cuda-emulator")]
    Instant(std::time::Instant),
}

impl std::fmt::Debug for Mark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mark")
    }
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu").field("device", &self.device).finish()
    }
}

impl Gpu {
    /// Opens device `index`: a context, a stream, and the embedded kernels compiled by the
    /// driver for it.
    ///
    /// # Errors
    /// [`Error::Unsupported`] when there is no driver or no such device; [`Error::Device`]
    /// when the driver fails (the PTX needs a newer driver, for example).
    pub fn open(index: usize) -> Result<Gpu> {
        #[cfg(feature = "cuda-emulator")]
        if let Some(k) = emulator::installed() {
            let device = emulator::device(index).ok_or_else(|| {
                Error::Unsupported(format!("no CUDA device {index}: not an emulated one"))
            })?;
            return Ok(Gpu::with(device, Runtime::Host(k)));
        }
        let report = crate::platform::cuda::report();
        let Some(device) = report.devices.iter().find(|d| d.index == index).cloned() else {
            return Err(Error::Unsupported(format!(
                "no CUDA device {index}: {}",
                report
                    .reason
                    .as_deref()
                    .unwrap_or("the driver lists no such device")
            )));
        };
        let Some(ptx) = PTX else {
            return Err(Error::Unsupported(
                "this build has no CUDA kernels (kernels/woolly.ptx was absent when it was built)"
                    .into(),
            ));
        };
        let err = |e: DriverError| device_error(index, e);
        let ctx = CudaContext::new(index).map_err(err)?;
        // SAFETY: every buffer of this context is used on its one stream, so the stream orders
        // all uses and frees; without per-buffer events, a graph capture holds only launches.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(err)?;
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_src(ptx))
            .map_err(|e| Error::Device {
                device: index,
                message: format!(
                    "the driver cannot load Woolly's kernels ({e}); they need an NVIDIA driver of version 535 or later"
                ),
            })?;
        let mut functions = HashMap::new();
        for name in kernel_names() {
            let f = module.load_function(&name).map_err(err)?;
            functions.insert(name, f);
        }
        Ok(Gpu::with(
            device,
            Runtime::Driver {
                ctx,
                stream,
                _module: module,
                functions,
            },
        ))
    }

    fn with(device: CudaDevice, rt: Runtime) -> Gpu {
        Gpu {
            device,
            rt,
            counters: Arc::default(),
            users: AtomicUsize::new(0),
            capture_lock: Mutex::new(()),
            no_graphs: AtomicBool::new(false),
        }
    }

    /// Registers a user of the stream (a scratch set, at its first pass); passes of a user
    /// are captured as graphs only while it is the only one.
    pub fn register(self: &Arc<Self>) -> GpuUser {
        let _g = self.capture_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.users.fetch_add(1, Ordering::AcqRel);
        GpuUser { gpu: self.clone() }
    }

    /// Runs `calls` in order and captures them as a graph to replay ([`Gpu::replay`]), or
    /// only runs them (`None`) when the stream has other users or the driver refuses graphs.
    ///
    /// # Safety
    /// As [`Gpu::launch`], for every call; and the buffers they address must outlive the
    /// graph's replays.
    pub unsafe fn capture(&self, calls: Vec<KernelCall>) -> Result<Option<Graph>> {
        let run_all = |calls: &[KernelCall]| -> Result<()> {
            for c in calls {
                // SAFETY: the caller's promise, above.
                unsafe { self.launch(&c.name, c.grid, c.block, &c.params)? };
            }
            Ok(())
        };
        let _g = self.capture_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.users.load(Ordering::Acquire) > 1 || self.no_graphs.load(Ordering::Relaxed) {
            run_all(&calls)?;
            return Ok(None);
        }
        match &self.rt {
            Runtime::Driver { stream, .. } => {
                use cudarc::driver::sys;
                let dev = self.device.index;
                if let Err(e) = stream
                    .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
                {
                    self.refuse_graphs(&e);
                    run_all(&calls)?;
                    return Ok(None);
                }
                let launched = run_all(&calls);
                let ended = stream.end_capture(sys::CUgraphInstantiate_flags(0));
                launched?;
                match ended {
                    Ok(Some(g)) => {
                        g.launch().map_err(|e| device_error(dev, e))?;
                        self.counters.graph_captures.fetch_add(1, Ordering::Relaxed);
                        Ok(Some(Graph {
                            calls,
                            exec: GraphExec::Cuda(g),
                        }))
                    }
                    Ok(None) => {
                        run_all(&calls)?;
                        Ok(None)
                    }
                    Err(e) => {
                        self.refuse_graphs(&e);
                        run_all(&calls)?;
                        Ok(None)
                    }
                }
            }
            #[cfg(feature = "cuda-emulator")]
            Runtime::Host(_) => {
                run_all(&calls)?;
                self.counters.graph_captures.fetch_add(1, Ordering::Relaxed);
                Ok(Some(Graph {
                    calls,
                    exec: GraphExec::Host,
                }))
            }
        }
    }

    fn refuse_graphs(&self, e: &DriverError) {
        if !self.no_graphs.swap(true, Ordering::Relaxed) {
            crate::log!(
                crate::log::Level::Warn,
                "GPU {}: the driver refused a CUDA graph ({e}); launching kernel by kernel",
                self.device.index
            );
        }
    }

    /// Runs `graph` again.
    ///
    /// # Errors
    /// When the driver fails.
    pub fn replay(&self, graph: &Graph) -> Result<()> {
        self.counters.graph_replays.fetch_add(1, Ordering::Relaxed);
        match &graph.exec {
            GraphExec::Cuda(g) => g.launch().map_err(|e| device_error(self.device.index, e)),
            #[cfg(feature = "cuda-emulator")]
            GraphExec::Host => {
                for c in &graph.calls {
                    // SAFETY: the capture's promise: the same launches, their buffers alive.
                    unsafe { self.launch(&c.name, c.grid, c.block, &c.params)? };
                }
                Ok(())
            }
        }
    }

    /// The stream's position now, for [`Gpu::elapsed_since`].
    ///
    /// # Errors
    /// When the driver fails.
    pub fn mark(&self) -> Result<Mark> {
        match &self.rt {
            Runtime::Driver { ctx, stream, .. } => {
                let e = ctx
                    .new_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))
                    .and_then(|e| e.record(stream).map(|()| e))
                    .map_err(|e| device_error(self.device.index, e))?;
                Ok(Mark::Event(e))
            }
            #[cfg(feature = "cuda-emulator")]
            Runtime::Host(_) => Ok(Mark::Instant(std::time::Instant::now())),
        }
    }

    /// Counts the device time from `start` to now (after everything launched since has run)
    /// as busy.
    ///
    /// # Errors
    /// When the driver fails.
    pub fn elapsed_since(&self, start: &Mark) -> Result<()> {
        let ns = match (start, &self.rt) {
            (Mark::Event(a), Runtime::Driver { stream, .. }) => {
                let dev = self.device.index;
                let b = stream
                    .record_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))
                    .map_err(|e| device_error(dev, e))?;
                let ms = a.elapsed_ms(&b).map_err(|e| device_error(dev, e))?;
                (f64::from(ms) * 1e6) as u64
            }
            #[cfg(feature = "cuda-emulator")]
            (Mark::Instant(t), _) => t.elapsed().as_nanos() as u64,
            #[cfg(feature = "cuda-emulator")]
            _ => 0,
        };
        self.counters.busy_ns.fetch_add(ns, Ordering::Relaxed);
        Ok(())
    }

    /// Whether this runs on the host emulation of the kernels (tests), not a device.
    pub fn is_emulated(&self) -> bool {
        !matches!(self.rt, Runtime::Driver { .. })
    }

    /// Launches kernel `name` over `grid` blocks of `block` threads with `params` (in the
    /// kernel's order and types, kernels/README.md), on this device's stream.
    ///
    /// # Safety
    /// Every pointer parameter must address a buffer of this device that holds what the
    /// kernel reads and writes for these sizes.
    pub unsafe fn launch(
        &self,
        name: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        params: &[Param],
    ) -> Result<()> {
        match &self.rt {
            Runtime::Driver {
                stream, functions, ..
            } => {
                let f = functions
                    .get(name)
                    .ok_or_else(|| Error::Internal(format!("no CUDA kernel {name}")))?;
                let mut b = stream.launch_builder(f);
                for p in params {
                    match p {
                        Param::Ptr(v) => b.arg(v),
                        Param::I32(v) => b.arg(v),
                        Param::F32(v) => b.arg(v),
                    };
                }
                let cfg = cudarc::driver::LaunchConfig {
                    grid_dim: grid,
                    block_dim: block,
                    shared_mem_bytes: 0,
                };
                // SAFETY: the caller's promise, above.
                unsafe { b.launch(cfg) }
                    .map(|_| ())
                    .map_err(|e| device_error(self.device.index, e))
            }
            #[cfg(feature = "cuda-emulator")]
            // SAFETY: the caller's promise, above.
            Runtime::Host(k) => unsafe { k.launch(name, grid, block, params) },
        }
    }

    /// Bytes free on the device now.
    pub fn free_bytes(&self) -> Result<u64> {
        match &self.rt {
            Runtime::Driver { ctx, .. } => {
                let (free, _) = ctx
                    .mem_get_info()
                    .map_err(|e| device_error(self.device.index, e))?;
                Ok(free as u64)
            }
            #[cfg(feature = "cuda-emulator")]
            Runtime::Host(_) => Ok(self
                .device
                .free_bytes
                .saturating_sub(emulator::used_bytes(self.device.index))),
        }
    }

    /// The device address of `b`, for a kernel parameter.
    pub fn ptr<T>(&self, b: &DevBuf<T>) -> u64 {
        match (&b.inner, &self.rt) {
            (BufInner::Cuda(s), Runtime::Driver { stream, .. }) => {
                let (p, _sync) = s.device_ptr(stream);
                p
            }
            #[cfg(feature = "cuda-emulator")]
            (BufInner::Host { words, .. }, _) => words.as_ptr() as u64,
            #[cfg(feature = "cuda-emulator")]
            _ => 0,
        }
    }

    /// `src` copied to the device.
    ///
    /// # Errors
    /// [`Error::OutOfDeviceMemory`] when it does not fit (`what` names it in the message).
    pub fn upload<T: DeviceRepr>(&self, src: &[T], what: &str) -> Result<DevBuf<T>> {
        match &self.rt {
            Runtime::Driver { stream, .. } => stream
                .clone_htod(src)
                .map(|s| DevBuf {
                    inner: BufInner::Cuda(s),
                })
                .map_err(|e| self.alloc_error(e, std::mem::size_of_val(src), what)),
            #[cfg(feature = "cuda-emulator")]
            Runtime::Host(_) => {
                let bytes = std::mem::size_of_val(src);
                let _held = emulator::hold(&self.device, bytes, what)?;
                let mut words = vec![0u64; bytes.div_ceil(8).max(1)];
                // SAFETY: `words` holds at least `bytes` bytes; `T` is plain device data.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        src.as_ptr().cast::<u8>(),
                        words.as_mut_ptr().cast::<u8>(),
                        bytes,
                    )
                };
                Ok(DevBuf {
                    inner: BufInner::Host {
                        words,
                        len: src.len(),
                        _t: std::marker::PhantomData,
                        _held,
                    },
                })
            }
        }
    }

    /// A zeroed buffer of `len` values.
    ///
    /// # Errors
    /// As [`Gpu::upload`].
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(
        &self,
        len: usize,
        what: &str,
    ) -> Result<DevBuf<T>> {
        match &self.rt {
            Runtime::Driver { stream, .. } => stream
                .alloc_zeros(len)
                .map(|s| DevBuf {
                    inner: BufInner::Cuda(s),
                })
                .map_err(|e| self.alloc_error(e, len * std::mem::size_of::<T>(), what)),
            #[cfg(feature = "cuda-emulator")]
            Runtime::Host(_) => {
                let bytes = len * std::mem::size_of::<T>();
                let _held = emulator::hold(&self.device, bytes, what)?;
                Ok(DevBuf {
                    inner: BufInner::Host {
                        words: vec![0u64; bytes.div_ceil(8).max(1)],
                        len,
                        _t: std::marker::PhantomData,
                        _held,
                    },
                })
            }
        }
    }

    /// `src` copied into the first `src.len()` values of `dst`.
    pub fn write<T: DeviceRepr>(&self, dst: &mut DevBuf<T>, src: &[T]) -> Result<()> {
        if src.len() > dst.len() {
            return Err(Error::Internal("a device copy past its buffer".into()));
        }
        match (&mut dst.inner, &self.rt) {
            (BufInner::Cuda(d), Runtime::Driver { stream, .. }) => stream
                .memcpy_htod(src, &mut d.slice_mut(0..src.len()))
                .map_err(|e| device_error(self.device.index, e)),
            #[cfg(feature = "cuda-emulator")]
            (BufInner::Host { words, .. }, _) => {
                // SAFETY: the buffer holds at least `src.len()` values of `T`.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        src.as_ptr().cast::<u8>(),
                        words.as_mut_ptr().cast::<u8>(),
                        std::mem::size_of_val(src),
                    )
                };
                Ok(())
            }
            #[cfg(feature = "cuda-emulator")]
            _ => Err(Error::Internal("a buffer of another runtime".into())),
        }
    }

    /// The first `dst.len()` values of `src` copied back to the host (after everything
    /// launched so far).
    pub fn read<T: DeviceRepr>(&self, src: &DevBuf<T>, dst: &mut [T]) -> Result<()> {
        if dst.len() > src.len() {
            return Err(Error::Internal("a device copy past its buffer".into()));
        }
        match (&src.inner, &self.rt) {
            (BufInner::Cuda(s), Runtime::Driver { stream, .. }) => {
                stream
                    .memcpy_dtoh(&s.slice(0..dst.len()), dst)
                    .map_err(|e| device_error(self.device.index, e))?;
                self.synchronize()
            }
            #[cfg(feature = "cuda-emulator")]
            (BufInner::Host { words, .. }, _) => {
                // SAFETY: the buffer holds at least `dst.len()` values of `T`.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        words.as_ptr().cast::<u8>(),
                        dst.as_mut_ptr().cast::<u8>(),
                        std::mem::size_of_val(dst),
                    )
                };
                Ok(())
            }
            #[cfg(feature = "cuda-emulator")]
            _ => Err(Error::Internal("a buffer of another runtime".into())),
        }
    }

    /// The buffer's values copied back to the host.
    pub fn download<T: DeviceRepr + Default + Clone>(&self, src: &DevBuf<T>) -> Result<Vec<T>> {
        let mut out = vec![T::default(); src.len()];
        self.read(src, &mut out)?;
        Ok(out)
    }

    /// Waits for everything launched so far.
    pub fn synchronize(&self) -> Result<()> {
        match &self.rt {
            Runtime::Driver { stream, .. } => stream
                .synchronize()
                .map_err(|e| device_error(self.device.index, e)),
            #[cfg(feature = "cuda-emulator")]
            Runtime::Host(_) => Ok(()),
        }
    }

    fn alloc_error(&self, e: DriverError, bytes: usize, what: &str) -> Error {
        if e.0 == cudarc::driver::sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY {
            Error::OutOfDeviceMemory {
                device: self.device.index,
                what: what.to_string(),
                required: bytes as u64,
                free: self.free_bytes().unwrap_or(0),
            }
        } else {
            device_error(self.device.index, e)
        }
    }
}

/// A driver error on device `index` as Woolly's error.
pub(crate) fn device_error(index: usize, e: DriverError) -> Error {
    Error::Device {
        device: index,
        message: format!("CUDA driver error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_ptx_has_every_kernel_the_backend_launches() {
        let Some(ptx) = PTX else {
            println!("skipped: this tree has no kernels/woolly.ptx yet");
            return;
        };
        for name in kernel_names() {
            let entry = format!(".entry {name}(");
            assert!(ptx.contains(&entry), "kernels/woolly.ptx lacks {entry}");
        }
        // Compute capability 7.5 and later, through the driver's JIT.
        assert!(ptx.contains(".target sm_75"), "the PTX targets sm_75");
    }

    #[test]
    fn every_weight_type_of_the_cpu_path_has_kernels() {
        for ty in [
            GgmlType::F32,
            GgmlType::F16,
            GgmlType::BF16,
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q8_0,
            GgmlType::Q2_K,
            GgmlType::Q3_K,
            GgmlType::Q4_K,
            GgmlType::Q5_K,
            GgmlType::Q6_K,
        ] {
            assert!(type_suffix(ty).is_some(), "{ty:?}");
        }
    }

    #[test]
    fn without_a_device_open_says_why() {
        let report = crate::platform::cuda::report();
        if report.available {
            println!(
                "skipped: a CUDA device is present ({} found)",
                report.devices.len()
            );
            return;
        }
        let e = Gpu::open(0).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Unsupported);
        assert!(e.to_string().contains("no CUDA device 0"), "{e}");
    }
}
