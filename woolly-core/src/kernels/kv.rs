//! How a KV cache stores keys and values, the view of one layer that attention kernels read,
//! and the shape of a layer's attention: what every backend's attention kernels take.

use half::f16;
use half::slice::HalfFloatSliceExt;
use serde::Serialize;

/// How keys and values are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KvPrecision {
    /// Half precision (2 bytes a value), the default: what llama.cpp keeps too, so the
    /// answers match its references.
    #[default]
    F16,
    /// Full precision (4 bytes a value): twice the memory; keys and values are not rounded.
    F32,
}

impl KvPrecision {
    /// Bytes per stored value.
    pub fn bytes(self) -> usize {
        match self {
            KvPrecision::F16 => 2,
            KvPrecision::F32 => 4,
        }
    }

    /// The name front ends use (`"f16"`, `"f32"`).
    pub fn name(self) -> &'static str {
        match self {
            KvPrecision::F16 => "f16",
            KvPrecision::F32 => "f32",
        }
    }

    /// The precision called `name`.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] for another name.
    pub fn from_name(name: &str) -> crate::Result<KvPrecision> {
        match name {
            "f16" => Ok(KvPrecision::F16),
            "f32" => Ok(KvPrecision::F32),
            other => Err(crate::Error::InvalidArgument(format!(
                "kv precision must be \"f16\" or \"f32\", not {other:?}"
            ))),
        }
    }
}

/// One layer's keys or values, as attention reads them.
#[derive(Debug, Clone, Copy)]
pub enum KvView<'a> {
    F16(&'a [f16]),
    F32(&'a [f32]),
}

impl<'a> KvView<'a> {
    /// Values `start..start + len` as f32: borrowed when stored so, else converted into `buf`
    /// (at least `len` long).
    #[inline]
    pub fn row<'b>(&self, start: usize, len: usize, buf: &'b mut [f32]) -> &'b [f32]
    where
        'a: 'b,
    {
        match *self {
            KvView::F32(s) => &s[start..start + len],
            KvView::F16(s) => {
                let out = &mut buf[..len];
                s[start..start + len].convert_to_f32_slice(out);
                out
            }
        }
    }
}

/// The shape of one layer's attention.
#[derive(Debug, Clone, Copy)]
pub struct AttnShape {
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention: each serves `n_head / n_head_kv` query heads).
    pub n_head_kv: usize,
    /// Size of a query or key head.
    pub head_dim_k: usize,
    /// Size of a value head.
    pub head_dim_v: usize,
    /// Scale of the attention scores.
    pub kq_scale: f32,
}
