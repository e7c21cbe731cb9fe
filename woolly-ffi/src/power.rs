//! Power and heat through the C ABI: the process-wide profile, the thermal monitor, the state,
//! and the two explicit opt-ins that change the system (CPU governor, GPU power limit).

use std::ffi::c_char;
use std::time::Duration;

use woolly_core::policy::power::{self, PowerProfile, ThermalConfig};

use crate::boundary::{check_enum, fail, guard, optional_str, required_str, write_string};
use crate::status::woolly_status;
use crate::status::woolly_status::*;

/// How Woolly trades speed for power (process-wide: every session and engine follows it).
/// Python, Node and JSON name these `balanced`, `high_performance`, `power_saver` and
/// `adaptive`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum woolly_power_profile {
    /// Woolly's thread policy per phase (the default).
    WOOLLY_POWER_BALANCED = 0,
    /// Every physical core, the largest batches, no pauses.
    WOOLLY_POWER_HIGH_PERFORMANCE = 1,
    /// Half the cores, small batches, a pause between decode steps. Python, Node and JSON call
    /// it `power_saver`; its older C name `WOOLLY_POWER_SAVER` stays as a deprecated alias.
    WOOLLY_POWER_POWER_SAVER = 2,
    /// Balanced on mains power, power saver on battery.
    WOOLLY_POWER_ADAPTIVE = 3,
}

/// Deprecated: the old name of `WOOLLY_POWER_POWER_SAVER` (2, the profile Python, Node and JSON
/// call `power_saver`).
#[deprecated(note = "use WOOLLY_POWER_POWER_SAVER (the same number)")]
pub const WOOLLY_POWER_SAVER: woolly_power_profile = woolly_power_profile::WOOLLY_POWER_POWER_SAVER;

/// Sets the process-wide power profile.
#[no_mangle]
pub extern "C" fn woolly_set_power_profile(profile: woolly_power_profile) -> woolly_status {
    guard(|| {
        check_enum(&profile, 3, "profile")?;
        power::manager().set_profile(match profile {
            woolly_power_profile::WOOLLY_POWER_BALANCED => PowerProfile::Balanced,
            woolly_power_profile::WOOLLY_POWER_HIGH_PERFORMANCE => PowerProfile::HighPerformance,
            woolly_power_profile::WOOLLY_POWER_POWER_SAVER => PowerProfile::PowerSaver,
            woolly_power_profile::WOOLLY_POWER_ADAPTIVE => PowerProfile::Adaptive,
        });
        Ok(())
    })
}

/// Starts the thermal monitor on a background thread: above `threshold_c` (0: 80 °C) Woolly
/// halves its worker threads, and restores them 5 °C lower; sensors are read every
/// `interval_ms` (0: 2000). `sysfs_root` NULL reads the real `/sys`; a path reads a fake tree
/// (tests). Replaces a monitor already running.
///
/// # Safety
/// `sysfs_root` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn woolly_start_thermal_monitor(
    threshold_c: f32,
    interval_ms: u32,
    sysfs_root: *const c_char,
) -> woolly_status {
    guard(|| {
        let d = ThermalConfig::default();
        if !threshold_c.is_finite() || !(0.0..=150.0).contains(&threshold_c) {
            return fail(
                WOOLLY_ERR_INVALID_ARGUMENT,
                format!("threshold_c = {threshold_c} must be 0 (default) or in (0, 150]"),
            );
        }
        let cfg = ThermalConfig {
            root: match optional_str(sysfs_root, "sysfs_root")? {
                None => d.root.clone(),
                Some(root) => root.into(),
            },
            threshold_c: if threshold_c == 0.0 {
                d.threshold_c
            } else {
                threshold_c as f64
            },
            interval: if interval_ms == 0 {
                d.interval
            } else {
                Duration::from_millis(interval_ms as u64)
            },
            ..d
        };
        power::manager().start_thermal_monitor(cfg)?;
        Ok(())
    })
}

/// Stops the thermal monitor (no effect when none runs); the thread cap it set is lifted.
#[no_mangle]
pub extern "C" fn woolly_stop_thermal_monitor() {
    let _ = guard(|| {
        power::manager().stop_thermal_monitor();
        Ok(())
    });
}

/// The power state (profile, power source, the knobs in effect, throttled, temperature,
/// throttle events, whether the monitor runs) as JSON, written like `woolly_detokenize`
/// writes text.
///
/// # Safety
/// `buf` NULL or writable for `capacity` bytes; `len` writable.
#[no_mangle]
pub unsafe extern "C" fn woolly_power_state_json(
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> woolly_status {
    guard(|| {
        let s = serde_json::to_string(&power::manager().state()).unwrap_or_default();
        write_string(&s, buf, capacity, len)
    })
}

/// Explicit opt-in that changes the system for every program: sets the CPU frequency governor
/// (e.g. `"powersave"`) of every CPU. `sysfs_root` NULL is the real `/`. Returns
/// `WOOLLY_ERR_PERMISSION_DENIED` when the system refuses (it needs root),
/// `WOOLLY_ERR_UNSUPPORTED` without cpufreq. Woolly never calls this by itself.
///
/// # Safety
/// `governor` a NUL-terminated string; `sysfs_root` NULL or one.
#[no_mangle]
pub unsafe extern "C" fn woolly_set_cpu_governor(
    governor: *const c_char,
    sysfs_root: *const c_char,
) -> woolly_status {
    guard(|| {
        let g = required_str(governor, "governor")?;
        let root = optional_str(sysfs_root, "sysfs_root")?.unwrap_or("/");
        power::set_cpu_governor(std::path::Path::new(root), g)?;
        Ok(())
    })
}

/// Explicit opt-in that changes the system for every program: sets NVIDIA GPU `index`'s power
/// limit to `watts` through NVML. `WOOLLY_ERR_PERMISSION_DENIED` when the driver refuses,
/// `WOOLLY_ERR_UNSUPPORTED` without a driver. Woolly never calls this by itself.
#[no_mangle]
pub extern "C" fn woolly_set_gpu_power_limit(index: u32, watts: f64) -> woolly_status {
    guard(|| {
        woolly_core::platform::gpu::set_power_limit(index, watts)?;
        Ok(())
    })
}
