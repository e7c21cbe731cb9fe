//! The key/value cache of one sequence.

/// Keys and values of every layer for the positions a sequence has seen.
///
/// Storage grows with the sequence (in steps) up to `capacity` positions, so a large context costs
/// memory only when it is used. Layout per layer: `[position][kv_head][head_dim]`.
#[derive(Debug, Clone)]
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    k_width: usize,
    v_width: usize,
    len: usize,
    capacity: usize,
}

/// Positions added to the storage at a time.
const GROW_STEP: usize = 256;

impl KvCache {
    /// An empty cache for `n_layer` layers holding up to `capacity` positions, with `k_width` and
    /// `v_width` floats per position per layer (kv heads times head size).
    pub fn new(n_layer: usize, k_width: usize, v_width: usize, capacity: usize) -> KvCache {
        KvCache {
            k: vec![Vec::new(); n_layer],
            v: vec![Vec::new(); n_layer],
            k_width,
            v_width,
            len: 0,
            capacity,
        }
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
        self.k.iter().chain(&self.v).map(|l| l.capacity() * 4).sum()
    }

    /// Makes room for positions up to `end` (exclusive). The caller checked `end <= capacity`.
    pub(crate) fn reserve_to(&mut self, end: usize) {
        debug_assert!(end <= self.capacity);
        let want = end.div_ceil(GROW_STEP) * GROW_STEP;
        let want = want.min(self.capacity);
        for (layer, width) in self
            .k
            .iter_mut()
            .map(|l| (l, self.k_width))
            .chain(self.v.iter_mut().map(|l| (l, self.v_width)))
        {
            if layer.len() < want * width {
                layer.resize(want * width, 0.0);
            }
        }
    }

    /// Marks positions up to `end` as filled.
    pub(crate) fn set_len(&mut self, end: usize) {
        self.len = end;
    }

    /// Keys of layer `il` (all reserved positions).
    pub(crate) fn k(&self, il: usize) -> &[f32] {
        &self.k[il]
    }

    /// Values of layer `il`.
    pub(crate) fn v(&self, il: usize) -> &[f32] {
        &self.v[il]
    }

    /// Writes the key and value of position `pos` in layer `il`.
    pub(crate) fn write(&mut self, il: usize, pos: usize, k: &[f32], v: &[f32]) {
        let round = crate::kernels::cpu::ops::vec_ops().round_to_f16;
        let kd = &mut self.k[il][pos * self.k_width..(pos + 1) * self.k_width];
        kd.copy_from_slice(&k[..self.k_width]);
        round(kd);
        let vd = &mut self.v[il][pos * self.v_width..(pos + 1) * self.v_width];
        vd.copy_from_slice(&v[..self.v_width]);
        round(vd);
    }
}
