//! Where a model's layers run: on the CPU, or on which GPU. A pure planner over described
//! devices and a model's footprint, so that every case (one small GPU, one large, two unequal,
//! too little memory for even one layer, a margin that leaves nothing) is tested without a GPU.
//!
//! The offloaded part is always the output projection plus a suffix of the layers (the last
//! ones): a forward pass then runs its first layers on the CPU, hands the residual stream to the
//! GPU once, and reads back only logits.

use serde::Serialize;

/// How many layers to offload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuLayers {
    /// As many as fit in free device memory minus the margin (the default).
    #[default]
    Auto,
    /// That many layers, counted from the last, with the output projection (0: CPU only; more
    /// than the model has: all).
    Count(usize),
}

/// How a model uses several GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitMode {
    /// One device (the main GPU, or the best: most free memory, then compute capability).
    None,
    /// The offloaded layers split across every device in proportion to its free memory.
    #[default]
    Layer,
}

/// Device memory the planner leaves free: the larger of `bytes` and `fraction` of the total.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Margin {
    pub bytes: u64,
    pub fraction: f64,
}

impl Default for Margin {
    fn default() -> Self {
        Margin {
            bytes: 1 << 30,
            fraction: 0.10,
        }
    }
}

/// The GPU part of a load's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GpuParams {
    pub layers: GpuLayers,
    /// The device to use first (None: the best one).
    pub main_gpu: Option<usize>,
    pub split: SplitMode,
    pub margin: Margin,
}

/// What a model needs on a device, in bytes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Footprint {
    /// Each layer's weights.
    pub layer_weights: Vec<u64>,
    /// Each layer's KV cache for the planned context.
    pub layer_kv: Vec<u64>,
    /// The output projection (and final norm).
    pub output_weights: u64,
    /// Activations and scratch, needed once on every device used.
    pub scratch: u64,
}

/// What one device holds under a placement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceUse {
    pub device: usize,
    pub layers: usize,
    pub weight_bytes: u64,
    pub kv_bytes: u64,
    pub scratch_bytes: u64,
    pub holds_output: bool,
}

/// Where each part of a model runs, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    /// The device of each layer (None: the CPU).
    pub layers: Vec<Option<usize>>,
    /// The device of the output projection (None: the CPU).
    pub output: Option<usize>,
    /// What each used device holds, in device order.
    pub devices: Vec<DeviceUse>,
    /// Why, in a sentence (as the thread policy's choice is reported).
    pub reason: String,
}

impl Placement {
    /// Everything on the CPU, for `reason`.
    pub fn cpu(n_layers: usize, reason: impl Into<String>) -> Placement {
        Placement {
            layers: vec![None; n_layers],
            output: None,
            devices: Vec::new(),
            reason: reason.into(),
        }
    }

    /// Layers on a GPU.
    pub fn gpu_layers(&self) -> usize {
        self.layers.iter().filter(|d| d.is_some()).count()
    }

    /// Whether anything runs on a GPU.
    pub fn uses_gpu(&self) -> bool {
        self.output.is_some() || self.gpu_layers() > 0
    }
}
