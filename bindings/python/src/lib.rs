//! `woolly._woolly`: the native half of the Python package. It stays thin: Python's option
//! bags become core params (`options`), the work runs off the caller's thread with the GIL
//! released, and `woolly/__init__.py` gives it its Pythonic shape (iterators, asyncio,
//! defaults). This file only registers the module's classes and functions.

mod cache;
mod engine;
mod errors;
mod memory;
mod metrics;
mod model;
mod openai;
mod options;
mod power;
mod session;
mod tokenize;

use pyo3::prelude::*;

/// For the tests only: panics on the caller's thread, as a bug inside Woolly would. PyO3 raises
/// `pyo3_runtime.PanicException`; the panic's message goes to Woolly's log, never to stderr.
#[pyfunction(name = "_panic")]
fn panic_for_tests(message: &str) {
    panic!("{message}");
}

#[pymodule]
fn _woolly(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // This extension module carries its own Rust runtime: every panic in it is Woolly's, and
    // none may print to the host's stderr (PyO3 turns a panic in a call into an exception).
    woolly_core::panics::claim_all();
    m.add("__version__", woolly_core::VERSION)?;
    m.add(
        "PROMETHEUS_CONTENT_TYPE",
        woolly_core::metrics::PROMETHEUS_CONTENT_TYPE,
    )?;
    m.add_class::<model::NativeModel>()?;
    m.add_class::<cache::NativeModelCache>()?;
    m.add_class::<options::LoadOptions>()?;
    m.add_class::<options::GenerateOptions>()?;
    m.add_class::<session::Job>()?;
    m.add_class::<engine::NativeEngine>()?;
    m.add_class::<openai::CompletionJob>()?;
    m.add_class::<metrics::DoctorJob>()?;
    m.add_function(wrap_pyfunction!(metrics::hardware_json, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::diagnostics_json, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::cuda_devices_json, m)?)?;
    m.add_function(wrap_pyfunction!(memory::parse_size, m)?)?;
    m.add_function(wrap_pyfunction!(memory::estimate_json, m)?)?;
    m.add_function(wrap_pyfunction!(memory::memory_report_json, m)?)?;
    m.add_function(wrap_pyfunction!(power::set_power_profile, m)?)?;
    m.add_function(wrap_pyfunction!(power::power_state_json, m)?)?;
    m.add_function(wrap_pyfunction!(power::start_thermal_monitor, m)?)?;
    m.add_function(wrap_pyfunction!(power::stop_thermal_monitor, m)?)?;
    m.add_function(wrap_pyfunction!(power::set_cpu_governor, m)?)?;
    m.add_function(wrap_pyfunction!(power::set_power_root, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::metrics_prometheus, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::metrics_json, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::doctor_start, m)?)?;
    m.add_function(wrap_pyfunction!(panic_for_tests, m)?)?;
    Ok(())
}
