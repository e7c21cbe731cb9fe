//! Where a model's layers run: on the CPU, or on which GPU. A pure planner over described
//! devices and a model's footprint, so that every case (one small GPU, one large, two unequal,
//! too little memory for even one layer, a margin that leaves nothing) is tested without a GPU.
//!
//! The offloaded part is always the output projection plus a suffix of the layers (the last
//! ones): a forward pass then runs its first layers on the CPU, hands the residual stream to the
//! GPU once, and reads back only logits.

use serde::Serialize;

use crate::platform::cuda::{CudaDevice, CudaReport};
use crate::{Error, Result};

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

impl GpuLayers {
    /// From the C convention every front end accepts: -1 is [`GpuLayers::Auto`], `n >= 0` is
    /// [`GpuLayers::Count`].
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for anything below -1.
    pub fn from_i64(n: i64) -> Result<GpuLayers> {
        match n {
            -1 => Ok(GpuLayers::Auto),
            n if n >= 0 => Ok(GpuLayers::Count(usize::try_from(n).unwrap_or(usize::MAX))),
            n => Err(Error::InvalidArgument(format!(
                "gpu_layers must be -1 (auto) or a count >= 0, not {n}"
            ))),
        }
    }

    /// From words: `auto` or a count (`0`: CPU only).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for anything else.
    pub fn from_name(s: &str) -> Result<GpuLayers> {
        if s == "auto" {
            return Ok(GpuLayers::Auto);
        }
        s.parse::<usize>().map(GpuLayers::Count).map_err(|_| {
            Error::InvalidArgument(format!(
                "gpu_layers must be \"auto\" or a count >= 0, not {s:?}"
            ))
        })
    }
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

impl SplitMode {
    /// The name every front end uses: `none` or `layer`.
    pub fn name(self) -> &'static str {
        match self {
            SplitMode::None => "none",
            SplitMode::Layer => "layer",
        }
    }

    /// The mode called `name` (`none` or `layer`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for any other name.
    pub fn from_name(name: &str) -> Result<SplitMode> {
        match name {
            "none" => Ok(SplitMode::None),
            "layer" => Ok(SplitMode::Layer),
            _ => Err(Error::InvalidArgument(format!(
                "split_mode must be none or layer, not {name:?}"
            ))),
        }
    }
}

/// What happens when a sequence's KV cache does not fit in device memory during generation
/// (the load itself never fails for lack of device memory: it offloads fewer layers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceOomPolicy {
    /// The sequence runs with all its layers on the CPU (a warning in the log, once, and
    /// `woolly_gpu_oom_fallbacks_total` counts it); it produces the CPU's tokens.
    #[default]
    Cpu,
    /// The generation (or the engine request) fails with
    /// [`Error::OutOfDeviceMemory`]; other sequences go on.
    Error,
}

impl DeviceOomPolicy {
    /// The name every front end uses: `cpu` or `error`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceOomPolicy::Cpu => "cpu",
            DeviceOomPolicy::Error => "error",
        }
    }

    /// The policy called `name` (`cpu` or `error`).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for any other name.
    pub fn from_name(name: &str) -> Result<DeviceOomPolicy> {
        match name {
            "cpu" => Ok(DeviceOomPolicy::Cpu),
            "error" => Ok(DeviceOomPolicy::Error),
            _ => Err(Error::InvalidArgument(format!(
                "on_device_oom must be cpu or error, not {name:?}"
            ))),
        }
    }
}

/// Device memory the planner leaves free: the larger of `bytes` and `fraction` of the total.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Margin {
    /// At least this many bytes.
    pub bytes: u64,
    /// At least this fraction of the device's total memory.
    pub fraction: f64,
}

impl Margin {
    /// The margin a front end's `gpu_margin_bytes` asks for: 0 is the default (1 GiB or 10%
    /// of the device, the larger), any other value exactly that many bytes.
    pub fn from_bytes(bytes: u64) -> Margin {
        if bytes == 0 {
            Margin::default()
        } else {
            Margin {
                bytes,
                fraction: 0.0,
            }
        }
    }

    /// The bytes this margin leaves free on a device of `total_bytes`.
    pub fn on(&self, total_bytes: u64) -> u64 {
        let frac = (self.fraction.max(0.0) * total_bytes as f64) as u64;
        self.bytes.max(frac)
    }
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
    /// How many layers to offload.
    pub layers: GpuLayers,
    /// The device to use first (None: the best one).
    pub main_gpu: Option<usize>,
    /// How several devices share the offloaded layers.
    pub split: SplitMode,
    /// What the planner leaves free on each device.
    pub margin: Margin,
    /// What a sequence does when its KV cache does not fit on the device.
    pub on_device_oom: DeviceOomPolicy,
}

impl GpuParams {
    /// Everything on the CPU.
    pub fn cpu_only() -> GpuParams {
        GpuParams {
            layers: GpuLayers::Count(0),
            ..GpuParams::default()
        }
    }
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

impl Footprint {
    /// The layers the footprint describes.
    pub fn n_layers(&self) -> usize {
        self.layer_weights.len()
    }

    /// Layer `i`'s weights and KV cache.
    pub fn layer_bytes(&self, i: usize) -> u64 {
        self.layer_weights.get(i).copied().unwrap_or(0) + self.layer_kv.get(i).copied().unwrap_or(0)
    }

    /// Everything on one device: every layer, the output and the scratch.
    pub fn total(&self) -> u64 {
        let layers: u64 = (0..self.n_layers()).map(|i| self.layer_bytes(i)).sum();
        layers + self.output_weights + self.scratch
    }
}

/// What one device holds under a placement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceUse {
    /// The driver's ordinal ([`CudaDevice::index`]).
    pub device: usize,
    /// How many layers it runs (a contiguous range).
    pub layers: usize,
    /// Its layers' weights, with the output projection's when it holds it.
    pub weight_bytes: u64,
    /// Its layers' KV cache.
    pub kv_bytes: u64,
    /// Activations and scratch.
    pub scratch_bytes: u64,
    /// Whether it runs the output projection.
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
    /// What a sequence whose KV cache does not fit on the device does (the load's
    /// [`GpuParams::on_device_oom`]).
    pub on_device_oom: DeviceOomPolicy,
}

impl Placement {
    /// Everything on the CPU, for `reason`.
    pub fn cpu(n_layers: usize, reason: impl Into<String>) -> Placement {
        Placement {
            layers: vec![None; n_layers],
            output: None,
            devices: Vec::new(),
            reason: reason.into(),
            on_device_oom: DeviceOomPolicy::default(),
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

const GIB: f64 = (1u64 << 30) as f64;

fn gib(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / GIB)
}

/// A device the planner may use: its memory after the margin.
struct Candidate<'a> {
    dev: &'a CudaDevice,
    margin: u64,
    usable: u64,
}

impl Candidate<'_> {
    /// `GPU 0 (NVIDIA H200, 13.2 GiB free after a 1.0 GiB margin)`.
    fn describe(&self) -> String {
        format!(
            "GPU {} ({}, {} free after a {} margin)",
            self.dev.index,
            self.dev.name,
            gib(self.usable),
            gib(self.margin)
        )
    }
}

/// The best device: most free memory, then the higher compute capability, then the lower
/// ordinal.
fn best(devices: &[CudaDevice]) -> usize {
    (0..devices.len())
        .min_by(|&a, &b| {
            let (a, b) = (&devices[a], &devices[b]);
            b.free_bytes
                .cmp(&a.free_bytes)
                .then(b.compute_capability.cmp(&a.compute_capability))
                .then(a.index.cmp(&b.index))
        })
        .unwrap_or(0)
}

/// [`plan`] on what the driver reported: everything on the CPU, with the driver's reason, when
/// it found no usable device.
pub fn plan_report(report: &CudaReport, fp: &Footprint, params: &GpuParams) -> Placement {
    if !report.available || report.devices.is_empty() {
        let why = report.reason.as_deref().unwrap_or("none found");
        return Placement::cpu(
            fp.n_layers(),
            format!("no CUDA device: {why}; everything on the CPU"),
        );
    }
    plan(&report.devices, fp, params)
}

/// Where a model with footprint `fp` runs on `devices` under `params`. Pure: the same inputs
/// give the same placement, and it never fails (what does not fit stays on the CPU).
///
/// The offloaded part is the output projection, then the layers from the last backwards;
/// placing stops at the first one that does not fit. Each device used pays its own scratch and
/// leaves its margin free. With [`SplitMode::Layer`] and several devices the offloaded suffix
/// is split into contiguous ranges in proportion to each device's usable memory; the main
/// device (`params.main_gpu`, or the best) holds the output and the last layers.
pub fn plan(devices: &[CudaDevice], fp: &Footprint, params: &GpuParams) -> Placement {
    let n_layers = fp.n_layers();
    if devices.is_empty() {
        return Placement::cpu(n_layers, "no CUDA device: everything on the CPU");
    }
    let wanted = match params.layers {
        GpuLayers::Count(0) => {
            return Placement::cpu(n_layers, "gpu_layers 0: everything on the CPU");
        }
        GpuLayers::Count(n) => n.min(n_layers),
        GpuLayers::Auto => n_layers,
    };

    // The main device, and a note when the one asked for does not exist.
    let mut note = String::new();
    let main = match params.main_gpu {
        Some(g) => match devices.iter().position(|d| d.index == g) {
            Some(i) => i,
            None => {
                let b = best(devices);
                note = format!(
                    "main_gpu {g} is not a device ({} found), so the best, GPU {}: ",
                    devices.len(),
                    devices[b].index
                );
                b
            }
        },
        None => best(devices),
    };

    fn cand<'a>(d: &'a CudaDevice, m: &Margin) -> Candidate<'a> {
        let margin = m.on(d.total_bytes);
        Candidate {
            dev: d,
            margin,
            usable: d.free_bytes.saturating_sub(margin),
        }
    }
    // The devices in the order they take the suffix: the main one (output, last layers), then
    // the others best first.
    let mut order = vec![main];
    if params.split == SplitMode::Layer {
        let mut rest: Vec<usize> = (0..devices.len()).filter(|&i| i != main).collect();
        rest.sort_by(|&a, &b| {
            let (a, b) = (&devices[a], &devices[b]);
            b.free_bytes
                .cmp(&a.free_bytes)
                .then(b.compute_capability.cmp(&a.compute_capability))
                .then(a.index.cmp(&b.index))
        });
        order.extend(rest);
    }
    let cands: Vec<Candidate> = order
        .iter()
        .map(|&i| cand(&devices[i], &params.margin))
        .collect();
    // The main device must hold at least its scratch and the output; the others, their
    // scratch and something.
    let caps: Vec<u64> = cands
        .iter()
        .map(|c| c.usable.saturating_sub(fp.scratch))
        .collect();

    // The suffix, in placing order: None is the output, Some(i) layer i.
    let items: Vec<Option<usize>> = std::iter::once(None)
        .chain((n_layers - wanted..n_layers).rev().map(Some))
        .collect();
    let cost = |it: &Option<usize>| match *it {
        None => fp.output_weights,
        Some(i) => fp.layer_bytes(i),
    };

    // The longest prefix of `items` that splits across the devices.
    let mut assign = None;
    let total_cap: u64 = caps.iter().sum();
    let mut n = 0;
    let mut sum = 0u64;
    for it in &items {
        if cands[0].usable <= fp.scratch || sum + cost(it) > total_cap {
            break;
        }
        sum += cost(it);
        n += 1;
    }
    while n > 0 {
        if let Some(a) = split(&items[..n], &cost, &caps) {
            assign = Some(a);
            break;
        }
        n -= 1;
    }

    let main_c = &cands[0];
    let Some(assign) = assign else {
        let why = if main_c.usable <= fp.scratch {
            format!(
                "{} free after a {} margin",
                gib(main_c.usable),
                gib(main_c.margin)
            )
        } else {
            format!(
                "{} free after a {} margin, and the output alone needs {}",
                gib(main_c.usable),
                gib(main_c.margin),
                gib(fp.output_weights + fp.scratch)
            )
        };
        return Placement::cpu(
            n_layers,
            format!(
                "{note}no layer fits on GPU {} ({}): {why}; everything on the CPU",
                main_c.dev.index, main_c.dev.name
            ),
        );
    };

    // The placement, and what each device holds.
    let mut layers = vec![None; n_layers];
    let mut uses: Vec<DeviceUse> = Vec::new();
    let mut used: Vec<usize> = Vec::new(); // positions in `cands`, in placing order
    for (it, &k) in items[..n].iter().zip(&assign) {
        let dev = cands[k].dev.index;
        if !used.contains(&k) {
            used.push(k);
            uses.push(DeviceUse {
                device: dev,
                layers: 0,
                weight_bytes: 0,
                kv_bytes: 0,
                scratch_bytes: fp.scratch,
                holds_output: false,
            });
        }
        let u = uses
            .iter_mut()
            .find(|u| u.device == dev)
            .expect("just added");
        match *it {
            None => {
                u.holds_output = true;
                u.weight_bytes += fp.output_weights;
            }
            Some(i) => {
                layers[i] = Some(dev);
                u.layers += 1;
                u.weight_bytes += fp.layer_weights.get(i).copied().unwrap_or(0);
                u.kv_bytes += fp.layer_kv.get(i).copied().unwrap_or(0);
            }
        }
    }
    let on_gpu = n - 1;

    let mut reason = format!("{note}{on_gpu} of {n_layers} layers and the output on ");
    if used.len() == 1 {
        reason += &main_c.describe();
    } else {
        let parts: Vec<String> = used
            .iter()
            .zip(&uses)
            .map(|(&k, u)| {
                let what = if u.holds_output {
                    format!("{} layers and the output", u.layers)
                } else {
                    format!("{} layers", u.layers)
                };
                format!("{} ({what})", cands[k].describe())
            })
            .collect();
        reason += &parts.join(" and ");
    }
    if on_gpu < n_layers {
        if let GpuLayers::Count(c) = params.layers {
            if on_gpu < wanted {
                reason += &format!("; gpu_layers {c} asked for more than fits");
            }
        }
        let left: u64 = used
            .iter()
            .zip(&uses)
            .map(|(&k, u)| cands[k].usable - u.weight_bytes - u.kv_bytes - u.scratch_bytes)
            .sum();
        if on_gpu < wanted {
            reason += &format!(
                "; the rest on the CPU: {} left free after the margin",
                gib(left)
            );
        } else {
            reason += "; the rest on the CPU";
        }
    }
    uses.sort_by_key(|u| u.device);
    Placement {
        layers,
        output: Some(main_c.dev.index),
        devices: uses,
        reason,
        on_device_oom: params.on_device_oom,
    }
}

/// Splits `items` (the output first) into contiguous runs, one per device in order, each run
/// about its device's share of the capacity and within it; the output goes to the first
/// device. The device of each item, or None when they do not fit.
fn split<T>(items: &[T], cost: &dyn Fn(&T) -> u64, caps: &[u64]) -> Option<Vec<usize>> {
    let total: u64 = items.iter().map(cost).sum();
    let cap_sum: u128 = caps.iter().map(|&c| c as u128).sum();
    if cap_sum == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let (mut k, mut on_k, mut done, mut cap_before) = (0usize, 0u64, 0u64, 0u128);
    for (j, it) in items.iter().enumerate() {
        let c = cost(it);
        loop {
            let last = k + 1 == caps.len();
            // This device's end of the suffix, in bytes: its share of the whole.
            let target = (total as u128 * (cap_before + caps[k] as u128) / cap_sum) as u64;
            let fits = on_k + c <= caps[k];
            // The item's midpoint within the target (rounding to the nearest split), or the
            // first item (the output) on the main device, or the last device takes the rest.
            let in_share = j == 0 || last || done + c / 2 <= target;
            if fits && in_share {
                break;
            }
            if last || j == 0 {
                return None;
            }
            cap_before += caps[k] as u128;
            k += 1;
            on_k = 0;
        }
        out.push(k);
        on_k += c;
        done += c;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn dev(index: usize, name: &str, total: u64, free: u64, cc: (u32, u32)) -> CudaDevice {
        CudaDevice {
            index,
            name: name.into(),
            total_bytes: total,
            free_bytes: free,
            compute_capability: cc,
            sm_count: 100,
            max_threads_per_block: 1024,
            warp_size: 32,
        }
    }

    /// 26 layers of 500 MiB weights and 100 MiB KV, a 1 GiB output, 512 MiB scratch.
    fn model() -> Footprint {
        Footprint {
            layer_weights: vec![500 * MIB; 26],
            layer_kv: vec![100 * MIB; 26],
            output_weights: GIB,
            scratch: 512 * MIB,
        }
    }

    fn auto() -> GpuParams {
        GpuParams::default()
    }

    fn count(n: usize) -> GpuParams {
        GpuParams {
            layers: GpuLayers::Count(n),
            ..GpuParams::default()
        }
    }

    /// The layers on `d`, checked to be one contiguous range.
    fn range_on(p: &Placement, d: usize) -> std::ops::Range<usize> {
        let on: Vec<usize> = (0..p.layers.len())
            .filter(|&i| p.layers[i] == Some(d))
            .collect();
        let r = on.first().map_or(0..0, |&a| a..on.last().unwrap() + 1);
        assert_eq!(r.len(), on.len(), "layers on GPU {d} not contiguous: {p:?}");
        r
    }

    #[test]
    fn one_small_gpu_takes_the_output_and_the_last_layers_that_fit() {
        // 7 GiB free of 8: 6 GiB after the 1 GiB margin; minus 512 MiB scratch and the 1 GiB
        // output, 4608 MiB hold 7 layers of 600 MiB (408 MiB left).
        let devs = [dev(0, "Small", 8 * GIB, 7 * GIB, (8, 6))];
        let p = plan(&devs, &model(), &auto());
        assert_eq!(p.output, Some(0));
        assert_eq!(p.gpu_layers(), 7);
        assert_eq!(range_on(&p, 0), 19..26);
        assert_eq!(
            p.reason,
            "7 of 26 layers and the output on GPU 0 (Small, 6.0 GiB free after a 1.0 GiB margin); \
             the rest on the CPU: 0.4 GiB left free after the margin"
        );
        assert_eq!(
            p.devices,
            vec![DeviceUse {
                device: 0,
                layers: 7,
                weight_bytes: 7 * 500 * MIB + GIB,
                kv_bytes: 7 * 100 * MIB,
                scratch_bytes: 512 * MIB,
                holds_output: true,
            }]
        );
    }

    #[test]
    fn one_large_gpu_takes_everything() {
        let devs = [dev(0, "NVIDIA H200", 140 * GIB, 139 * GIB, (9, 0))];
        let p = plan(&devs, &model(), &auto());
        assert_eq!(p.layers, vec![Some(0); 26]);
        assert_eq!(p.output, Some(0));
        assert_eq!(
            p.reason,
            "26 of 26 layers and the output on GPU 0 (NVIDIA H200, 125.0 GiB free after a \
             14.0 GiB margin)"
        );
        let u = &p.devices[0];
        assert_eq!(
            u.weight_bytes + u.kv_bytes + u.scratch_bytes,
            model().total()
        );
    }

    #[test]
    fn two_unequal_gpus_split_in_proportion_with_the_output_on_the_best() {
        // Usable: 10.8 GiB on GPU 0, 21.6 GiB on GPU 1 (the best); the model is 16.2 GiB.
        let devs = [
            dev(0, "Twelve", 12 * GIB, 12 * GIB, (8, 9)),
            dev(1, "TwentyFour", 24 * GIB, 24 * GIB, (8, 9)),
        ];
        let p = plan(&devs, &model(), &auto());
        assert_eq!(p.gpu_layers(), 26, "{p:?}");
        assert_eq!(p.output, Some(1));
        let (r0, r1) = (range_on(&p, 0), range_on(&p, 1));
        assert_eq!(r0.start, 0);
        assert_eq!(r0.end, r1.start);
        assert_eq!(r1.end, 26);
        assert_eq!(p.devices.len(), 2);
        let (u0, u1) = (&p.devices[0], &p.devices[1]);
        assert_eq!((u0.device, u1.device), (0, 1));
        assert!(!u0.holds_output && u1.holds_output);
        assert_eq!((u0.scratch_bytes, u1.scratch_bytes), (512 * MIB, 512 * MIB));
        // About two thirds of the bytes on GPU 1.
        let (b0, b1) = (u0.weight_bytes + u0.kv_bytes, u1.weight_bytes + u1.kv_bytes);
        let ratio = b1 as f64 / b0 as f64;
        assert!((1.6..2.5).contains(&ratio), "ratio {ratio}: {p:?}");
        assert!(
            p.reason
                .starts_with("26 of 26 layers and the output on GPU 1 (TwentyFour"),
            "{}",
            p.reason
        );
        assert!(p.reason.contains(" and GPU 0 (Twelve"), "{}", p.reason);
        assert!(!p.reason.contains("CPU"), "{}", p.reason);

        // SplitMode::None uses the best one alone.
        let none = GpuParams {
            split: SplitMode::None,
            ..auto()
        };
        let p = plan(&devs, &model(), &none);
        assert_eq!(p.devices.len(), 1);
        assert_eq!(p.devices[0].device, 1);
        assert_eq!(p.gpu_layers(), 26);
    }

    #[test]
    fn a_device_that_holds_only_its_scratch_is_not_used() {
        let devs = [
            dev(0, "Big", 40 * GIB, 40 * GIB, (9, 0)),
            dev(1, "Full", 8 * GIB, GIB + 100 * MIB, (9, 0)),
        ];
        let p = plan(&devs, &model(), &auto());
        assert_eq!(p.devices.len(), 1);
        assert_eq!(p.devices[0].device, 0);
        assert_eq!(p.gpu_layers(), 26);
    }

    #[test]
    fn too_little_memory_for_even_the_output_leaves_everything_on_the_cpu() {
        // 1.2 GiB usable: the scratch fits, the scratch and the output do not.
        let devs = [dev(0, "Tiny", 4 * GIB, 2 * GIB + 205 * MIB, (7, 5))];
        let p = plan(&devs, &model(), &auto());
        assert!(!p.uses_gpu());
        assert!(p.devices.is_empty());
        assert_eq!(p.layers, vec![None; 26]);
        assert_eq!(
            p.reason,
            "no layer fits on GPU 0 (Tiny): 1.2 GiB free after a 1.0 GiB margin, and the output \
             alone needs 1.5 GiB; everything on the CPU"
        );
    }

    #[test]
    fn a_margin_that_leaves_nothing_leaves_everything_on_the_cpu() {
        let devs = [dev(0, "Busy", 8 * GIB, 800 * MIB, (8, 6))];
        let p = plan(&devs, &model(), &auto());
        assert!(!p.uses_gpu());
        assert_eq!(
            p.reason,
            "no layer fits on GPU 0 (Busy): 0.0 GiB free after a 1.0 GiB margin; everything on \
             the CPU"
        );
        // A larger margin than the free memory, asked for in bytes.
        let devs = [dev(0, "Roomy", 80 * GIB, 70 * GIB, (9, 0))];
        let big = GpuParams {
            margin: Margin::from_bytes(75 * GIB),
            ..auto()
        };
        let p = plan(&devs, &model(), &big);
        assert!(!p.uses_gpu());
        assert!(p.reason.contains("75.0 GiB margin"), "{}", p.reason);
    }

    #[test]
    fn count_more_than_fits_offloads_what_fits_and_says_so() {
        let devs = [dev(0, "Small", 8 * GIB, 7 * GIB, (8, 6))];
        let p = plan(&devs, &model(), &count(20));
        assert_eq!(p.gpu_layers(), 7);
        assert_eq!(range_on(&p, 0), 19..26);
        assert!(p
            .reason
            .starts_with("7 of 26 layers and the output on GPU 0"));
        assert!(
            p.reason
                .contains("gpu_layers 20 asked for more than fits; the rest on the CPU"),
            "{}",
            p.reason
        );
    }

    #[test]
    fn count_takes_the_last_layers_and_more_than_the_model_has_is_all() {
        let devs = [dev(0, "NVIDIA H200", 140 * GIB, 139 * GIB, (9, 0))];
        let p = plan(&devs, &model(), &count(4));
        assert_eq!(range_on(&p, 0), 22..26);
        assert_eq!(p.output, Some(0));
        assert!(
            p.reason.ends_with("margin); the rest on the CPU"),
            "{}",
            p.reason
        );
        let p = plan(&devs, &model(), &count(1000));
        assert_eq!(p.gpu_layers(), 26);
    }

    #[test]
    fn count_zero_and_no_device_are_the_cpu() {
        let devs = [dev(0, "NVIDIA H200", 140 * GIB, 139 * GIB, (9, 0))];
        let p = plan(&devs, &model(), &count(0));
        assert_eq!(p, Placement::cpu(26, "gpu_layers 0: everything on the CPU"));
        assert_eq!(plan(&devs, &model(), &GpuParams::cpu_only()), p);
        let p = plan(&[], &model(), &auto());
        assert!(!p.uses_gpu());
        assert!(p.reason.starts_with("no CUDA device"), "{}", p.reason);
        let report = CudaReport {
            available: false,
            reason: Some("no CUDA driver (libcuda not found)".into()),
            driver_version: None,
            devices: Vec::new(),
        };
        let p = plan_report(&report, &model(), &auto());
        assert_eq!(
            p.reason,
            "no CUDA device: no CUDA driver (libcuda not found); everything on the CPU"
        );
    }

    #[test]
    fn main_gpu_is_used_and_out_of_range_falls_back_to_the_best() {
        let devs = [
            dev(0, "Twelve", 12 * GIB, 12 * GIB, (8, 9)),
            dev(1, "TwentyFour", 24 * GIB, 24 * GIB, (8, 9)),
        ];
        let on0 = GpuParams {
            main_gpu: Some(0),
            split: SplitMode::None,
            ..auto()
        };
        let p = plan(&devs, &model(), &on0);
        assert_eq!(p.output, Some(0));
        assert_eq!(p.devices.len(), 1);
        assert_eq!(p.devices[0].device, 0);
        assert_eq!(p.gpu_layers(), 15); // (11059 - 512 - 1024 MiB) / 600 MiB

        // Layer split with main_gpu 0: GPU 0 holds the output and the last layers.
        let p = plan(
            &devs,
            &model(),
            &GpuParams {
                main_gpu: Some(0),
                ..auto()
            },
        );
        assert_eq!(p.output, Some(0));
        assert_eq!(range_on(&p, 0).end, 26);
        assert_eq!(range_on(&p, 1).start, 0);

        let far = GpuParams {
            main_gpu: Some(5),
            ..auto()
        };
        let p = plan(&devs, &model(), &far);
        assert_eq!(p.output, Some(1));
        assert!(
            p.reason
                .starts_with("main_gpu 5 is not a device (2 found), so the best, GPU 1: 26 of 26"),
            "{}",
            p.reason
        );
    }

    #[test]
    fn ties_in_free_memory_go_to_the_higher_capability_then_the_lower_index() {
        let none = GpuParams {
            split: SplitMode::None,
            ..auto()
        };
        let devs = [
            dev(0, "Ampere", 24 * GIB, 20 * GIB, (8, 6)),
            dev(1, "Hopper", 24 * GIB, 20 * GIB, (9, 0)),
            dev(2, "Hopper2", 24 * GIB, 20 * GIB, (9, 0)),
        ];
        assert_eq!(plan(&devs, &model(), &none).output, Some(1));
        let devs = [
            dev(0, "A", 24 * GIB, 20 * GIB, (9, 0)),
            dev(1, "B", 24 * GIB, 20 * GIB, (9, 0)),
        ];
        assert_eq!(plan(&devs, &model(), &none).output, Some(0));
        // More free memory beats capability.
        let devs = [
            dev(0, "Hopper", 24 * GIB, 10 * GIB, (9, 0)),
            dev(1, "Ampere", 24 * GIB, 20 * GIB, (8, 6)),
        ];
        assert_eq!(plan(&devs, &model(), &none).output, Some(1));
    }

    #[test]
    fn front_end_values_convert_and_bad_ones_are_invalid_arguments() {
        assert_eq!(GpuLayers::from_i64(-1).unwrap(), GpuLayers::Auto);
        assert_eq!(GpuLayers::from_i64(0).unwrap(), GpuLayers::Count(0));
        assert_eq!(GpuLayers::from_i64(12).unwrap(), GpuLayers::Count(12));
        assert_eq!(
            GpuLayers::from_i64(-2).unwrap_err().kind(),
            crate::ErrorKind::InvalidArgument
        );
        assert_eq!(GpuLayers::from_name("auto").unwrap(), GpuLayers::Auto);
        assert_eq!(GpuLayers::from_name("7").unwrap(), GpuLayers::Count(7));
        assert!(GpuLayers::from_name("-1").is_err());
        assert!(GpuLayers::from_name("all").is_err());
        assert_eq!(SplitMode::from_name("none").unwrap(), SplitMode::None);
        assert_eq!(SplitMode::from_name("layer").unwrap(), SplitMode::Layer);
        assert!(SplitMode::from_name("row").is_err());
        for p in [DeviceOomPolicy::Cpu, DeviceOomPolicy::Error] {
            assert_eq!(DeviceOomPolicy::from_name(p.name()).unwrap(), p);
            assert_eq!(serde_json::to_value(p).unwrap(), p.name());
        }
        assert_eq!(DeviceOomPolicy::default(), DeviceOomPolicy::Cpu);
        let e = DeviceOomPolicy::from_name("abort").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("on_device_oom"), "{e}");
        // The planner carries the policy into the placement it reports.
        let p = GpuParams {
            on_device_oom: DeviceOomPolicy::Error,
            ..GpuParams::default()
        };
        let devs = [dev(0, "A", 24 * GIB, 20 * GIB, (9, 0))];
        assert_eq!(
            plan(&devs, &model(), &p).on_device_oom,
            DeviceOomPolicy::Error
        );
        assert_eq!(Margin::from_bytes(0), Margin::default());
        assert_eq!(Margin::from_bytes(5).on(100 * GIB), 5);
        assert_eq!(Margin::default().on(4 * GIB), GIB);
        assert_eq!(Margin::default().on(80 * GIB), 8 * GIB);
    }
}
