//! Writing GGUF files: in memory ([`GgufWriter`], for tests and fuzz seeds) or streamed to a
//! file ([`write_streaming`], for synthetic models of any size).

use std::io::Write;
use std::path::Path;

use super::types::GgmlType;
use super::value::{Array, Value};
use super::DEFAULT_ALIGNMENT;

/// Builds a GGUF v3 (or v2) file in memory.
#[derive(Debug, Clone)]
pub struct GgufWriter {
    version: u32,
    alignment: u64,
    metadata: Vec<(String, Value)>,
    tensors: Vec<(String, GgmlType, Vec<u64>, Vec<u8>)>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter {
            version: 3,
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            tensors: Vec::new(),
        }
    }
}

impl GgufWriter {
    /// An empty v3 file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the version written in the header (the layout is the same for 2 and 3).
    pub fn version(mut self, v: u32) -> Self {
        self.version = v;
        self
    }

    /// Adds a metadata entry. `general.alignment`, when added as an integer, also sets the padding.
    pub fn kv(mut self, key: &str, value: Value) -> Self {
        if key == "general.alignment" {
            if let Some(a) = value.as_u64().filter(|a| a.is_power_of_two()) {
                self.alignment = a;
            }
        }
        self.metadata.push((key.to_string(), value));
        self
    }

    /// Adds a tensor with its raw bytes (which must match its type and shape for a valid file).
    pub fn tensor(mut self, name: &str, ty: GgmlType, dims: &[u64], data: Vec<u8>) -> Self {
        self.tensors
            .push((name.to_string(), ty, dims.to_vec(), data));
        self
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_str(&mut out, k);
            out.extend_from_slice(&v.value_type().id().to_le_bytes());
            put_value(&mut out, v);
        }
        let a = self.alignment as usize;
        let mut offset = 0usize;
        let mut offsets = Vec::with_capacity(self.tensors.len());
        for (name, ty, dims, data) in &self.tensors {
            put_str(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&ty.id().to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offsets.push(offset);
            offset = (offset + data.len()).div_ceil(a) * a;
        }
        out.resize(out.len().div_ceil(a) * a, 0);
        let data_start = out.len();
        for ((_, _, _, data), off) in self.tensors.iter().zip(offsets) {
            out.resize(data_start + off, 0);
            out.extend_from_slice(data);
        }
        out
    }

    /// Writes the file to `path`.
    pub fn write(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        f.write_all(&self.to_bytes())?;
        f.sync_all()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => put_str(out, s),
        Value::Array(a) => put_array(out, a),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

fn put_array(out: &mut Vec<u8>, a: &Array) {
    out.extend_from_slice(&a.element_type().id().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    for i in 0..a.len() {
        match a {
            Array::Array(v) => put_array(out, &v[i]),
            _ => {
                if let Some(v) = a.get(i) {
                    put_value(out, &v)
                }
            }
        }
    }
}

/// One tensor's header entry for [`write_streaming`]: its data is produced while writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub ty: GgmlType,
    pub dims: Vec<u64>,
}

impl TensorSpec {
    /// Bytes of data for this tensor's type and shape.
    pub fn size(&self) -> u64 {
        let n: u64 = self.dims.iter().product();
        n / self.ty.block_size() as u64 * self.ty.type_size() as u64
    }
}

/// Encodes a GGUF header (magic, counts, metadata, tensor infos with offsets laid out from the
/// sizes, padding to `alignment`). Returns the header's bytes and each tensor's data offset.
pub fn encode_header(
    version: u32,
    alignment: u64,
    metadata: &[(String, Value)],
    tensors: &[TensorSpec],
) -> (Vec<u8>, Vec<u64>) {
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut out, k);
        out.extend_from_slice(&v.value_type().id().to_le_bytes());
        put_value(&mut out, v);
    }
    let mut offset = 0u64;
    let mut offsets = Vec::with_capacity(tensors.len());
    for t in tensors {
        put_str(&mut out, &t.name);
        out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ty.id().to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        offsets.push(offset);
        offset = (offset + t.size()).div_ceil(alignment) * alignment;
    }
    out.resize(
        (out.len() as u64).div_ceil(alignment) as usize * alignment as usize,
        0,
    );
    (out, offsets)
}

/// Writes a GGUF file to `out`, header first, then each tensor's data as `fill(index, spec, sink)`
/// produces it (exactly `spec.size()` bytes, checked), padded to `alignment`. Nothing but the
/// header and what `fill` buffers is held in memory.
pub fn write_streaming<W: Write>(
    out: &mut W,
    version: u32,
    alignment: u64,
    metadata: &[(String, Value)],
    tensors: &[TensorSpec],
    mut fill: impl FnMut(usize, &TensorSpec, &mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let (header, offsets) = encode_header(version, alignment, metadata, tensors);
    out.write_all(&header)?;
    let mut pos = 0u64;
    for (i, (t, &off)) in tensors.iter().zip(&offsets).enumerate() {
        out.write_all(&vec![0u8; (off - pos) as usize])?;
        let mut counted = Counting {
            inner: &mut *out,
            n: 0,
        };
        fill(i, t, &mut counted)?;
        if counted.n != t.size() {
            return Err(std::io::Error::other(format!(
                "tensor `{}`: {} bytes written, {} expected",
                t.name,
                counted.n,
                t.size()
            )));
        }
        pos = off + t.size();
    }
    Ok(())
}

struct Counting<'a, W: Write> {
    inner: &'a mut W,
    n: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
