//! NVIDIA GPUs as the CUDA driver reports them, for placing work on them (the NVML figures in
//! [`super::gpu`] are for monitoring).

use serde::Serialize;

/// One CUDA device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CudaDevice {
    /// The driver's ordinal.
    pub index: usize,
    pub name: String,
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// Compute capability (major, minor), e.g. (9, 0).
    pub compute_capability: (u32, u32),
    pub sm_count: u32,
    pub max_threads_per_block: u32,
    pub warp_size: u32,
}

/// What the driver reports: devices, or why there are none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CudaReport {
    pub available: bool,
    /// Why no device is usable (a build without CUDA, no driver, no device, a driver error).
    pub reason: Option<String>,
    /// The CUDA version the driver supports, e.g. `12.4`.
    pub driver_version: Option<String>,
    pub devices: Vec<CudaDevice>,
}
