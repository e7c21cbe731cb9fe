//! Power and heat (process-wide: every model, session and engine follows them).

use std::path::PathBuf;

use pyo3::prelude::*;
use woolly_core::policy::power::{self, PowerProfile};

use crate::errors::{self, IntoPy};
use crate::options::thermal_config;

/// Uses the power profile `name` from now on.
#[pyfunction]
pub fn set_power_profile(py: Python<'_>, name: &str) -> PyResult<()> {
    power::manager().set_profile(PowerProfile::from_name(name).py_err(py)?);
    Ok(())
}

/// The power state (profile, power source, knobs, throttling, temperature), as JSON.
#[pyfunction]
pub fn power_state_json(py: Python<'_>) -> PyResult<String> {
    // Reading the power source touches sysfs: without the GIL.
    let state = py.detach(|| power::manager().state());
    serde_json::to_string(&state).map_err(|e| errors::internal(py, e))
}

/// Starts (or restarts) the thermal monitor on its own thread (each None: the core's
/// default).
#[pyfunction]
#[pyo3(signature = (threshold_c=None, interval_s=None, sysfs_root=None))]
pub fn start_thermal_monitor(
    py: Python<'_>,
    threshold_c: Option<f64>,
    interval_s: Option<f64>,
    sysfs_root: Option<PathBuf>,
) -> PyResult<()> {
    let cfg = thermal_config(py, threshold_c, interval_s, sysfs_root)?;
    // A running monitor is stopped (its thread joined) first.
    py.detach(|| power::manager().start_thermal_monitor(cfg))
        .py_err(py)
}

/// Stops the thermal monitor (nothing when none runs); the cap it set is lifted.
#[pyfunction]
pub fn stop_thermal_monitor(py: Python<'_>) {
    py.detach(|| power::manager().stop_thermal_monitor());
}

/// Explicit opt-in that changes the system: the CPU frequency governor of every CPU under
/// `sysfs_root` (None: `/`); the number of CPUs set.
#[pyfunction]
#[pyo3(signature = (governor, sysfs_root))]
pub fn set_cpu_governor(
    py: Python<'_>,
    governor: &str,
    sysfs_root: Option<PathBuf>,
) -> PyResult<usize> {
    let root = sysfs_root.unwrap_or_else(|| PathBuf::from("/"));
    py.detach(|| power::set_cpu_governor(&root, governor))
        .py_err(py)
}

/// Test hook: reads the power source under `root` (None: `/`) instead of `/`.
#[pyfunction]
#[pyo3(signature = (root))]
pub fn set_power_root(py: Python<'_>, root: Option<PathBuf>) {
    py.detach(|| {
        power::manager().set_power_root(root.unwrap_or_else(|| PathBuf::from("/")));
    });
}
