//! Synthetic models: a *skeleton* keeps a model's metadata and tensor infos but no tensor data
//! (a few MiB, so it can travel where the model cannot); *filling* it writes a full model of the
//! same shapes and types with random, deterministic, valid weights.

use std::io::{BufWriter, Write};
use std::path::Path;

use half::{bf16, f16};

use super::writer::{write_streaming, TensorSpec};
use super::{parse_header, GgmlType, GgufFile, Header, Value};
use crate::{Error, Result};

/// The metadata key (bool, true) that marks a skeleton.
pub const SKELETON_KEY: &str = "woolly.synth.skeleton";
/// The metadata key (u64) a filled model records its seed under.
pub const SEED_KEY: &str = "woolly.synth.seed";

fn write_err(path: &Path, e: std::io::Error) -> Error {
    Error::Internal(format!("cannot write {}: {e}", path.display()))
}

fn check_types<'a>(tensors: impl Iterator<Item = (&'a str, GgmlType)>) -> Result<()> {
    for (name, ty) in tensors {
        if !ty.is_computable() {
            return Err(Error::Unsupported(format!(
                "tensor `{name}` has type {ty:?}, which Woolly cannot compute, so it cannot be synthesized"
            )));
        }
    }
    Ok(())
}

/// Writes the skeleton of `src` to `out`: every metadata entry plus `woolly.synth.skeleton =
/// true`, every tensor info (name, shape, type, offset), and no tensor data.
pub fn synth_skeleton(src: &GgufFile, out: &Path) -> Result<()> {
    if src.get(SKELETON_KEY).and_then(Value::as_bool) == Some(true) {
        return Err(Error::InvalidArgument(format!(
            "{} is already a skeleton (it has {SKELETON_KEY}); pass a full model to --like",
            src.path().display()
        )));
    }
    check_types(src.tensors().iter().map(|t| (t.name.as_str(), t.ggml_type)))?;
    let mut metadata: Vec<(String, Value)> = src
        .metadata()
        .iter()
        .filter(|(k, _)| *k != SKELETON_KEY && *k != SEED_KEY)
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    metadata.push((SKELETON_KEY.to_string(), Value::Bool(true)));
    let specs = specs(src.tensors());
    let (header, _) =
        super::writer::encode_header(src.version(), src.alignment(), &metadata, &specs);
    std::fs::write(out, header).map_err(|e| write_err(out, e))
}

fn specs(tensors: &[super::TensorInfo]) -> Vec<TensorSpec> {
    tensors
        .iter()
        .map(|t| TensorSpec {
            name: t.name.clone(),
            ty: t.ggml_type,
            dims: t.dims.clone(),
        })
        .collect()
}

/// Reads and checks a skeleton's header (its tensors' data lies past the end of the file).
pub fn read_skeleton(path: &Path) -> Result<Header> {
    let buf = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let header = parse_header(&buf, u64::MAX).map_err(|e| Error::Gguf {
        path: path.to_path_buf(),
        source: e,
    })?;
    if header.metadata.get(SKELETON_KEY).and_then(Value::as_bool) != Some(true) {
        return Err(Error::InvalidArgument(format!(
            "{} is not a skeleton (it lacks {SKELETON_KEY} = true); make one with `woolly synth --like MODEL --out SKELETON`",
            path.display()
        )));
    }
    check_types(
        header
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.ggml_type)),
    )?;
    Ok(header)
}

/// Fills the skeleton at `skeleton` with random weights and writes the model to `out`. The same
/// skeleton and seed always give the same bytes; the data is streamed, not held in memory.
pub fn synth_fill(skeleton: &Path, out: &Path, seed: u64) -> Result<()> {
    let header = read_skeleton(skeleton)?;
    let mut metadata: Vec<(String, Value)> = header
        .metadata
        .iter()
        .filter(|(k, _)| *k != SKELETON_KEY && *k != SEED_KEY)
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    metadata.push((SEED_KEY.to_string(), Value::U64(seed)));
    let specs = specs(&header.tensors);
    let file = std::fs::File::create(out).map_err(|e| write_err(out, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    write_streaming(
        &mut w,
        header.version,
        header.alignment,
        &metadata,
        &specs,
        |_, t, sink| fill_tensor(t, seed, sink),
    )
    .map_err(|e| write_err(out, e))?;
    let file = w.into_inner().map_err(|e| write_err(out, e.into_error()))?;
    file.sync_all().map_err(|e| write_err(out, e))
}

/// splitmix64: a tiny, dependency-free generator. The sequence is part of the file format of
/// synthesized models (same seed, same bytes), so it must not change.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Uniform in [-1, 1).
    pub fn signed(&mut self) -> f32 {
        self.unit() * 2.0 - 1.0
    }
}

/// FNV-1a of a tensor's name: each tensor's stream depends on the seed and its name only.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// For each block type: the super-block scale `d` that puts dequantized values near std 0.03
/// with random quants and sub-scales, where the scale fields are, and the min field with the
/// factor (min = -factor × d for Q4_1/Q5_1; dmin = factor × d for the K-quants) that centres them.
fn block_params(ty: GgmlType) -> (f32, usize, Option<(usize, f32)>) {
    use GgmlType::*;
    match ty {
        Q4_0 => (0.0065, 0, None),
        Q4_1 => (0.0065, 0, Some((2, -7.5))),
        Q5_0 => (0.0033, 0, None),
        Q5_1 => (0.0033, 0, Some((2, -15.5))),
        Q8_0 => (0.0004, 0, None),
        Q2_K => (0.004, 80, Some((82, 1.5))),
        Q3_K => (0.0007, 108, None),
        Q4_K => (0.0002, 0, Some((2, 7.5))),
        Q5_K => (0.0001, 0, Some((2, 15.5))),
        Q6_K => (0.000022, 208, None),
        _ => unreachable!("float or unsupported type {ty:?}"),
    }
}

const CHUNK: usize = 1 << 16;

fn fill_tensor(t: &TensorSpec, seed: u64, sink: &mut dyn Write) -> std::io::Result<()> {
    let mut rng = SplitMix64(seed ^ name_hash(&t.name));
    let n: u64 = t.dims.iter().product();
    let is_norm = t.dims.len() == 1 && t.name.ends_with("_norm.weight");
    let is_bias = t.name.ends_with(".bias");
    // Float values: norms near 1, biases small, weights uniform with std about 0.03.
    let float = |rng: &mut SplitMix64| {
        if is_norm {
            1.0 + 0.02 * rng.signed()
        } else if is_bias {
            0.01 * rng.signed()
        } else {
            0.05 * rng.signed()
        }
    };
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK * 4);
    match t.ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
            let mut left = n;
            while left > 0 {
                let k = left.min(CHUNK as u64);
                buf.clear();
                for _ in 0..k {
                    let v = float(&mut rng);
                    match t.ty {
                        GgmlType::F32 => buf.extend_from_slice(&v.to_le_bytes()),
                        GgmlType::F16 => buf.extend_from_slice(&f16::from_f32(v).to_le_bytes()),
                        _ => buf.extend_from_slice(&bf16::from_f32(v).to_le_bytes()),
                    }
                }
                sink.write_all(&buf)?;
                left -= k;
            }
        }
        ty => {
            let (d, d_off, min) = block_params(ty);
            let ts = ty.type_size();
            let mut blocks = n / ty.block_size() as u64;
            let per_chunk = (CHUNK * 4 / ts).max(1) as u64;
            while blocks > 0 {
                let k = blocks.min(per_chunk) as usize;
                buf.clear();
                buf.resize(k * ts, 0);
                for block in buf.chunks_exact_mut(ts) {
                    for word in block.chunks_mut(8) {
                        let r = rng.next_u64().to_le_bytes();
                        word.copy_from_slice(&r[..word.len()]);
                    }
                    let dv = d * (0.75 + 0.5 * rng.unit());
                    block[d_off..d_off + 2].copy_from_slice(&f16::from_f32(dv).to_le_bytes());
                    if let Some((m_off, factor)) = min {
                        let mv = f16::from_f32(dv * factor);
                        block[m_off..m_off + 2].copy_from_slice(&mv.to_le_bytes());
                    }
                }
                sink.write_all(&buf)?;
                blocks -= k as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant;

    #[test]
    fn synth_block_values_are_finite_and_small() {
        use GgmlType::*;
        for ty in [
            Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, F32, F16, BF16,
        ] {
            let spec = TensorSpec {
                name: "blk.0.ffn_up.weight".into(),
                ty,
                dims: vec![256, 64],
            };
            let mut bytes = Vec::new();
            fill_tensor(&spec, 7, &mut bytes).unwrap();
            assert_eq!(bytes.len() as u64, spec.size());
            let mut vals = vec![0f32; 256 * 64];
            quant::dequantize_row(ty, &bytes, &mut vals).unwrap();
            let mean = vals.iter().sum::<f32>() / vals.len() as f32;
            let var = vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / vals.len() as f32;
            let std = var.sqrt();
            assert!(vals.iter().all(|v| v.is_finite()), "{ty:?}");
            assert!(
                (0.01..0.08).contains(&std),
                "{ty:?}: std {std}, mean {mean}"
            );
        }
    }
}
