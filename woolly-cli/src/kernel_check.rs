//! `woolly gpu-check kernels`: every CUDA kernel against its CPU scalar twin on this machine's
//! GPU (the first step of `make gpu-check`); `woolly gpu-check unload`: the device memory a
//! model and a session took comes back when they are dropped.

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
    /// Loads MODEL onto the GPU, generates with it, drops both, and compares the device's
    /// free memory before, while loaded and after; exits 1 when less than all but 64 MiB
    /// comes back.
    Unload {
        /// The model file.
        #[arg(long)]
        model: std::path::PathBuf,
        /// The CUDA device.
        #[arg(long, default_value_t = 0)]
        device: usize,
    },
}

/// Device memory a dropped model may leave behind (the driver's own bookkeeping).
const UNLOAD_SLACK: u64 = 64 << 20;

fn unload(
    model: &std::path::Path,
    device: usize,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    use woolly_core::generate::{GenerateParams, SamplingParams, Session, SessionParams};
    use woolly_core::model::{Model, ModelParams};
    use woolly_core::policy::placement::{GpuLayers, GpuParams};
    let gpu = woolly_core::backend::cuda::Gpu::open(device)?;
    let settle = || -> Result<u64, Box<dyn std::error::Error>> {
        gpu.synchronize()?;
        std::thread::sleep(std::time::Duration::from_millis(200));
        Ok(gpu.free_bytes()?)
    };
    let before = settle()?;
    let params = ModelParams {
        context_size: 1024,
        gpu: GpuParams {
            layers: GpuLayers::Auto,
            main_gpu: Some(device),
            ..Default::default()
        },
        ..Default::default()
    };
    let m = Model::load(Some(model), &params)?;
    let placement = serde_json::to_value(m.placement())?;
    let loaded = settle()?;
    let mut s = Session::new(m.clone(), &SessionParams::default())?;
    let g = s.generate(
        "The quick brown fox",
        &GenerateParams {
            max_tokens: 16,
            sampling: SamplingParams::greedy(),
            ignore_eos: true,
            ..Default::default()
        },
        |_| true,
    )?;
    let generating = settle()?;
    drop(s);
    drop(m);
    let after = settle()?;
    let mib = |b: u64| b as f64 / 1048576.0;
    Ok(serde_json::json!({
        "device": gpu.device,
        "placement": placement,
        "generated_tokens": g.generated_ids.len(),
        "free_mib": {"before": mib(before), "loaded": mib(loaded), "generating": mib(generating), "after": mib(after)},
        "used_while_loaded_mib": mib(before.saturating_sub(generating)),
        "left_behind_mib": mib(before.saturating_sub(after)),
        "ok": after + UNLOAD_SLACK >= before,
    }))
}

pub(crate) fn run(args: GpuCheckArgs) -> Result<bool, Box<dyn std::error::Error>> {
    let report = woolly_core::platform::cuda::report();
    if !report.available {
        let reason = report.reason.unwrap_or_default();
        let v = serde_json::json!({ "skipped": format!("no CUDA device ({reason})") });
        outln!("{v}");
        return Ok(true);
    }
    let (v, json) = match args.what {
        GpuCheckWhat::Kernels { device, json } => (
            woolly_core::backend::cuda::check::check_kernels(device)?,
            json,
        ),
        GpuCheckWhat::Unload { model, device } => (unload(&model, device)?, true),
    };
    let ok = v["ok"].as_bool().unwrap_or(false);
    if json {
        outln!("{v}");
    } else {
        outln!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(ok)
}
