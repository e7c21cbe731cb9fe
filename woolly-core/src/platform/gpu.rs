//! GPUs on this machine, as NVIDIA's management library (NVML) reports them.
//!
//! Woolly computes on the CPU; the GPU figures are for diagnostics and monitoring (what else
//! the machine has, how busy and hot it is). NVML is loaded at run time (`libnvidia-ml.so.1`,
//! `nvml.dll`) through the `nvml-wrapper` crate, so Woolly builds and runs without a driver: a
//! machine without one, or a build without the `nvml` feature, reports the GPU *absent* with
//! the reason, never an error. The library is loaded and initialised once per process, on the
//! first [`detect`]; every later call only queries it.

use serde::Serialize;

/// One GPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuDevice {
    /// NVML's index of the device.
    pub index: u32,
    pub name: Option<String>,
    pub uuid: Option<String>,
    /// CUDA compute capability, e.g. `9.0`.
    pub compute_capability: Option<String>,
    pub memory_total_bytes: Option<u64>,
    pub memory_used_bytes: Option<u64>,
    pub memory_free_bytes: Option<u64>,
    /// Percent of the last sample period in which a kernel ran, and in which device memory
    /// was read or written.
    pub utilization_percent: Option<u32>,
    pub memory_utilization_percent: Option<u32>,
    /// Die temperature in °C.
    pub temperature_celsius: Option<u32>,
    /// Power draw and the enforced limit, in watts.
    pub power_watts: Option<f64>,
    pub power_limit_watts: Option<f64>,
}

/// What the machine has: devices, or why there are none.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuReport {
    /// Whether at least one GPU could be queried.
    pub available: bool,
    /// Why no GPU is reported (no driver, a build without NVML, no device, an NVML error).
    pub reason: Option<String>,
    /// Where the figures come from: `nvml`.
    pub backend: &'static str,
    pub driver_version: Option<String>,
    pub nvml_version: Option<String>,
    /// The CUDA version the driver supports, e.g. `12.4`.
    pub cuda_driver_version: Option<String>,
    pub devices: Vec<GpuDevice>,
}

impl GpuReport {
    /// A report of no GPU, for `reason`.
    pub fn absent(reason: impl Into<String>) -> GpuReport {
        GpuReport {
            available: false,
            reason: Some(reason.into()),
            backend: "nvml",
            driver_version: None,
            nvml_version: None,
            cuda_driver_version: None,
            devices: Vec::new(),
        }
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// The GPUs now (figures such as utilization and temperature are read at each call).
pub fn detect() -> GpuReport {
    imp::detect()
}

/// Explicit opt-in that changes the system for every program: sets the power limit of NVIDIA
/// GPU `index` to `watts` through NVML. Woolly never calls this by itself.
///
/// # Errors
/// [`crate::Error::PermissionDenied`] when the driver refuses (it needs root);
/// [`crate::Error::Unsupported`] without an NVIDIA driver, without the `nvml` feature, or for a
/// device that has no settable limit; [`crate::Error::InvalidArgument`] for a limit that is not
/// a positive number or a device that does not exist.
pub fn set_power_limit(index: u32, watts: f64) -> crate::Result<()> {
    if !(watts.is_finite() && watts > 0.0 && watts < 100_000.0) {
        return Err(crate::Error::InvalidArgument(format!(
            "{watts} W is not a power limit"
        )));
    }
    imp::set_power_limit(index, watts)
}

#[cfg(feature = "nvml")]
mod imp {
    use std::sync::OnceLock;

    use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
    use nvml_wrapper::error::NvmlError;
    use nvml_wrapper::Nvml;

    use super::{GpuDevice, GpuReport};

    /// NVML, initialised once; or why it could not be.
    fn nvml() -> Result<&'static Nvml, &'static str> {
        static NVML: OnceLock<Result<Nvml, String>> = OnceLock::new();
        NVML.get_or_init(|| Nvml::init().map_err(|e| why(&e)))
            .as_ref()
            .map_err(String::as_str)
    }

    fn why(e: &NvmlError) -> String {
        match e {
            NvmlError::LibloadingError(inner) => format!(
                "no NVIDIA driver: the NVML library ({}) could not be loaded: {inner}",
                if cfg!(windows) {
                    "nvml.dll"
                } else {
                    "libnvidia-ml.so.1"
                }
            ),
            NvmlError::DriverNotLoaded => "the NVIDIA driver is installed but not loaded".into(),
            NvmlError::NoPermission => "NVML has no permission to talk to the NVIDIA driver".into(),
            NvmlError::LibraryNotFound => "no NVIDIA driver: the NVML library was not found".into(),
            other => format!("NVML could not be initialised: {other}"),
        }
    }

    pub(super) fn set_power_limit(index: u32, watts: f64) -> crate::Result<()> {
        use crate::Error;
        let nvml = nvml().map_err(|r| Error::Unsupported(r.to_string()))?;
        let mut d = nvml.device_by_index(index).map_err(|e| match e {
            NvmlError::InvalidArg => Error::InvalidArgument(format!("no GPU {index}")),
            e => Error::Unsupported(format!("GPU {index}: {e}")),
        })?;
        d.set_power_management_limit((watts * 1e3) as u32)
            .map_err(|e| match e {
                NvmlError::NoPermission => Error::PermissionDenied(format!(
                    "the NVIDIA driver refused to set GPU {index}'s power limit (this needs root)"
                )),
                NvmlError::InvalidArg => {
                    Error::InvalidArgument(format!("{watts} W is outside GPU {index}'s range"))
                }
                e => Error::Unsupported(format!("GPU {index}'s power limit: {e}")),
            })?;
        crate::log!(
            crate::log::Level::Warn,
            "GPU {index} power limit set to {watts:.0} W at the host application's request"
        );
        Ok(())
    }

    pub(super) fn detect() -> GpuReport {
        let nvml = match nvml() {
            Ok(n) => n,
            Err(reason) => return GpuReport::absent(reason),
        };
        let count = match nvml.device_count() {
            Ok(n) => n,
            Err(e) => return GpuReport::absent(format!("NVML cannot count devices: {e}")),
        };
        let cuda = nvml.sys_cuda_driver_version().ok().map(|v| {
            format!(
                "{}.{}",
                nvml_wrapper::cuda_driver_version_major(v),
                nvml_wrapper::cuda_driver_version_minor(v)
            )
        });
        let mut devices = Vec::new();
        let mut failures = Vec::new();
        for index in 0..count {
            let d = match nvml.device_by_index(index) {
                Ok(d) => d,
                Err(e) => {
                    failures.push(format!("device {index}: {e}"));
                    continue;
                }
            };
            let mem = d.memory_info().ok();
            let util = d.utilization_rates().ok();
            devices.push(GpuDevice {
                index,
                name: d.name().ok(),
                uuid: d.uuid().ok(),
                compute_capability: d
                    .cuda_compute_capability()
                    .ok()
                    .map(|c| format!("{}.{}", c.major, c.minor)),
                memory_total_bytes: mem.as_ref().map(|m| m.total),
                memory_used_bytes: mem.as_ref().map(|m| m.used),
                memory_free_bytes: mem.as_ref().map(|m| m.free),
                utilization_percent: util.as_ref().map(|u| u.gpu),
                memory_utilization_percent: util.as_ref().map(|u| u.memory),
                temperature_celsius: d.temperature(TemperatureSensor::Gpu).ok(),
                power_watts: d.power_usage().ok().map(|mw| mw as f64 / 1e3),
                power_limit_watts: d.enforced_power_limit().ok().map(|mw| mw as f64 / 1e3),
            });
        }
        let reason = if devices.is_empty() {
            Some(if failures.is_empty() {
                "the NVIDIA driver is loaded but reports no device".to_string()
            } else {
                format!("no device could be queried ({})", failures.join("; "))
            })
        } else {
            None
        };
        GpuReport {
            available: !devices.is_empty(),
            reason,
            backend: "nvml",
            driver_version: nvml.sys_driver_version().ok(),
            nvml_version: nvml.sys_nvml_version().ok(),
            cuda_driver_version: cuda,
            devices,
        }
    }
}

#[cfg(not(feature = "nvml"))]
mod imp {
    use super::GpuReport;

    pub(super) fn detect() -> GpuReport {
        GpuReport::absent("this build of Woolly has no NVML support (the `nvml` feature is off)")
    }

    pub(super) fn set_power_limit(_index: u32, _watts: f64) -> crate::Result<()> {
        Err(crate::Error::Unsupported(
            "this build of Woolly has no NVML support (the `nvml` feature is off)".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_power_limit_opt_in_reports_why_it_cannot() {
        assert_eq!(
            super::set_power_limit(0, -5.0).unwrap_err().kind(),
            crate::ErrorKind::InvalidArgument
        );
        if !super::detect().available {
            // No driver here: a clear refusal, never a crash.
            let e = super::set_power_limit(0, 100.0).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Unsupported, "{e}");
        }
    }

    #[test]
    fn a_report_either_has_devices_or_says_why_not() {
        let r = super::detect();
        assert_eq!(r.available, !r.devices.is_empty());
        assert_eq!(r.available, r.reason.is_none(), "{r:?}");
        let j = r.to_json();
        assert_eq!(j["available"], r.available);
        // The second call reuses the library loaded by the first.
        assert_eq!(super::detect().available, r.available);
    }
}
