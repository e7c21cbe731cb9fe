//! A model's layers on a GPU: the placement planned at load (the planner in
//! [`crate::policy::placement`] over the devices the driver reports), the weights uploaded
//! (offloading fewer layers when the device runs out of memory), and the forward pass split
//! between the CPU's first layers and the GPU's last ones and the output.
//!
//! A sequence's KV cache for the GPU's layers is allocated on the devices at its first pass
//! ([`ensure_device_kv`]). When it does not fit, the load's `on_device_oom`
//! ([`placement::DeviceOomPolicy`]) decides: under `Error` the pass (or that engine request)
//! fails with `OutOfDeviceMemory`; under `Cpu` the cache keeps every layer on the host and the
//! sequence runs through `GpuPart::host`, all its layers and the output on the CPU (the GPU
//! layers' weights read in place from the file's mapping). A batch holding both kinds runs as
//! two passes, the logits merged in batch order.

use crate::backend::cpu::{Cpu, CpuWeight};
#[cfg(feature = "cuda")]
use crate::backend::Act;
use crate::backend::{Backend, Matrix, SeqBatch};
use crate::gguf::GgufFile;
use crate::kernels::cpu::ThreadPool;
use crate::policy::placement::{self, Footprint, GpuLayers, GpuParams, Placement};
use crate::Result;

use super::transformer::Transformer;

/// The activation buffers of a model's forward passes: the CPU's, and the GPU's when layers
/// run there.
#[derive(Debug, Default)]
pub struct Scratch {
    cpu: crate::backend::cpu::Scratch,
    /// Each GPU stage's, in stage order, and the residual stream between two of them.
    #[cfg(feature = "cuda")]
    gpu: Vec<crate::backend::cuda::ops::CudaScratch>,
    #[cfg(feature = "cuda")]
    handover: Vec<f32>,
    /// Where the last pass left its logits.
    from: LogitsIn,
    /// The logits of a pass whose sequences ran partly on the GPU and partly on the CPU
    /// alone, in batch order.
    mixed: Vec<f32>,
}

/// Where a pass left its logits.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
enum LogitsIn {
    /// The CPU's scratch.
    #[default]
    Cpu,
    /// The last GPU stage's scratch.
    Gpu,
    /// [`Scratch::mixed`].
    Mixed,
}

impl Scratch {
    /// The logits of the last pass: of each sequence that asked for them, `n_vocab` each, in
    /// batch order.
    pub fn logits(&self) -> &[f32] {
        #[cfg(feature = "cuda")]
        if self.from == LogitsIn::Gpu {
            if let Some(g) = self.gpu.last() {
                return &g.logits;
            }
        }
        if self.from == LogitsIn::Mixed {
            return &self.mixed;
        }
        &self.cpu.logits
    }

    /// The logits, to be changed in place (by sampling).
    pub fn logits_mut(&mut self) -> &mut [f32] {
        #[cfg(feature = "cuda")]
        if self.from == LogitsIn::Gpu {
            if let Some(g) = self.gpu.last_mut() {
                return &mut g.logits;
            }
        }
        if self.from == LogitsIn::Mixed {
            return &mut self.mixed;
        }
        &mut self.cpu.logits
    }
}

/// What a model needs on a device for a context of `n_ctx`: each layer's weights and KV
/// cache, the output projection, and activations for a batch of `batch` tokens.
pub(crate) fn footprint(t: &Transformer<Matrix>, n_ctx: usize, batch: usize) -> Footprint {
    let c = &t.config;
    let kv = ((c.k_width() + c.v_width()) * 2 * n_ctx) as u64;
    let per_token = 4
        * (3 * c.n_embd
            + c.n_head * (c.head_dim_k + c.head_dim_v)
            + c.k_width()
            + c.v_width()
            + 2 * c.n_ff);
    let (lo, hi) = t.output.range();
    Footprint {
        layer_weights: t.layer_bytes(),
        layer_kv: vec![kv; t.layers.len()],
        output_weights: (hi - lo) as u64,
        // The batch's activations, and the logits of up to 16 sequences.
        scratch: (per_token * batch + 16 * 4 * c.n_vocab) as u64 + (64 << 20),
    }
}

/// The layers and output that run on GPUs: one stage per device, in layer order, each a run of
/// consecutive layers on its backend; the last stage also computes the logits.
#[cfg(feature = "cuda")]
pub(crate) struct GpuPart {
    pub(crate) stages: Vec<GpuStage>,
    /// What a sequence whose KV cache does not fit on the devices does.
    pub(crate) on_oom: placement::DeviceOomPolicy,
    /// The whole model on the CPU, for those sequences under `DeviceOomPolicy::Cpu`: the CPU's
    /// layers as prepared, the GPU's layers and the output read in place from the mapping (no
    /// copy: the file's pages serve them). Set once the CPU's part is prepared.
    pub(crate) host: Option<Transformer<CpuWeight>>,
    /// Whether the log has said so once.
    warned: std::sync::atomic::AtomicBool,
}

/// One device's run of layers.
#[cfg(feature = "cuda")]
pub(crate) struct GpuStage {
    pub(crate) backend: crate::backend::cuda::ops::Cuda,
    pub(crate) transformer: Transformer<crate::backend::cuda::ops::CudaWeight>,
}

#[cfg(feature = "cuda")]
impl GpuPart {
    /// Bytes of weights on the devices.
    pub(crate) fn device_bytes(&self) -> usize {
        self.stages.iter().map(|s| s.backend.prepared_bytes()).sum()
    }

    /// What its devices did so far, summed over the stages.
    pub(crate) fn activity_source(&self) -> impl Fn() -> crate::metrics::GpuActivity + Send + Sync {
        use std::sync::atomic::Ordering::Relaxed;
        let counters: Vec<_> = self
            .stages
            .iter()
            .map(|s| s.backend.gpu().counters.clone())
            .collect();
        move || {
            let mut a = crate::metrics::GpuActivity::default();
            for c in &counters {
                a.busy_seconds += c.busy_ns.load(Relaxed) as f64 / 1e9;
                a.graph_captures += c.graph_captures.load(Relaxed);
                a.graph_replays += c.graph_replays.load(Relaxed);
            }
            a
        }
    }
}

#[cfg(not(feature = "cuda"))]
pub(crate) struct GpuPart;

impl std::fmt::Debug for GpuPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GpuPart")
    }
}

/// The placement of `described` for `params`, and its GPU part prepared. Out of device
/// memory while uploading, it retries with one layer fewer each time (down to the CPU alone),
/// saying so in the log and in the placement's reason. Returns the placement, the layers that
/// stay on the CPU, and the GPU part.
pub(crate) fn place(
    file: &GgufFile,
    described: Transformer<Matrix>,
    params: &GpuParams,
    n_ctx: usize,
    batch: usize,
) -> Result<(Placement, Transformer<Matrix>, Option<GpuPart>)> {
    let (mut placement, described, gpu) = place_layers(file, described, params, n_ctx, batch)?;
    // Echoed with the placement on every path (also when nothing runs on a GPU).
    placement.on_device_oom = params.on_device_oom;
    Ok((placement, described, gpu))
}

fn place_layers(
    file: &GgufFile,
    described: Transformer<Matrix>,
    params: &GpuParams,
    n_ctx: usize,
    batch: usize,
) -> Result<(Placement, Transformer<Matrix>, Option<GpuPart>)> {
    let n_layers = described.layers.len();
    if params.layers == GpuLayers::Count(0) {
        return Ok((
            Placement::cpu(n_layers, "gpu_layers 0: everything on the CPU"),
            described,
            None,
        ));
    }
    let report = crate::platform::cuda::report();
    let devices = report.devices.clone();
    let fp = footprint(&described, n_ctx, batch);
    let mut p = *params;
    let mut placement = placement::plan_report(&report, &fp, &p);
    loop {
        if !placement.uses_gpu() {
            return Ok((placement, described, None));
        }
        let on_gpu = placement.gpu_layers();
        match prepare_gpu(file, described.clone(), &placement) {
            Ok(part) => return Ok((placement, described, Some(part))),
            Err(e) if e.kind() == crate::ErrorKind::OutOfDeviceMemory => {
                crate::log!(
                    crate::log::Level::Warn,
                    "{e}; retrying with {} GPU layers",
                    on_gpu.saturating_sub(1)
                );
                if on_gpu == 0 {
                    let why = format!("{e}; everything on the CPU");
                    return Ok((Placement::cpu(n_layers, why), described, None));
                }
                p.layers = GpuLayers::Count(on_gpu - 1);
                placement = placement::plan(&devices, &fp, &p);
                placement.reason = format!(
                    "{} (after running out of device memory: {e})",
                    placement.reason
                );
            }
            Err(e) => {
                crate::log!(
                    crate::log::Level::Warn,
                    "GPU unusable ({e}); running on the CPU"
                );
                let why = format!("{e}; everything on the CPU");
                return Ok((Placement::cpu(n_layers, why), described, None));
            }
        }
    }
}

#[cfg(feature = "cuda")]
fn prepare_gpu(
    file: &GgufFile,
    described: Transformer<Matrix>,
    placement: &Placement,
) -> Result<GpuPart> {
    use std::sync::Arc;
    let c = &described.config;
    let widest = c.head_dim_k.max(c.head_dim_v);
    if widest > crate::backend::cuda::ops::MAX_HEAD_DIM {
        return Err(crate::Error::Unsupported(format!(
            "attention heads {widest} wide on the GPU (its kernels take up to {})",
            crate::backend::cuda::ops::MAX_HEAD_DIM
        )));
    }
    // The GPU layers' runs, one per device, in layer order.
    let k = placement.layers.len() - placement.gpu_layers();
    let mut runs: Vec<(usize, usize)> = Vec::new(); // (device, layers)
    for d in placement.layers[k..].iter().flatten() {
        match runs.last_mut() {
            Some((dev, n)) if dev == d => *n += 1,
            _ => runs.push((*d, 1)),
        }
    }
    let output_device = placement
        .output
        .or_else(|| runs.last().map(|r| r.0))
        .unwrap_or(0);
    if runs.last().map(|r| r.0) != Some(output_device) {
        // The output alone on a device (no layer offloaded): an empty run there.
        runs.push((output_device, 0));
    }
    let (_, mut rest) = described.split_at(k);
    let mut stages = Vec::with_capacity(runs.len());
    let last = runs.len() - 1;
    for (stage, &(device, n)) in runs.iter().enumerate() {
        let (these, later) = rest.split_at(n);
        rest = later;
        let gpu = Arc::new(crate::backend::cuda::Gpu::open(device)?);
        let mut backend = crate::backend::cuda::ops::Cuda::new(file, gpu, stage, n);
        let transformer = if stage == last {
            these.prepare(&mut backend, file, &|_| Ok(()))?
        } else {
            these.prepare_with_output(&mut backend, file, &|_| Ok(()), |b, m| b.unused_output(m))?
        };
        stages.push(GpuStage {
            backend,
            transformer,
        });
    }
    Ok(GpuPart {
        stages,
        on_oom: placement.on_device_oom,
        host: None,
        warned: Default::default(),
    })
}

#[cfg(not(feature = "cuda"))]
fn prepare_gpu(
    _file: &GgufFile,
    _described: Transformer<Matrix>,
    _placement: &Placement,
) -> Result<GpuPart> {
    Err(crate::Error::Unsupported("built without CUDA".into()))
}

/// The CPU's part of a placed model: its first `k` layers prepared on `backend`, with the
/// output read in place from the mapping when the GPU computes it. With `whole`, also the
/// whole model on the CPU (see [`GpuPart::host`]): the same first layers, then the others and
/// the output read in place.
pub(crate) fn prepare_cpu(
    backend: &mut Cpu,
    file: &GgufFile,
    described: Transformer<Matrix>,
    k: usize,
    output_on_gpu: bool,
    whole: bool,
    progress: &dyn Fn(f32) -> Result<()>,
) -> Result<(Transformer<CpuWeight>, Option<Transformer<CpuWeight>>)> {
    let (head, tail) = described.split_at(k);
    let head = head.prepare_with_output(backend, file, progress, |b, m| {
        if output_on_gpu {
            Ok(Cpu::mapped(m))
        } else {
            b.prepare(file, m)
        }
    })?;
    if !whole {
        return Ok((head, None));
    }
    let mut layers = head.layers.clone();
    for l in tail.layers {
        layers.push(l.try_map(|m| Ok(Cpu::mapped(&m)))?);
    }
    let all = Transformer {
        config: head.config.clone(),
        tok_embd: head.tok_embd,
        layers,
        output_norm: head.output_norm.clone(),
        output: head.output.clone(),
        rope_freqs: head.rope_freqs.clone(),
    };
    Ok((head, Some(all)))
}

/// Makes sure `cache` has its storage on every GPU stage, allocating it at a sequence's first
/// pass. When it does not fit: under `DeviceOomPolicy::Cpu` the cache keeps every layer on the
/// host instead (the sequence then runs on the CPU alone; a warning in the log the first time,
/// and the model's `woolly_gpu_oom_fallbacks_total` counts it); under `DeviceOomPolicy::Error`
/// this fails with [`crate::Error::OutOfDeviceMemory`] and nothing stays allocated. A new sequence in a cache that had moved to the host (emptied after its
/// sequence ran) tries the devices again.
#[cfg(feature = "cuda")]
pub(crate) fn ensure_device_kv(
    g: &GpuPart,
    cache: &mut super::KvCache,
    metrics: &crate::metrics::ModelMetrics,
) -> Result<()> {
    if cache.moved_to_host() > 0 {
        if !cache.is_empty() || cache.moved_unused() {
            // The sequence goes on where it is (also when it has not run yet).
            return Ok(());
        }
        // A new sequence in a cache that moved: the devices may have room now.
        cache.back_to_device();
    }
    let Err(e) = g
        .stages
        .iter()
        .try_for_each(|st| st.backend.ensure_kv(cache))
    else {
        return Ok(());
    };
    let oom = e.kind() == crate::ErrorKind::OutOfDeviceMemory;
    if cache.is_empty() {
        // Give back what the other stages took.
        cache.device.clear();
        if oom && g.on_oom == placement::DeviceOomPolicy::Cpu && g.host.is_some() {
            cache.move_to_host();
            metrics.count_gpu_oom_fallback();
            if !g.warned.swap(true, std::sync::atomic::Ordering::Relaxed) {
                crate::log!(
                    crate::log::Level::Warn,
                    "{e}; this sequence runs all its layers on the CPU (on_device_oom cpu; \
                     woolly_gpu_oom_fallbacks_total counts each one from now on)"
                );
            }
            return Ok(());
        }
    }
    Err(e)
}

/// One forward pass: the CPU's layers, then the GPU's and the logits when there is a GPU
/// part (see [`super::Model::forward`]). Each sequence's device KV cache is allocated first
/// ([`ensure_device_kv`]); the sequences whose cache moved to the host run through the whole
/// model on the CPU, in a pass of their own, and the logits come out in batch order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    cpu: &Cpu,
    head: &Transformer<CpuWeight>,
    gpu: Option<&GpuPart>,
    metrics: &crate::metrics::ModelMetrics,
    seqs: &mut [SeqBatch<'_>],
    s: &mut Scratch,
    pool: &ThreadPool,
    cancelled: &dyn Fn() -> bool,
) -> Result<()> {
    s.from = LogitsIn::Cpu;
    let Some(_g) = gpu else {
        let _ = metrics;
        return head.forward(cpu, seqs, &mut s.cpu, pool, cancelled);
    };
    #[cfg(feature = "cuda")]
    {
        let g = _g;
        for b in seqs.iter_mut() {
            ensure_device_kv(g, b.cache, metrics)?;
        }
        let on_host: Vec<bool> = seqs.iter().map(|b| b.cache.moved_to_host() > 0).collect();
        if !on_host.contains(&true) {
            return gpu_pass(cpu, head, g, seqs, s, pool, cancelled);
        }
        let whole = g.host.as_ref().ok_or_else(|| {
            crate::Error::Internal("a sequence on the CPU without the model there".into())
        })?;
        if !on_host.contains(&false) {
            return whole.forward(cpu, seqs, &mut s.cpu, pool, cancelled);
        }
        // Both kinds: the GPU's sequences, then the CPU's; when the second pass fails, the
        // first one's caches go back to where they were (as after any failed pass).
        let (mut dev, mut host): (Vec<SeqBatch<'_>>, Vec<SeqBatch<'_>>) = (vec![], vec![]);
        for (b, &h) in seqs.iter_mut().zip(&on_host) {
            let r = SeqBatch {
                cache: &mut *b.cache,
                tokens: b.tokens,
                want_logits: b.want_logits,
            };
            if h {
                host.push(r);
            } else {
                dev.push(r);
            }
        }
        let before: Vec<usize> = dev.iter().map(|b| b.cache.len()).collect();
        gpu_pass(cpu, head, g, &mut dev, s, pool, cancelled)?;
        if let Err(e) = whole.forward(cpu, &mut host, &mut s.cpu, pool, cancelled) {
            for (b, len) in dev.iter_mut().zip(before) {
                b.cache.truncate(len);
            }
            return Err(e);
        }
        drop((dev, host));
        let n_vocab = head.config.n_vocab;
        let from_gpu: &[f32] = match (s.from, s.gpu.last()) {
            (LogitsIn::Gpu, Some(gs)) => &gs.logits,
            _ => &[],
        };
        let (mut gi, mut ci) = (0, 0);
        s.mixed.clear();
        for (b, &h) in seqs.iter().zip(&on_host) {
            if !b.want_logits || b.tokens.is_empty() {
                continue;
            }
            let (src, at) = if h {
                ci += 1;
                (&s.cpu.logits[..], ci - 1)
            } else {
                gi += 1;
                (from_gpu, gi - 1)
            };
            s.mixed
                .extend_from_slice(&src[at * n_vocab..(at + 1) * n_vocab]);
        }
        s.from = LogitsIn::Mixed;
        Ok(())
    }
    #[cfg(not(feature = "cuda"))]
    unreachable!("no GPU part without CUDA")
}

/// A pass of `seqs` (whose device caches are allocated) over the CPU's first layers, then
/// each GPU stage's; the logits come from the last stage.
#[cfg(feature = "cuda")]
fn gpu_pass(
    cpu: &Cpu,
    head: &Transformer<CpuWeight>,
    g: &GpuPart,
    seqs: &mut [SeqBatch<'_>],
    s: &mut Scratch,
    pool: &ThreadPool,
    cancelled: &dyn Fn() -> bool,
) -> Result<()> {
    s.from = LogitsIn::Cpu;
    if !head.begin(cpu, &mut s.cpu, seqs)? {
        return Ok(());
    }
    if s.gpu.len() != g.stages.len() {
        s.gpu.resize_with(g.stages.len(), Default::default);
    }
    s.from = LogitsIn::Gpu;
    let last = g.stages.len() - 1;
    for (i, (stage, gs)) in g.stages.iter().zip(s.gpu.iter_mut()).enumerate() {
        let (b, t) = (&stage.backend, &stage.transformer);
        t.begin(b, gs, seqs)?;
        if i > 0 {
            b.upload_x(gs, &s.handover)?;
        } else if head.layers.is_empty() {
            b.embed(gs, seqs, &t.tok_embd, t.config.embd_scale)?;
        } else {
            cpu.embed(&mut s.cpu, seqs, &head.tok_embd, head.config.embd_scale)?;
            head.run_layers(cpu, &mut s.cpu, pool, seqs, cancelled)?;
            b.upload_x(gs, s.cpu.act(Act::X))?;
        }
        t.run_layers(b, gs, &(), seqs, cancelled)?;
        if i == last {
            t.finish(b, gs, &(), seqs, cancelled)?;
        } else {
            b.download_x(gs, &mut s.handover)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Model, ModelParams};
    use crate::platform::cuda::CudaDevice;

    fn described() -> (GgufFile, Transformer<Matrix>) {
        let file = GgufFile::open(crate::testing::default_model()).unwrap();
        let hp = crate::model::HParams::from_gguf(&file).unwrap();
        let t = crate::model::gemma3::load(&file, &hp).unwrap();
        (file, t)
    }

    #[test]
    fn the_footprint_of_the_default_model_is_its_tensors_and_a_context() {
        let (file, t) = described();
        let fp = footprint(&t, 4096, 512);
        assert_eq!(fp.layer_weights.len(), 18);
        // gemma3 270m: 1 KV head of 256 for keys and values, f16, 4096 positions.
        assert_eq!(fp.layer_kv[0], 2 * 256 * 2 * 4096);
        // The tied Q8_0 embedding is the output: about 180 MB; layers and output together are
        // nearly the whole file.
        assert!(
            (170 << 20..190 << 20).contains(&fp.output_weights),
            "{}",
            fp.output_weights
        );
        let total: u64 = fp.layer_weights.iter().sum::<u64>() + fp.output_weights;
        let file_bytes = file.bytes().len() as u64;
        assert!(
            total < file_bytes && total > file_bytes * 9 / 10,
            "{total} of {file_bytes}"
        );
    }

    #[test]
    fn a_large_device_would_take_the_whole_default_model() {
        let (_, t) = described();
        let fp = footprint(&t, 4096, 512);
        let h200 = CudaDevice {
            index: 0,
            name: "NVIDIA H200".into(),
            total_bytes: 141 << 30,
            free_bytes: 140 << 30,
            compute_capability: (9, 0),
            sm_count: 132,
            max_threads_per_block: 1024,
            warp_size: 32,
        };
        let p = placement::plan(&[h200], &fp, &GpuParams::default());
        assert_eq!(p.gpu_layers(), 18);
        assert_eq!(p.output, Some(0));
    }

    #[test]
    fn without_a_device_or_with_gpu_layers_0_everything_runs_on_the_cpu() {
        let report = crate::platform::cuda::report();
        for layers in [GpuLayers::Auto, GpuLayers::Count(0)] {
            let params = ModelParams {
                context_size: 256,
                gpu: GpuParams {
                    layers,
                    ..Default::default()
                },
                ..Default::default()
            };
            let model = Model::load(Some(&crate::testing::default_model()), &params).unwrap();
            let p = model.placement();
            if report.available && layers == GpuLayers::Auto {
                println!("skipped: a CUDA device is present ({})", p.reason);
                continue;
            }
            assert!(!p.uses_gpu(), "{}", p.reason);
            assert_eq!(p.layers.len(), 18);
            assert!(p.reason.contains("everything on the CPU"), "{}", p.reason);
            if layers == GpuLayers::Auto {
                let why = report.reason.clone().unwrap();
                assert!(p.reason.contains(&why), "{} lacks {why}", p.reason);
            }
            assert_eq!(
                model.info().unwrap()["placement"]["output"],
                serde_json::Value::Null
            );
            assert_eq!(model.device_weight_bytes(), 0);
            let cache = model.new_kv_cache(256, crate::model::KvPrecision::F16);
            assert_eq!(cache.device_layers(), 0);
        }
    }
}
