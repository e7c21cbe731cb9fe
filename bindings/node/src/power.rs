//! Power and heat (process-wide: every model, session and engine follows them).

use std::path::PathBuf;

use napi_derive::napi;
use serde_json::Value;
use woolly_core::policy::power::{self, PowerProfile};

use crate::error::{js_error, to_js};
use crate::options::ThermalOptions;

/// Sets the process-wide power profile: `balanced`, `high_performance`, `power_saver` or
/// `adaptive`.
#[napi(catch_unwind)]
pub fn set_power_profile(name: String) -> napi::Result<()> {
    power::manager().set_profile(PowerProfile::from_name(&name).map_err(|e| to_js(&e))?);
    Ok(())
}

/// The power state (woolly-core's `PowerState`, snake_case as in every front end).
#[napi(catch_unwind)]
pub fn power_state() -> napi::Result<Value> {
    serde_json::to_value(power::manager().state()).map_err(|e| js_error("WOOLLY_ERR_INTERNAL", e))
}

/// Starts the thermal monitor on a thread of its own (replacing one already running).
#[napi(catch_unwind)]
pub fn start_thermal_monitor(options: Option<ThermalOptions>) -> napi::Result<()> {
    let cfg = options
        .unwrap_or_default()
        .config()
        .map_err(|e| to_js(&e))?;
    power::manager()
        .start_thermal_monitor(cfg)
        .map_err(|e| to_js(&e))
}

/// Stops the thermal monitor (nothing when none runs); the cap it set is lifted.
#[napi(catch_unwind)]
pub fn stop_thermal_monitor() {
    power::manager().stop_thermal_monitor();
}

/// Explicit opt-in that changes the system for every program: sets the CPU frequency governor
/// of every CPU under `sysfs_root` (default `/`); the number of CPUs set.
#[napi(catch_unwind)]
pub fn set_cpu_governor(governor: String, sysfs_root: Option<String>) -> napi::Result<u32> {
    let root = PathBuf::from(sysfs_root.as_deref().unwrap_or("/"));
    power::set_cpu_governor(&root, &governor)
        .map(|n| n as u32)
        .map_err(|e| to_js(&e))
}

/// Test hook: reads the power source under `root` (default `/`).
#[napi(catch_unwind)]
pub fn set_power_root(root: Option<String>) {
    power::manager().set_power_root(PathBuf::from(root.as_deref().unwrap_or("/")));
}
