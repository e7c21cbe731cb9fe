//! The key/value cache of one sequence.

use half::f16;
use half::slice::HalfFloatSliceExt;

pub use crate::kernels::kv::KvPrecision;
use crate::kernels::kv::KvView;

#[derive(Debug, Clone)]
enum Layers {
    F16(Vec<Vec<f16>>),
    F32(Vec<Vec<f32>>),
}

impl Layers {
    fn new(p: KvPrecision, n: usize) -> Layers {
        match p {
            KvPrecision::F16 => Layers::F16(vec![Vec::new(); n]),
            KvPrecision::F32 => Layers::F32(vec![Vec::new(); n]),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Layers::F16(l) => l.iter().map(|v| v.capacity() * 2).sum(),
            Layers::F32(l) => l.iter().map(|v| v.capacity() * 4).sum(),
        }
    }

    fn grow(&mut self, len: usize) {
        fn grow<T: Copy + Default>(l: &mut [Vec<T>], len: usize) {
            for v in l {
                if v.len() < len {
                    v.resize(len, T::default());
                    crate::platform::memory::advise_huge_pages(v.as_mut_slice());
                }
            }
        }
        match self {
            Layers::F16(l) => grow(l, len),
            Layers::F32(l) => grow(l, len),
        }
    }

    /// Adds `n` empty layers after the others.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fn add_layers(&mut self, n: usize) {
        match self {
            Layers::F16(l) => l.resize_with(l.len() + n, Vec::new),
            Layers::F32(l) => l.resize_with(l.len() + n, Vec::new),
        }
    }

    /// Keeps the first `n` layers (frees the others).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fn keep_layers(&mut self, n: usize) {
        match self {
            Layers::F16(l) => l.truncate(n),
            Layers::F32(l) => l.truncate(n),
        }
    }

    fn view(&self, il: usize) -> KvView<'_> {
        match self {
            Layers::F16(l) => KvView::F16(&l[il]),
            Layers::F32(l) => KvView::F32(&l[il]),
        }
    }

    fn write(&mut self, il: usize, at: usize, x: &[f32]) {
        match self {
            Layers::F16(l) => l[il][at..at + x.len()].convert_from_f32_slice(x),
            Layers::F32(l) => l[il][at..at + x.len()].copy_from_slice(x),
        }
    }
}

/// Keys and values of every layer for the positions a sequence has seen.
///
/// Storage grows with the sequence (in steps) up to `capacity` positions, so a large context costs
/// memory only when it is used. Layout per layer: `[position][kv_head][head_dim]`.
#[derive(Debug)]
pub struct KvCache {
    k: Layers,
    v: Layers,
    k_width: usize,
    v_width: usize,
    len: usize,
    capacity: usize,
    precision: KvPrecision,
    /// Layers kept on GPUs (after the host's), and their storage once allocated: one entry per
    /// device the model's last layers run on, in layer order.
    device_layers: usize,
    #[cfg(feature = "cuda")]
    pub(crate) device: Vec<Option<DeviceKv>>,
    /// Layers that would be on a GPU but are kept here, because their device storage did not
    /// fit (see [`KvCache::move_to_host`]); 0 normally.
    moved_to_host: usize,
    /// Whether no position was filled since the move (the sequence that moved has not run).
    moved_unused: bool,
}

/// Positions added to the storage at a time.
const GROW_STEP: usize = 256;

impl KvCache {
    /// An empty cache for `n_layer` layers holding up to `capacity` positions, with `k_width` and
    /// `v_width` values per position per layer (kv heads times head size).
    pub fn new(
        n_layer: usize,
        k_width: usize,
        v_width: usize,
        capacity: usize,
        precision: KvPrecision,
    ) -> KvCache {
        KvCache {
            k: Layers::new(precision, n_layer),
            v: Layers::new(precision, n_layer),
            k_width,
            v_width,
            len: 0,
            capacity,
            precision,
            device_layers: 0,
            #[cfg(feature = "cuda")]
            device: Vec::new(),
            moved_to_host: 0,
            moved_unused: false,
        }
    }

    /// The same cache with `layers` more layers kept on the GPU the model's last layers run
    /// on (allocated there, for the whole capacity, at the first pass).
    pub fn with_device_layers(mut self, layers: usize) -> KvCache {
        self.device_layers = layers;
        self
    }

    /// Layers kept on a GPU.
    pub fn device_layers(&self) -> usize {
        self.device_layers
    }

    /// Layers the model runs on a GPU that this cache keeps on the host instead, since their
    /// device storage did not fit (the sequence then runs all its layers on the CPU); 0
    /// normally.
    pub fn moved_to_host(&self) -> usize {
        self.moved_to_host
    }

    /// Moves the device layers to the host, for a sequence that runs all its layers on the
    /// CPU: the device storage is freed and the host keeps every layer (growing with use, as
    /// its own layers do). Only for an empty cache: positions already on the device would be
    /// lost.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn move_to_host(&mut self) {
        debug_assert!(self.is_empty(), "positions on the device would be lost");
        #[cfg(feature = "cuda")]
        self.device.clear();
        self.k.add_layers(self.device_layers);
        self.v.add_layers(self.device_layers);
        self.moved_to_host += self.device_layers;
        self.device_layers = 0;
        self.moved_unused = true;
    }

    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    /// Whether the cache moved to the host and no position was filled since: the sequence
    /// that could not have its device storage has not run yet (it must not try again).
    pub(crate) fn moved_unused(&self) -> bool {
        self.moved_to_host > 0 && self.moved_unused
    }

    /// Undoes [`KvCache::move_to_host`] (for an empty cache, whose device storage is then
    /// allocated again at its next pass): the host frees the layers it kept for the device.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn back_to_device(&mut self) {
        debug_assert!(self.is_empty(), "positions on the host would be lost");
        let n = self.moved_to_host;
        let host = self.n_host_layers() - n;
        self.k.keep_layers(host);
        self.v.keep_layers(host);
        self.device_layers += n;
        self.moved_to_host = 0;
        self.moved_unused = false;
    }

    /// Layers stored on the host.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    fn n_host_layers(&self) -> usize {
        match &self.k {
            Layers::F16(l) => l.len(),
            Layers::F32(l) => l.len(),
        }
    }

    /// Values per position of one layer's keys.
    pub fn k_width(&self) -> usize {
        self.k_width
    }

    /// Values per position of one layer's values.
    pub fn v_width(&self) -> usize {
        self.v_width
    }

    /// Bytes held on a GPU.
    pub fn device_bytes(&self) -> usize {
        #[cfg(feature = "cuda")]
        if !self.device.is_empty() {
            return self.device.iter().flatten().map(|d| d.bytes()).sum();
        }
        0
    }

    /// Bytes a full cache of `capacity` positions takes.
    pub fn bytes_for(
        n_layer: usize,
        k_width: usize,
        v_width: usize,
        capacity: usize,
        precision: KvPrecision,
    ) -> u64 {
        // Saturating: an estimate for absurd numbers must say "too much", never wrap or panic.
        let cap = capacity.div_ceil(GROW_STEP) as u64 * GROW_STEP as u64;
        (n_layer as u64)
            .saturating_mul((k_width as u64).saturating_add(v_width as u64))
            .saturating_mul(precision.bytes() as u64)
            .saturating_mul(cap)
    }

    /// How values are stored.
    pub fn precision(&self) -> KvPrecision {
        self.precision
    }

    /// Positions filled.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is filled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most positions this cache can hold (the context size).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every position (keeps the storage for reuse).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Forgets positions from `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Bytes of storage currently held.
    pub fn bytes(&self) -> usize {
        self.k.bytes() + self.v.bytes()
    }

    /// Makes room for positions up to `end` (exclusive). The caller checked `end <= capacity`.
    pub(crate) fn reserve_to(&mut self, end: usize) {
        debug_assert!(end <= self.capacity);
        let want = end.div_ceil(GROW_STEP) * GROW_STEP;
        let want = want.min(self.capacity);
        self.k.grow(want * self.k_width);
        self.v.grow(want * self.v_width);
    }

    /// Marks positions up to `end` as filled.
    pub(crate) fn set_len(&mut self, end: usize) {
        self.len = end;
        if end > 0 {
            self.moved_unused = false;
        }
    }

    /// Keys of layer `il` (all reserved positions).
    pub(crate) fn k(&self, il: usize) -> KvView<'_> {
        self.k.view(il)
    }

    /// Values of layer `il`.
    pub(crate) fn v(&self, il: usize) -> KvView<'_> {
        self.v.view(il)
    }

    /// Writes the key and value of position `pos` in layer `il`.
    pub(crate) fn write(&mut self, il: usize, pos: usize, k: &[f32], v: &[f32]) {
        self.k.write(il, pos * self.k_width, &k[..self.k_width]);
        self.v.write(il, pos * self.v_width, &v[..self.v_width]);
    }
}

/// The keys and values of a sequence's layers that run on one device, half precision,
/// `[layer][position][kv width]`, allocated for the whole context at the first pass.
#[cfg(feature = "cuda")]
#[derive(Debug)]
pub struct DeviceKv {
    pub(crate) k: super::cuda::DevBuf<u16>,
    pub(crate) v: super::cuda::DevBuf<u16>,
}

#[cfg(feature = "cuda")]
impl DeviceKv {
    /// Bytes it holds on the device.
    pub fn bytes(&self) -> usize {
        (self.k.len() + self.v.len()) * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_storage_rounds_like_the_f32_path_and_halves_memory() {
        let k: Vec<f32> = (0..8).map(|i| 0.1 + i as f32 * 1.0001).collect();
        let v: Vec<f32> = (0..8).map(|i| -3.3 * i as f32).collect();
        let mut a = KvCache::new(2, 8, 8, 300, KvPrecision::F16);
        let mut b = KvCache::new(2, 8, 8, 300, KvPrecision::F32);
        for c in [&mut a, &mut b] {
            c.reserve_to(1);
            c.write(1, 0, &k, &v);
            c.set_len(1);
        }
        assert_eq!(a.bytes() * 2, b.bytes());
        let mut buf = [0f32; 8];
        let got = a.k(1).row(0, 8, &mut buf).to_vec();
        let mut want = k.clone();
        crate::kernels::cpu::ops::scalar_vec::round_to_f16(&mut want);
        assert_eq!(got, want);
        assert_eq!(b.k(1).row(0, 8, &mut buf), &k[..]);
        assert_eq!(
            KvCache::bytes_for(2, 8, 8, 300, KvPrecision::F16),
            2 * 16 * 2 * 512
        );
    }

    #[test]
    fn device_layers_move_to_the_host_and_back() {
        let mut c = KvCache::new(1, 8, 8, 300, KvPrecision::F16).with_device_layers(2);
        c.move_to_host();
        assert_eq!((c.device_layers(), c.moved_to_host()), (0, 2));
        assert!(c.moved_unused());
        // Every layer is on the host now, and grows with use.
        c.reserve_to(1);
        for il in 0..3 {
            c.write(il, 0, &[1.0; 8], &[2.0; 8]);
        }
        assert_eq!(c.bytes(), 3 * 2 * 8 * 256 * 2);
        c.set_len(1);
        assert!(!c.moved_unused());
        c.clear();
        c.back_to_device();
        assert_eq!((c.device_layers(), c.moved_to_host()), (2, 0));
        assert_eq!(c.bytes(), 2 * 8 * 256 * 2);
    }
}
