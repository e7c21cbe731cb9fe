//! The GPU options of every command that loads a model (`--gpu-layers`, `--main-gpu`,
//! `--split-mode`, `--gpu-margin`, `--on-device-oom`), and the CUDA part of `woolly hardware`.

use woolly_core::policy::placement::{DeviceOomPolicy, GpuLayers, GpuParams, Margin, SplitMode};

/// Where a model's layers run.
#[derive(clap::Args, Debug, Clone)]
pub struct GpuArgs {
    /// Layers to run on CUDA GPUs, from the last, with the output: `auto` (as many as fit),
    /// 0 (CPU only) or a count.
    #[arg(long = "gpu-layers", default_value = "auto", value_parser = parse_gpu_layers)]
    pub gpu_layers: GpuLayers,
    /// The GPU holding the output and the last layers (default: the one with the most free
    /// memory).
    #[arg(long = "main-gpu")]
    pub main_gpu: Option<usize>,
    /// How several GPUs share the layers: `layer` (in proportion to free memory) or `none`
    /// (one GPU).
    #[arg(long = "split-mode", default_value = "layer", value_parser = parse_split_mode)]
    pub split_mode: SplitMode,
    /// Device memory to leave free on each GPU, in bytes (0: the larger of 1 GiB and 10%).
    #[arg(long = "gpu-margin", default_value_t = 0)]
    pub gpu_margin: u64,
    /// When a sequence's KV cache does not fit in GPU memory: `cpu` (it runs on the CPU, with a
    /// warning) or `error` (the generation fails with WOOLLY_ERR_OUT_OF_DEVICE_MEMORY).
    #[arg(long = "on-device-oom", default_value = "cpu", value_parser = parse_on_device_oom)]
    pub on_device_oom: DeviceOomPolicy,
}

fn parse_gpu_layers(s: &str) -> Result<GpuLayers, String> {
    GpuLayers::from_name(s).map_err(|e| e.to_string())
}

fn parse_split_mode(s: &str) -> Result<SplitMode, String> {
    SplitMode::from_name(s).map_err(|e| e.to_string())
}

fn parse_on_device_oom(s: &str) -> Result<DeviceOomPolicy, String> {
    DeviceOomPolicy::from_name(s).map_err(|e| e.to_string())
}

impl GpuArgs {
    /// The load's GPU params.
    pub fn params(&self) -> GpuParams {
        GpuParams {
            layers: self.gpu_layers,
            main_gpu: self.main_gpu,
            split: self.split_mode,
            margin: Margin::from_bytes(self.gpu_margin),
            on_device_oom: self.on_device_oom,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        gpu: GpuArgs,
    }

    #[test]
    fn flags_parse_into_gpu_params() {
        let t = T::try_parse_from(["t"]).unwrap();
        assert_eq!(t.gpu.params(), GpuParams::default());
        let t = T::try_parse_from([
            "t",
            "--gpu-layers",
            "12",
            "--main-gpu",
            "1",
            "--split-mode",
            "none",
            "--gpu-margin",
            "1048576",
            "--on-device-oom",
            "error",
        ])
        .unwrap();
        assert_eq!(
            t.gpu.params(),
            GpuParams {
                layers: GpuLayers::Count(12),
                main_gpu: Some(1),
                split: SplitMode::None,
                margin: Margin::from_bytes(1 << 20),
                on_device_oom: DeviceOomPolicy::Error,
            }
        );
        assert!(T::try_parse_from(["t", "--gpu-layers", "-1"]).is_err());
        assert!(T::try_parse_from(["t", "--gpu-layers", "all"]).is_err());
        assert!(T::try_parse_from(["t", "--split-mode", "row"]).is_err());
        let Err(e) = T::try_parse_from(["t", "--on-device-oom", "abort"]) else {
            panic!("--on-device-oom abort accepted");
        };
        assert!(e.to_string().contains("cpu or error"), "{e}");
    }
}
