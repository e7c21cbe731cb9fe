//! The GGUF header parser: metadata and tensor infos from a byte slice.
//!
//! Every count, length, offset and size read from the file is untrusted. Each is checked with
//! overflow-safe arithmetic against what remains of the input before anything is allocated for
//! it, so a hostile file can make the parser fail but never panic or allocate unboundedly.

use std::collections::HashMap;

use super::types::GgmlType;
use super::value::{Array, Value, ValueType};
use super::GgufError;

/// `"GGUF"` as the first four bytes of the file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and tensors when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// GGML tensors have at most this many dimensions.
pub const MAX_DIMS: usize = 4;
/// Arrays of arrays deeper than this are refused (they would only serve to exhaust the stack).
const MAX_ARRAY_DEPTH: usize = 8;

/// Where a tensor lives and what it holds. Offsets are relative to the start of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Element type.
    pub ggml_type: GgmlType,
    /// Dimensions, innermost (contiguous) first, as GGML orders them: a weight matrix of
    /// `rows x cols` is `[cols, rows]`.
    pub dims: Vec<u64>,
    /// Offset of the first byte of the tensor's data from the start of the file.
    pub offset: u64,
    /// Size of the tensor's data in bytes.
    pub size: u64,
}

impl TensorInfo {
    /// Total number of elements.
    pub fn n_elements(&self) -> u64 {
        // Checked at parse time not to overflow.
        self.dims.iter().product()
    }

    /// Number of elements in one row (the innermost dimension).
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows: the product of every dimension but the first.
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }
}

/// Everything in a GGUF file but the tensor data itself.
#[derive(Debug, Clone)]
pub struct Header {
    /// The format version, 2 or 3.
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Metadata,
    /// Tensor infos in file order, with absolute offsets.
    pub tensors: Vec<TensorInfo>,
    /// `general.alignment`, or 32.
    pub alignment: u64,
    /// Offset of the data section from the start of the file.
    pub data_offset: u64,
}

/// Key-value metadata, in file order, with lookup by key.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// Every entry, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn insert(&mut self, key: String, value: Value) -> Result<(), GgufError> {
        if self.index.contains_key(&key) {
            return Err(GgufError::DuplicateKey(key));
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        Ok(())
    }

    /// Builds metadata from entries (used by tests and tools that write GGUF).
    pub fn from_entries(
        entries: impl IntoIterator<Item = (String, Value)>,
    ) -> Result<Self, GgufError> {
        let mut m = Metadata::default();
        for (k, v) in entries {
            m.insert(k, v)?;
        }
        Ok(m)
    }
}

/// A bounds-checked little-endian reader over the file's bytes.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        let available = self.remaining() as u64;
        if n > available {
            return Err(GgufError::Truncated {
                what: what(),
                offset: self.pos as u64,
                needed: n,
                available,
            });
        }
        let n = n as usize;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        self.array::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        self.array::<8>(what).map(u64::from_le_bytes)
    }

    /// Checks that `count` items of at least `min_size` bytes each can still be in the input.
    fn check_count(
        &self,
        count: u64,
        min_size: u64,
        what: &dyn Fn() -> String,
    ) -> Result<usize, GgufError> {
        let available = self.remaining() as u64;
        match count.checked_mul(min_size) {
            Some(needed) if needed <= available => Ok(count as usize),
            needed => Err(GgufError::Truncated {
                what: format!("{} ({count} items)", what()),
                offset: self.pos as u64,
                needed: needed.unwrap_or(u64::MAX),
                available,
            }),
        }
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len = self.u64(&|| format!("length of {}", what()))?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::InvalidUtf8 { what: what() })
    }
}

/// Parses the header of a GGUF file held in `buf` (the whole file, or at least its header; tensor
/// bounds are checked against `file_len`, which is normally `buf.len()`).
pub fn parse_header(buf: &[u8], file_len: u64) -> Result<Header, GgufError> {
    let mut c = Cursor { buf, pos: 0 };

    let magic = c.array::<4>(&|| "magic".into())?;
    if magic != GGUF_MAGIC {
        return Err(GgufError::BadMagic { found: magic });
    }
    let version = c.u32(&|| "version".into())?;
    match version {
        2 | 3 => {}
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
            return Err(GgufError::UnsupportedVersion {
                version: v,
                note: "this is a big-endian GGUF file; only little-endian files are supported",
            })
        }
        1 => {
            return Err(GgufError::UnsupportedVersion {
                version: 1,
                note: "GGUF v1 is obsolete; convert the model again with a current llama.cpp",
            })
        }
        v => {
            return Err(GgufError::UnsupportedVersion {
                version: v,
                note: "supported versions are 2 and 3",
            })
        }
    }
    let n_tensors = c.u64(&|| "tensor count".into())?;
    let n_kv = c.u64(&|| "metadata count".into())?;

    // A key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes.
    let n_kv = c.check_count(n_kv, 13, &|| "metadata".into())?;
    let mut metadata = Metadata::default();
    for i in 0..n_kv {
        let key = c.string(&|| format!("key of metadata entry {i}"))?;
        let ty = c.u32(&|| format!("type of `{key}`"))?;
        let value = read_value(&mut c, ty, &key, 0)?;
        metadata.insert(key, value)?;
    }

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 30 => a,
            _ => return Err(GgufError::InvalidAlignment(v.to_string())),
        },
    };

    // A tensor info takes at least 8 (name length) + 4 (n_dims) + 4 (type) + 8 (offset) bytes.
    let n_tensors = c.check_count(n_tensors, 24, &|| "tensor infos".into())?;
    let mut raw = Vec::with_capacity(n_tensors);
    let mut names = HashMap::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let name = c.string(&|| format!("name of tensor {i}"))?;
        let n_dims = c.u32(&|| format!("dimension count of tensor `{name}`"))?;
        if n_dims as usize > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                tensor: name,
                n_dims,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(c.u64(&|| format!("dimension {d} of tensor `{name}`"))?);
        }
        let type_id = c.u32(&|| format!("type of tensor `{name}`"))?;
        let offset = c.u64(&|| format!("offset of tensor `{name}`"))?;
        if names.insert(name.clone(), i).is_some() {
            return Err(GgufError::DuplicateTensor(name));
        }
        raw.push((name, dims, type_id, offset));
    }

    let data_offset = align_up(c.pos as u64, alignment)
        .ok_or(GgufError::InvalidAlignment(alignment.to_string()))?;
    if data_offset > file_len {
        return Err(GgufError::Truncated {
            what: "padding before the tensor data".into(),
            offset: c.pos as u64,
            needed: data_offset - c.pos as u64,
            available: file_len.saturating_sub(c.pos as u64),
        });
    }

    let mut tensors = Vec::with_capacity(raw.len());
    for (name, dims, type_id, rel_offset) in raw {
        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType {
            tensor: name.clone(),
            type_id,
        })?;
        let size =
            tensor_size(ggml_type, &dims).map_err(|reason| GgufError::InvalidTensorShape {
                tensor: name.clone(),
                dims: dims.clone(),
                reason,
            })?;
        if rel_offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor {
                tensor: name,
                offset: rel_offset,
                alignment,
            });
        }
        let start = data_offset.checked_add(rel_offset);
        let end = start.and_then(|s| s.checked_add(size));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => tensors.push(TensorInfo {
                name,
                ggml_type,
                dims,
                offset: start,
                size,
            }),
            _ => {
                return Err(GgufError::TensorOutOfBounds {
                    tensor: name,
                    offset: rel_offset,
                    size,
                    data_len: file_len.saturating_sub(data_offset),
                })
            }
        }
    }

    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}

fn align_up(x: u64, alignment: u64) -> Option<u64> {
    Some(x.checked_add(alignment - 1)? / alignment * alignment)
}

/// Bytes of a tensor of type `ty` and shape `dims`, with every overflow and layout rule checked.
fn tensor_size(ty: GgmlType, dims: &[u64]) -> Result<u64, String> {
    let mut n: u64 = 1;
    for &d in dims {
        n = n
            .checked_mul(d)
            .ok_or_else(|| "the element count overflows".to_string())?;
    }
    if n > i64::MAX as u64 {
        return Err("the element count overflows".into());
    }
    let row = dims.first().copied().unwrap_or(1);
    let row_bytes = ty.row_bytes(row).ok_or_else(|| {
        format!(
            "rows of {row} elements are not a whole number of {ty} blocks of {}",
            ty.block_size()
        )
    })?;
    let rows: u64 = dims.iter().skip(1).product(); // bounded by n, which did not overflow
    row_bytes
        .checked_mul(rows)
        .ok_or_else(|| "the byte size overflows".to_string())
}

fn read_value(c: &mut Cursor<'_>, ty: u32, key: &str, depth: usize) -> Result<Value, GgufError> {
    let vt = ValueType::from_id(ty).ok_or_else(|| GgufError::InvalidValueType {
        key: key.to_string(),
        type_id: ty,
    })?;
    let what = || format!("value of `{key}`");
    Ok(match vt {
        ValueType::U8 => Value::U8(c.array::<1>(&what)?[0]),
        ValueType::I8 => Value::I8(c.array::<1>(&what)?[0] as i8),
        ValueType::U16 => Value::U16(u16::from_le_bytes(c.array(&what)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(c.array(&what)?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(c.array(&what)?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(c.array(&what)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(c.array(&what)?)),
        ValueType::U64 => Value::U64(u64::from_le_bytes(c.array(&what)?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(c.array(&what)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(c.array(&what)?)),
        ValueType::Bool => match c.array::<1>(&what)?[0] {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            b => {
                return Err(GgufError::InvalidValue {
                    key: key.to_string(),
                    reason: format!("boolean byte {b} is neither 0 nor 1"),
                })
            }
        },
        ValueType::String => Value::String(c.string(&what)?),
        ValueType::Array => {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(GgufError::InvalidValue {
                    key: key.to_string(),
                    reason: format!("arrays nested deeper than {MAX_ARRAY_DEPTH}"),
                });
            }
            let elem_ty = c.u32(&|| format!("element type of `{key}`"))?;
            let count = c.u64(&|| format!("element count of `{key}`"))?;
            let et = ValueType::from_id(elem_ty).ok_or_else(|| GgufError::InvalidValueType {
                key: key.to_string(),
                type_id: elem_ty,
            })?;
            Value::Array(read_array(c, et, count, key, depth + 1)?)
        }
    })
}

fn read_array(
    c: &mut Cursor<'_>,
    et: ValueType,
    count: u64,
    key: &str,
    depth: usize,
) -> Result<Array, GgufError> {
    let what = || format!("elements of `{key}`");
    let n = c.check_count(count, et.min_size(), &what)?;
    macro_rules! fixed {
        ($variant:ident, $t:ty) => {{
            const W: usize = std::mem::size_of::<$t>();
            let bytes = c.take((n * W) as u64, &what)?;
            Array::$variant(
                bytes
                    .chunks_exact(W)
                    .map(|b| <$t>::from_le_bytes(b.try_into().expect("chunk of width W")))
                    .collect(),
            )
        }};
    }
    Ok(match et {
        ValueType::U8 => Array::U8(c.take(n as u64, &what)?.to_vec()),
        ValueType::I8 => Array::I8(c.take(n as u64, &what)?.iter().map(|&b| b as i8).collect()),
        ValueType::U16 => fixed!(U16, u16),
        ValueType::I16 => fixed!(I16, i16),
        ValueType::U32 => fixed!(U32, u32),
        ValueType::I32 => fixed!(I32, i32),
        ValueType::F32 => fixed!(F32, f32),
        ValueType::U64 => fixed!(U64, u64),
        ValueType::I64 => fixed!(I64, i64),
        ValueType::F64 => fixed!(F64, f64),
        ValueType::Bool => {
            let bytes = c.take(n as u64, &what)?;
            let mut v = Vec::with_capacity(n);
            for (i, &b) in bytes.iter().enumerate() {
                match b {
                    0 => v.push(false),
                    1 => v.push(true),
                    _ => {
                        return Err(GgufError::InvalidValue {
                            key: key.to_string(),
                            reason: format!("boolean byte {b} at index {i} is neither 0 nor 1"),
                        })
                    }
                }
            }
            Array::Bool(v)
        }
        ValueType::String => {
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                v.push(c.string(&|| format!("element {i} of `{key}`"))?);
            }
            Array::String(v)
        }
        ValueType::Array => {
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                let elem_ty = c.u32(&|| format!("element type of `{key}`[{i}]"))?;
                let count = c.u64(&|| format!("element count of `{key}`[{i}]"))?;
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(GgufError::InvalidValue {
                        key: key.to_string(),
                        reason: format!("arrays nested deeper than {MAX_ARRAY_DEPTH}"),
                    });
                }
                let et =
                    ValueType::from_id(elem_ty).ok_or_else(|| GgufError::InvalidValueType {
                        key: key.to_string(),
                        type_id: elem_ty,
                    })?;
                v.push(read_array(c, et, count, key, depth + 1)?);
            }
            Array::Array(v)
        }
    })
}
