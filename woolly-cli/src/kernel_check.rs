//! `woolly gpu-check kernels`: every CUDA kernel against its CPU scalar twin on this machine's
//! GPU (the first step of `make gpu-check`).

use clap::{Args, Subcommand};

/// What `woolly gpu-check` checks.
#[derive(Args)]
pub(crate) struct GpuCheckArgs {
    #[command(subcommand)]
    what: GpuCheckWhat,
}

#[derive(Subcommand)]
enum GpuCheckWhat {
    /// Each kernel on random data (every weight type, odd sizes) against the CPU's scalar
    /// code; JSON with each relative error. Exits 1 when one is out of tolerance.
    Kernels {
        /// The CUDA device.
        #[arg(long, default_value_t = 0)]
        device: usize,
        /// Print the JSON on one line.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(args: GpuCheckArgs) -> Result<bool, Box<dyn std::error::Error>> {
    let GpuCheckWhat::Kernels { device, json } = args.what;
    let report = woolly_core::platform::cuda::report();
    if !report.available {
        let reason = report.reason.unwrap_or_default();
        let v = serde_json::json!({ "skipped": format!("no CUDA device ({reason})") });
        outln!("{v}");
        return Ok(true);
    }
    let v = woolly_core::backend::cuda::check::check_kernels(device)?;
    let ok = v["ok"].as_bool().unwrap_or(false);
    if json {
        outln!("{v}");
    } else {
        outln!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(ok)
}
