//! NVIDIA GPUs as the CUDA driver reports them, for placing work on them (the NVML figures in
//! [`super::gpu`] are for monitoring).
//!
//! The driver (`libcuda`) is loaded at run time through `cudarc`: a machine without one, or a
//! build without the `cuda` feature, reports no device with the reason, never an error. The
//! driver is looked for and initialised once per process, on the first [`report`]; each call
//! then enumerates the devices again and reads their free memory now.

use serde::{Serialize, Serializer};

/// `(9, 0)` as `"9.0"`, as NVML's figures and every front end write it.
fn capability_string<S: Serializer>(cc: &(u32, u32), s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{}.{}", cc.0, cc.1))
}

/// One CUDA device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CudaDevice {
    /// The driver's ordinal.
    pub index: usize,
    /// The product name, e.g. `NVIDIA H200`.
    pub name: String,
    /// Device memory in all.
    pub total_bytes: u64,
    /// Device memory free when the report was made.
    pub free_bytes: u64,
    /// Compute capability (major, minor), e.g. (9, 0); `"9.0"` in JSON.
    #[serde(serialize_with = "capability_string")]
    pub compute_capability: (u32, u32),
    /// Streaming multiprocessors.
    pub sm_count: u32,
    /// The most threads a block may have.
    pub max_threads_per_block: u32,
    /// Threads in a warp.
    pub warp_size: u32,
}

/// What the driver reports: devices, or why there are none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CudaReport {
    /// Whether at least one device could be queried.
    pub available: bool,
    /// Why no device is usable (a build without CUDA, no driver, no device, a driver error).
    pub reason: Option<String>,
    /// The CUDA version the driver supports, e.g. `12.4`.
    pub driver_version: Option<String>,
    pub devices: Vec<CudaDevice>,
}

impl CudaReport {
    /// A report of no device, for `reason`.
    pub fn absent(reason: impl Into<String>) -> CudaReport {
        CudaReport {
            available: false,
            reason: Some(reason.into()),
            driver_version: None,
            devices: Vec::new(),
        }
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// The CUDA devices now, or why there are none. Never panics, whatever the machine has.
pub fn report() -> CudaReport {
    #[cfg(feature = "cuda-emulator")]
    if let Some(d) = EMULATED.get() {
        return CudaReport {
            available: true,
            reason: None,
            driver_version: Some("emulated".into()),
            devices: d.clone(),
        };
    }
    imp::report()
}

/// The devices of the host emulation of the kernels, once installed (tests only).
#[cfg(feature = "cuda-emulator")]
static EMULATED: std::sync::OnceLock<Vec<CudaDevice>> = std::sync::OnceLock::new();

/// Makes [`report`] list `devices` alone from now on (`backend::cuda::emulator::install`).
#[cfg(feature = "cuda-emulator")]
pub fn set_emulated(devices: Vec<CudaDevice>) {
    let _ = EMULATED.set(devices);
}

/// The CUDA devices now (empty when [`report`] finds none).
pub fn devices() -> Vec<CudaDevice> {
    report().devices
}

#[cfg(feature = "cuda")]
mod imp {
    use std::sync::OnceLock;

    use cudarc::driver::result::{self, DriverError};
    use cudarc::driver::sys::{self, CUdevice_attribute, CUresult};
    use cudarc::driver::CudaContext;

    use super::{CudaDevice, CudaReport};
    use crate::log::Level;

    /// What the driver's error means, in words.
    fn why(e: &DriverError) -> String {
        if e.0 == CUresult::CUDA_ERROR_NO_DEVICE {
            return "no CUDA device".into();
        }
        let name = e
            .error_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("{:?}", e.0));
        match e.error_string() {
            Ok(text) => format!("CUDA driver error: {name} ({})", text.to_string_lossy()),
            Err(_) => format!("CUDA driver error: {name}"),
        }
    }

    /// The driver, looked for and initialised once: the CUDA version it supports, or why it
    /// cannot be used.
    fn driver() -> Result<&'static Option<String>, &'static str> {
        static DRIVER: OnceLock<Result<Option<String>, String>> = OnceLock::new();
        DRIVER
            .get_or_init(|| {
                // SAFETY: only tries to load the library; cudarc panics on the first call into a
                // driver it cannot load, so nothing else is called unless this says it is there.
                if !unsafe { sys::is_culib_present() } {
                    crate::log!(
                        Level::Info,
                        "CUDA: no driver (libcuda not found); running on the CPU"
                    );
                    return Err("no CUDA driver (libcuda not found)".into());
                }
                result::init().map_err(|e| why(&e))?;
                let mut v = 0i32;
                // SAFETY: the driver is loaded and initialised; `v` is a valid out-pointer.
                let version = unsafe { sys::cuDriverGetVersion(&mut v) }
                    .result()
                    .ok()
                    .map(|()| format!("{}.{}", v / 1000, (v % 1000) / 10));
                Ok(version)
            })
            .as_ref()
            .map_err(String::as_str)
    }

    fn device(index: usize) -> Result<CudaDevice, DriverError> {
        let dev = result::device::get(index as i32)?;
        // SAFETY: `dev` came from cuDeviceGet.
        let attr = |a: CUdevice_attribute| unsafe { result::device::get_attribute(dev, a) };
        let total = unsafe { result::device::total_mem(dev) }?;
        let major = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let sm_count = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        let max_threads = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK)?;
        let warp = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_WARP_SIZE)?;
        // Free memory needs a context: the device's primary one, released when dropped.
        let free = {
            let ctx = CudaContext::new(index)?;
            ctx.mem_get_info()?.0
        };
        let n = |v: i32| u32::try_from(v).unwrap_or(0);
        Ok(CudaDevice {
            index,
            name: result::device::get_name(dev)?,
            total_bytes: total as u64,
            free_bytes: free as u64,
            compute_capability: (n(major), n(minor)),
            sm_count: n(sm_count),
            max_threads_per_block: n(max_threads),
            warp_size: n(warp),
        })
    }

    pub(super) fn report() -> CudaReport {
        // cudarc panics when the loaded driver lacks a function it looks up (an old driver):
        // that is a driver Woolly cannot use, not a crash.
        std::panic::catch_unwind(query).unwrap_or_else(|p| {
            let what = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("unknown");
            CudaReport::absent(format!("CUDA driver error: {what}"))
        })
    }

    fn query() -> CudaReport {
        let version = match driver() {
            Ok(v) => v.clone(),
            Err(reason) => return CudaReport::absent(reason),
        };
        let absent = |reason: String| CudaReport {
            driver_version: version.clone(),
            ..CudaReport::absent(reason)
        };
        let count = match result::device::get_count() {
            Ok(n) => usize::try_from(n).unwrap_or(0),
            Err(e) => return absent(why(&e)),
        };
        if count == 0 {
            return absent("no CUDA device".into());
        }
        let mut devices = Vec::with_capacity(count);
        for i in 0..count {
            match device(i) {
                Ok(d) => devices.push(d),
                Err(e) => return absent(format!("GPU {i}: {}", why(&e))),
            }
        }
        CudaReport {
            available: true,
            reason: None,
            driver_version: version,
            devices,
        }
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use super::CudaReport;

    pub(super) fn report() -> CudaReport {
        CudaReport::absent("built without CUDA")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether this machine has a CUDA driver to load (false in a build without CUDA).
    fn driver_present() -> bool {
        #[cfg(feature = "cuda")]
        {
            // SAFETY: only tries to load the library.
            unsafe { cudarc::driver::sys::is_culib_present() }
        }
        #[cfg(not(feature = "cuda"))]
        false
    }

    #[test]
    fn without_a_driver_the_report_says_why_and_nothing_panics() {
        let r = report();
        let again = report();
        assert_eq!(r.available, again.available);
        let v = r.to_json();
        assert_eq!(v["available"], r.available);
        if cfg!(not(feature = "cuda")) {
            assert_eq!(r, CudaReport::absent("built without CUDA"));
        } else if !driver_present() {
            assert_eq!(r, CudaReport::absent("no CUDA driver (libcuda not found)"));
            assert_eq!(v["reason"], "no CUDA driver (libcuda not found)");
            assert_eq!(v["devices"], serde_json::json!([]));
            assert!(devices().is_empty());
        } else if !r.available {
            // A driver without a usable device: a reason in words, no device.
            let reason = r.reason.as_deref().unwrap();
            assert!(
                reason == "no CUDA device" || reason.contains("CUDA driver error"),
                "{reason}"
            );
            assert!(r.devices.is_empty());
        }
    }

    #[test]
    fn devices_are_reported_with_their_figures() {
        let r = report();
        if !r.available {
            println!(
                "skipped: no CUDA device ({})",
                r.reason.as_deref().unwrap_or("?")
            );
            return;
        }
        assert!(r.reason.is_none());
        let version = r.driver_version.as_deref().unwrap();
        assert!(
            version.split('.').all(|p| p.parse::<u32>().is_ok()),
            "{version}"
        );
        assert!(!r.devices.is_empty());
        for (i, d) in r.devices.iter().enumerate() {
            assert_eq!(d.index, i);
            assert!(!d.name.is_empty());
            assert!(d.total_bytes > 0 && d.free_bytes <= d.total_bytes, "{d:?}");
            assert!(d.compute_capability.0 >= 3, "{d:?}");
            assert!(d.sm_count > 0 && d.max_threads_per_block >= 64, "{d:?}");
            assert_eq!(d.warp_size, 32);
            let v = serde_json::to_value(d).unwrap();
            let cc = format!("{}.{}", d.compute_capability.0, d.compute_capability.1);
            assert_eq!(v["compute_capability"], cc.as_str());
            println!("{v}");
        }
        assert_eq!(devices().len(), r.devices.len());
    }

    #[test]
    fn a_device_serializes_with_the_capability_as_a_string() {
        let d = CudaDevice {
            index: 0,
            name: "NVIDIA H200".into(),
            total_bytes: 150_000_000_000,
            free_bytes: 149_000_000_000,
            compute_capability: (9, 0),
            sm_count: 132,
            max_threads_per_block: 1024,
            warp_size: 32,
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "index": 0, "name": "NVIDIA H200", "total_bytes": 150_000_000_000u64,
                "free_bytes": 149_000_000_000u64, "compute_capability": "9.0", "sm_count": 132,
                "max_threads_per_block": 1024, "warp_size": 32,
            })
        );
    }
}
