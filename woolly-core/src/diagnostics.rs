//! A diagnostics report: what Woolly is, what it found on this machine and what it chose, as
//! JSON, for bug reports and support (every front end exposes the same report).

use serde_json::{json, Value};

use crate::model::{default_model_path, Model};
use crate::tune::{process, threads, Hardware};

/// The report for this process; with `model`, also that model's facts and counters.
pub fn report(model: Option<&Model>) -> Value {
    let hw = Hardware::detect();
    let default_model = default_model_path();
    let mut r = json!({
        "woolly_version": crate::VERSION,
        "build": {
            "target_arch": std::env::consts::ARCH,
            "target_os": std::env::consts::OS,
            "debug_assertions": cfg!(debug_assertions),
        },
        "hardware": hw.to_json(),
        "kernels": hw.simd.best_kernel(),
        "thread_policy": threads::policy_json(&hw),
        "process": {
            "pid": std::process::id(),
            "rss_bytes": process::rss_bytes(),
            "peak_rss_bytes": process::peak_rss_bytes(),
        },
        "default_model": {
            "path": default_model.as_ref().map(|p| p.display().to_string()),
            "installed": default_model.as_ref().is_some_and(|p| p.is_file()),
            "env_WOOLLY_MODEL": std::env::var("WOOLLY_MODEL").ok(),
        },
        "system_changes": "none (Woolly adapts its own threads and memory; it never changes system settings)",
    });
    if let Some(m) = model {
        let mut info = m
            .info()
            .unwrap_or_else(|e| json!({ "error": e.to_string() }));
        info["metrics"] = m.metrics().snapshot().to_json();
        r["model"] = info;
    }
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn report_names_the_machine_and_the_choices() {
        let r = super::report(None);
        assert_eq!(r["woolly_version"], crate::VERSION);
        assert!(r["hardware"]["logical_cores"].as_u64().unwrap() >= 1);
        assert!(r["thread_policy"]["prompt_processing"].as_u64().unwrap() >= 1);
        assert!(r["kernels"].is_string());
        assert!(r.get("model").is_none());
    }
}
