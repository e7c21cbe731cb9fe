//! The CUDA backend on the kernels' own source built for the host (kernels/host: each block's
//! threads as real threads, barriers for `__syncthreads` and warp shuffles), for the tests of
//! machines without a GPU: once [`install`]ed, the devices report lists one emulated device and
//! [`Gpu::open`](super::Gpu::open) runs every launch of the backend through the host library, on
//! buffers in host memory. It checks what the backend launches and in what order (buffers,
//! offsets, the KV cache's layout, the pass split with the CPU); it says nothing about speed.
//! Only the `cuda-emulator` feature has it, which no shipped build enables.

use std::ffi::{c_char, c_void, CString};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use super::Param;
use crate::platform::cuda::CudaDevice;
use crate::{Error, Result};

type Launch = unsafe extern "C" fn(*const c_char, *const u32, *const u32, *mut *mut c_void) -> i32;

/// The kernels built for the host (kernels/host/twin.cpp), loaded.
pub struct HostKernels {
    lib: libloading::Library,
}

impl std::fmt::Debug for HostKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostKernels")
    }
}

static INSTALLED: OnceLock<Arc<HostKernels>> = OnceLock::new();

/// Memory an emulated device reports by default.
pub const EMULATED_BYTES: u64 = 8 << 30;

static DEVICES: OnceLock<Vec<CudaDevice>> = OnceLock::new();

/// Emulated device `index`, as the devices report lists it.
pub(crate) fn device(index: usize) -> Option<CudaDevice> {
    DEVICES.get().and_then(|d| d.get(index)).cloned()
}

fn describe(index: usize, bytes: u64) -> CudaDevice {
    CudaDevice {
        index,
        name: format!("Woolly's kernels emulated on the host ({index})"),
        total_bytes: bytes,
        free_bytes: bytes,
        compute_capability: (7, 5),
        sm_count: 1,
        max_threads_per_block: 1024,
        warp_size: 32,
    }
}

/// Loads the host build of the kernels at `library` and makes it the process's only CUDA
/// device from now on, with [`EMULATED_BYTES`] (once per process; later calls keep the first).
///
/// # Errors
/// When the library cannot be loaded or lacks the launch entry.
pub fn install(library: &Path) -> Result<()> {
    install_devices(library, &[EMULATED_BYTES])
}

/// [`install`] with one emulated device per entry of `memory`, each reporting that many bytes
/// (for the planner's split across several devices).
///
/// # Errors
/// As [`install`].
pub fn install_devices(library: &Path, memory: &[u64]) -> Result<()> {
    // SAFETY: the library is Woolly's own host build of its kernels (kernels/host/twin.cpp),
    // whose initializers only build a table of kernel names.
    let lib = unsafe { libloading::Library::new(library) }
        .map_err(|e| Error::Unsupported(format!("the host kernels {}: {e}", library.display())))?;
    // SAFETY: looks the symbol up only; its type is checked at each call's use.
    unsafe { lib.get::<Launch>(b"woolly_emulate_launch") }
        .map_err(|e| Error::Unsupported(format!("the host kernels {}: {e}", library.display())))?;
    let _ = INSTALLED.set(Arc::new(HostKernels { lib }));
    let devices: Vec<CudaDevice> = memory
        .iter()
        .enumerate()
        .map(|(i, &b)| describe(i, b))
        .collect();
    let _ = DEVICES.set(devices.clone());
    crate::platform::cuda::set_emulated(devices);
    Ok(())
}

/// The installed host kernels, if any.
pub(crate) fn installed() -> Option<Arc<HostKernels>> {
    INSTALLED.get().cloned()
}

impl HostKernels {
    /// Runs kernel `name` as the driver would, to completion.
    ///
    /// # Safety
    /// As [`Gpu::launch`](super::Gpu::launch): pointer parameters address host buffers of the
    /// emulated device large enough for the launch.
    pub(crate) unsafe fn launch(
        &self,
        name: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        params: &[Param],
    ) -> Result<()> {
        // Each parameter in an 8-byte slot: the kernel reads its own width from the start.
        let mut slots: Vec<u64> = params
            .iter()
            .map(|p| match *p {
                Param::Ptr(v) => v,
                Param::I32(v) => v as u32 as u64,
                Param::F32(v) => v.to_bits() as u64,
            })
            .collect();
        let mut args: Vec<*mut c_void> = slots.iter_mut().map(|s| (s as *mut u64).cast()).collect();
        let (g, b) = ([grid.0, grid.1, grid.2], [block.0, block.1, block.2]);
        let cname =
            CString::new(name).map_err(|_| Error::Internal("a kernel name with NUL".into()))?;
        // SAFETY: the symbol has this signature (kernels/host/twin.cpp); `args` holds one
        // value per kernel parameter, alive for the call; the buffers are the caller's promise.
        let rc = unsafe {
            let f = self
                .lib
                .get::<Launch>(b"woolly_emulate_launch")
                .map_err(|e| Error::Internal(e.to_string()))?;
            f(cname.as_ptr(), g.as_ptr(), b.as_ptr(), args.as_mut_ptr())
        };
        match rc {
            0 => Ok(()),
            -2 => Err(Error::Internal(format!(
                "host kernel {name}: a barrier that some of a block's threads never reach"
            ))),
            _ => Err(Error::Internal(format!(
                "no host kernel {name}, or a block of {} threads",
                block.0 * block.1 * block.2
            ))),
        }
    }
}

/// Emulated devices the memory bookkeeping below covers (more are not enforced).
const MAX_DEVICES: usize = 64;

/// Bytes of the buffers alive on each emulated device.
static USED: [std::sync::atomic::AtomicU64; MAX_DEVICES] =
    [const { std::sync::atomic::AtomicU64::new(0) }; MAX_DEVICES];

/// Bytes of buffers alive on emulated device `index` now.
pub fn used_bytes(index: usize) -> u64 {
    USED.get(index)
        .map_or(0, |u| u.load(std::sync::atomic::Ordering::Relaxed))
}

/// One buffer's share of an emulated device's memory, given back when dropped.
#[derive(Debug)]
pub(crate) struct Held {
    index: usize,
    bytes: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(u) = USED.get(self.index) {
            u.fetch_sub(self.bytes, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Takes `bytes` of `device`'s memory for a buffer of `what`, as a GPU's allocator would: past
/// the memory the device reports (`total_bytes`) it fails with [`Error::OutOfDeviceMemory`].
pub(crate) fn hold(device: &CudaDevice, bytes: usize, what: &str) -> Result<Held> {
    use std::sync::atomic::Ordering;
    let bytes = bytes as u64;
    let Some(used) = USED.get(device.index) else {
        return Ok(Held {
            index: device.index,
            bytes: 0,
        });
    };
    let total = device.total_bytes;
    used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
        u.checked_add(bytes).filter(|&n| n <= total)
    })
    .map_err(|u| Error::OutOfDeviceMemory {
        device: device.index,
        what: what.to_string(),
        required: bytes,
        free: total.saturating_sub(u),
    })?;
    Ok(Held {
        index: device.index,
        bytes,
    })
}
