//! Synthetic model files for tests and fuzzing.
//!
//! [`synthetic_llama`] builds a complete, valid llama-architecture model small enough to check
//! in (a SentencePiece vocabulary with byte fallback, one layer, f32 weights). [`hostile`] derives
//! from it one file per way a model file can lie: each comes with the status every front end must
//! answer with and a fragment of the message. `woolly-corpus <dir>` writes them with a
//! `manifest.tsv` (file, status, message fragment, what is wrong); the C, Python, Node and CLI
//! suites read that manifest, and `tests/hostile.rs` keeps the checked-in copy current.

use woolly_core::gguf::writer::GgufWriter;
use woolly_core::gguf::{Array, GgmlType, Value};

/// Width of the synthetic model's residual stream.
pub const N_EMBD: u64 = 16;
/// Its feed-forward width.
pub const N_FF: u64 = 32;
/// Words of its vocabulary besides `<unk>`, `<s>`, `</s>` and the 256 byte tokens.
pub const WORDS: &[&str] = &[
    "▁", "▁the", "▁a", "▁cat", "▁sat", "▁on", "▁mat", "e", "t", "a", "h", "s", "▁th", "at",
];

/// Vocabulary size of the synthetic model.
pub fn n_vocab() -> u64 {
    3 + 256 + WORDS.len() as u64
}

/// The pieces of a synthetic model, before they are written: a list of metadata entries and of
/// tensors that the hostile variants edit.
#[derive(Debug, Clone)]
pub struct Parts {
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<(String, GgmlType, Vec<u64>, Vec<u8>)>,
}

impl Parts {
    /// Replaces (or adds) the entry `key`.
    pub fn set(&mut self, key: &str, value: Value) -> &mut Self {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
        self
    }

    /// Removes the entry `key`.
    pub fn remove(&mut self, key: &str) -> &mut Self {
        self.metadata.retain(|(k, _)| k != key);
        self
    }

    /// Removes the tensor `name`.
    pub fn drop_tensor(&mut self, name: &str) -> &mut Self {
        self.tensors.retain(|(n, ..)| n != name);
        self
    }

    /// The tensor `name`, for editing.
    pub fn tensor_mut(&mut self, name: &str) -> &mut (String, GgmlType, Vec<u64>, Vec<u8>) {
        self.tensors
            .iter_mut()
            .find(|(n, ..)| n == name)
            .unwrap_or_else(|| panic!("no tensor {name}"))
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = GgufWriter::new();
        for (k, v) in &self.metadata {
            w = w.kv(k, v.clone());
        }
        for (n, ty, dims, data) in &self.tensors {
            w = w.tensor(n, *ty, dims, data.clone());
        }
        w.to_bytes()
    }
}

/// Deterministic small weights (a xorshift stream scaled to ±0.25).
fn weights(n: u64, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n as usize * 4);
    for _ in 0..n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let v = ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.5;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn ones(n: u64) -> Vec<u8> {
    (0..n).flat_map(|_| 1.0f32.to_le_bytes()).collect()
}

/// A valid llama-architecture model: 16 wide, one layer, two query heads sharing one key/value
/// head, f32 weights, a SentencePiece vocabulary with byte fallback and a chat template.
pub fn synthetic_llama() -> Parts {
    let mut tokens = vec!["<unk>".to_string(), "<s>".into(), "</s>".into()];
    let mut types = vec![2i32, 3, 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    for w in WORDS {
        tokens.push(w.to_string());
        types.push(1);
    }
    let scores: Vec<f32> = (0..tokens.len())
        .map(|i| if i < 259 { 0.0 } else { -(i as f32 - 259.0) })
        .collect();
    let s = |v: &str| Value::String(v.to_string());
    let metadata = vec![
        ("general.architecture".to_string(), s("llama")),
        ("general.name".into(), s("woolly synthetic llama")),
        ("llama.context_length".into(), Value::U32(128)),
        ("llama.embedding_length".into(), Value::U32(N_EMBD as u32)),
        ("llama.block_count".into(), Value::U32(1)),
        ("llama.feed_forward_length".into(), Value::U32(N_FF as u32)),
        ("llama.attention.head_count".into(), Value::U32(2)),
        ("llama.attention.head_count_kv".into(), Value::U32(1)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-5),
        ),
        ("llama.rope.freq_base".into(), Value::F32(10000.0)),
        ("tokenizer.ggml.model".into(), s("llama")),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(Array::String(tokens)),
        ),
        (
            "tokenizer.ggml.scores".into(),
            Value::Array(Array::F32(scores)),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(Array::I32(types)),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id".into(), Value::U32(0)),
        (
            "tokenizer.chat_template".into(),
            s("{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"),
        ),
    ];
    let (e, ff, v) = (N_EMBD, N_FF, n_vocab());
    let hd = N_EMBD / 2;
    let f32t = |name: &str, dims: &[u64], data: Vec<u8>| {
        (name.to_string(), GgmlType::F32, dims.to_vec(), data)
    };
    let tensors = vec![
        f32t("token_embd.weight", &[e, v], weights(e * v, 1)),
        f32t("output_norm.weight", &[e], ones(e)),
        f32t("blk.0.attn_norm.weight", &[e], ones(e)),
        f32t("blk.0.attn_q.weight", &[e, 2 * hd], weights(e * 2 * hd, 2)),
        f32t("blk.0.attn_k.weight", &[e, hd], weights(e * hd, 3)),
        f32t("blk.0.attn_v.weight", &[e, hd], weights(e * hd, 4)),
        f32t(
            "blk.0.attn_output.weight",
            &[2 * hd, e],
            weights(2 * hd * e, 5),
        ),
        f32t("blk.0.ffn_norm.weight", &[e], ones(e)),
        f32t("blk.0.ffn_gate.weight", &[e, ff], weights(e * ff, 6)),
        f32t("blk.0.ffn_up.weight", &[e, ff], weights(e * ff, 7)),
        f32t("blk.0.ffn_down.weight", &[ff, e], weights(ff * e, 8)),
    ];
    Parts { metadata, tensors }
}

/// [`synthetic_llama`] as a gemma3-architecture model: its metadata under `gemma3.*`, the query,
/// key, post-attention and post-feed-forward norms gemma3 adds, and a 4-token sliding window (so
/// its one layer is a sliding-window layer, using `rope.freq_base_swa`).
pub fn synthetic_gemma3() -> Parts {
    let mut p = synthetic_llama();
    for (k, v) in p.metadata.iter_mut() {
        if let Some(rest) = k.strip_prefix("llama.") {
            *k = format!("gemma3.{rest}");
        } else if k == "general.architecture" {
            *v = Value::String("gemma3".into());
        } else if k == "general.name" {
            *v = Value::String("woolly synthetic gemma3".into());
        }
    }
    p.set("gemma3.attention.sliding_window", Value::U32(4))
        .set("gemma3.rope.freq_base", Value::F32(1_000_000.0))
        .set("gemma3.rope.freq_base_swa", Value::F32(10_000.0));
    let hd = N_EMBD / 2;
    for (name, n) in [
        ("blk.0.attn_q_norm.weight", hd),
        ("blk.0.attn_k_norm.weight", hd),
        ("blk.0.post_attention_norm.weight", N_EMBD),
        ("blk.0.post_ffw_norm.weight", N_EMBD),
    ] {
        p.tensors
            .push((name.to_string(), GgmlType::F32, vec![n], ones(n)));
    }
    p
}

/// `p` (one layer) with `n` layers: layer 0's tensors repeated with fresh random weights for the
/// matrices (norms stay ones), and `<arch>.block_count` set; for checks of passes split across
/// layers (the CPU's first layers and a GPU's last ones).
pub fn with_layers(mut p: Parts, n: u32) -> Parts {
    let arch = p
        .metadata
        .iter()
        .find(|(k, _)| k == "general.architecture")
        .and_then(|(_, v)| match v {
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .expect("the synthetic models name their architecture");
    let first: Vec<_> = p
        .tensors
        .iter()
        .filter(|t| t.0.starts_with("blk.0."))
        .cloned()
        .collect();
    for layer in 1..n {
        for (k, (name, ty, dims, data)) in first.iter().enumerate() {
            let data = if name.contains("norm") {
                data.clone()
            } else {
                weights(data.len() as u64 / 4, 1000 * layer as u64 + k as u64)
            };
            let name = name.replacen("blk.0.", &format!("blk.{layer}."), 1);
            p.tensors.push((name, *ty, dims.clone(), data));
        }
    }
    p.set(&format!("{arch}.block_count"), Value::U32(n));
    p
}

/// One hostile file.
#[derive(Debug, Clone)]
pub struct Case {
    /// File name, `<name>.gguf`.
    pub name: &'static str,
    /// What is wrong with it.
    pub what: &'static str,
    /// Where the file must be refused: `load` (loading fails), `chat` (it loads, a chat fails) or
    /// `generate` (nothing is wrong that matters: it loads and generates).
    pub stage: &'static str,
    /// The C status name every front end answers with (`WOOLLY_ERR_INVALID_MODEL`, ...;
    /// `WOOLLY_OK` for stage `generate`).
    pub status: &'static str,
    /// A fragment of the error message (case-sensitive).
    pub message: &'static str,
    pub bytes: Vec<u8>,
}

fn edit(f: impl FnOnce(&mut Parts)) -> Vec<u8> {
    let mut p = synthetic_llama();
    f(&mut p);
    p.to_bytes()
}

/// Offset of the first tensor-info record (after the header and all metadata) in `bytes` written
/// by [`Parts::to_bytes`]: found by re-parsing the lengths.
fn tensor_infos_offset(bytes: &[u8]) -> usize {
    let n_kv = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
    let mut off = 24usize;
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    fn skip_value(bytes: &[u8], ty: u32, off: usize) -> usize {
        let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap()) as usize;
        match ty {
            0 | 1 | 7 => off + 1,
            2 | 3 => off + 2,
            4..=6 => off + 4,
            10..=12 => off + 8,
            8 => off + 8 + u64_at(off),
            9 => {
                let ety = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
                let n = u64_at(off + 4);
                let mut o = off + 12;
                for _ in 0..n {
                    o = skip_value(bytes, ety, o);
                }
                o
            }
            _ => panic!("unknown value type {ty}"),
        }
    }
    for _ in 0..n_kv {
        off += 8 + u64_at(off);
        let ty = u32_at(off);
        off = skip_value(bytes, ty, off + 4);
    }
    off
}

/// Offset of the tensor-info record of the `index`-th tensor, with its name length, the number
/// of dimensions and where its dims begin.
fn tensor_info(bytes: &[u8], index: usize) -> (usize, usize) {
    let mut off = tensor_infos_offset(bytes);
    for _ in 0..index {
        let name_len = u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap()) as usize;
        let n_dims = u32::from_le_bytes(
            bytes[off + 8 + name_len..off + 12 + name_len]
                .try_into()
                .unwrap(),
        );
        off += 8 + name_len + 4 + 8 * n_dims as usize + 4 + 8;
    }
    let name_len = u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap()) as usize;
    (off, off + 8 + name_len)
}

fn patch_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn patch_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Every hostile file, in a fixed order.
pub fn hostile() -> Vec<Case> {
    const INVALID: &str = "WOOLLY_ERR_INVALID_MODEL";
    const UNSUPPORTED: &str = "WOOLLY_ERR_UNSUPPORTED";
    const TOKENIZER: &str = "WOOLLY_ERR_TOKENIZER";
    const OK: &str = "generate:WOOLLY_OK";
    const CHAT_INVALID: &str = "chat:WOOLLY_ERR_INVALID_MODEL";
    let valid = synthetic_llama().to_bytes();
    let mut cases = Vec::new();
    let mut case = |name, what, status: &'static str, message, bytes| {
        let (stage, status) = match status.split_once(':') {
            Some((stage, status)) => (stage, status),
            None => ("load", status),
        };
        cases.push(Case {
            name,
            what,
            stage,
            status,
            message,
            bytes,
        })
    };

    case(
        "empty",
        "a file of zero bytes",
        INVALID,
        "truncated",
        Vec::new(),
    );
    let mut b = valid.clone();
    b[..4].copy_from_slice(b"GGML");
    case("bad-magic", "the magic is not GGUF", INVALID, "magic", b);
    let mut b = valid.clone();
    patch_u32(&mut b, 4, 1);
    case("version-1", "GGUF version 1", INVALID, "version 1", b);
    let mut b = valid.clone();
    patch_u32(&mut b, 4, 0xFFFF_FFFF);
    case(
        "version-absurd",
        "GGUF version 2^32-1",
        INVALID,
        "version",
        b,
    );
    case(
        "truncated-header",
        "cut inside the metadata",
        INVALID,
        "truncated",
        valid[..valid.len() / 3].to_vec(),
    );
    let cut = tensor_info(&valid, 5).0 + 3;
    case(
        "truncated-tensor-infos",
        "cut inside the tensor-info table",
        INVALID,
        "truncated",
        valid[..cut].to_vec(),
    );
    case(
        "truncated-data",
        "the last tensor's data is cut short",
        INVALID,
        "outside the file",
        valid[..valid.len() - 100].to_vec(),
    );
    let mut b = valid.clone();
    patch_u64(&mut b, 8, u64::MAX);
    case(
        "tensor-count-absurd",
        "2^64-1 tensors",
        INVALID,
        "tensor",
        b,
    );
    let mut b = valid.clone();
    patch_u64(&mut b, 16, 1 << 60);
    case(
        "metadata-count-absurd",
        "2^60 metadata entries",
        INVALID,
        "metadata",
        b,
    );
    let mut b = valid.clone();
    patch_u64(&mut b, 24, 1 << 62);
    case(
        "key-length-absurd",
        "a key 2^62 bytes long",
        INVALID,
        "truncated",
        b,
    );
    // The tokens array: element count patched to 2^61 strings.
    let mut b = valid.clone();
    let key = b"tokenizer.ggml.tokens";
    let at = b.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    patch_u64(&mut b, at + 4 + 4, 1 << 61);
    case(
        "array-length-absurd",
        "a metadata array of 2^61 strings",
        INVALID,
        "truncated",
        b,
    );
    let mut b = valid.clone();
    patch_u32(&mut b, at, 99);
    case(
        "value-type-unknown",
        "a metadata value of type 99",
        INVALID,
        "type",
        b,
    );
    // The first tensor (token_embd.weight, two dimensions): its n_dims, dims, type and offset.
    let (_, name_end) = tensor_info(&valid, 0);
    let mut b = valid.clone();
    patch_u32(&mut b, name_end, 9);
    case(
        "dims-too-many",
        "a tensor with 9 dimensions",
        INVALID,
        "dimensions",
        b,
    );
    let mut b = valid.clone();
    patch_u64(&mut b, name_end + 4, 1 << 40);
    patch_u64(&mut b, name_end + 12, 1 << 40);
    case(
        "dims-overflow",
        "a tensor of 2^40 x 2^40 elements",
        INVALID,
        "",
        b,
    );
    let mut b = valid.clone();
    patch_u32(&mut b, name_end + 4 + 16, 250);
    case(
        "tensor-type-unknown",
        "a tensor of ggml type 250",
        INVALID,
        "type",
        b,
    );
    let mut b = valid.clone();
    patch_u64(&mut b, name_end + 4 + 16 + 4, 1 << 50);
    case(
        "tensor-offset-beyond-file",
        "a tensor's data 1 PiB into the file",
        INVALID,
        "outside the file",
        b,
    );
    let mut b = valid.clone();
    patch_u64(&mut b, name_end + 4 + 16 + 4, u64::MAX - 31);
    case(
        "tensor-offset-overflow",
        "a tensor offset that overflows when added",
        INVALID,
        "",
        b,
    );
    let mut b = valid.clone();
    patch_u64(&mut b, name_end + 4 + 16 + 4, 3);
    case(
        "tensor-misaligned",
        "a tensor not on the alignment",
        INVALID,
        "align",
        b,
    );

    // Files that parse but do not describe a model that can work.
    case(
        "architecture-unknown",
        "general.architecture is `mamba`",
        UNSUPPORTED,
        "mamba",
        edit(|p| {
            p.set("general.architecture", Value::String("mamba".into()));
        }),
    );
    case(
        "architecture-not-string",
        "general.architecture is a number",
        INVALID,
        "general.architecture",
        edit(|p| {
            p.set("general.architecture", Value::U32(7));
        }),
    );
    case(
        "missing-block-count",
        "llama.block_count is missing",
        INVALID,
        "block_count",
        edit(|p| {
            p.remove("llama.block_count");
        }),
    );
    case(
        "block-count-absurd",
        "4 billion layers",
        INVALID,
        "block_count",
        edit(|p| {
            p.set("llama.block_count", Value::U32(u32::MAX));
        }),
    );
    case(
        "block-count-beyond-tensors",
        "two layers declared, one present",
        INVALID,
        "blk.1",
        edit(|p| {
            p.set("llama.block_count", Value::U32(2));
        }),
    );
    case(
        "head-count-zero",
        "zero attention heads",
        INVALID,
        "head_count",
        edit(|p| {
            p.set("llama.attention.head_count", Value::U32(0));
        }),
    );
    case(
        "head-count-ragged",
        "3 query heads over 2 key/value heads",
        INVALID,
        "head_count",
        edit(|p| {
            p.set("llama.attention.head_count", Value::U32(3))
                .set("llama.attention.head_count_kv", Value::U32(2));
        }),
    );
    case(
        "embedding-absurd",
        "embedding_length 2^60 (tensors say 16)",
        INVALID,
        "embedding_length",
        edit(|p| {
            p.set("llama.embedding_length", Value::U64(1 << 60));
        }),
    );
    case(
        "context-absurd",
        "context_length 2^62 (sessions still get a context that fits)",
        OK,
        "",
        edit(|p| {
            p.set("llama.context_length", Value::U64(1 << 62));
        }),
    );
    case(
        "rms-eps-nan",
        "a NaN normalisation epsilon",
        INVALID,
        "epsilon",
        edit(|p| {
            p.set(
                "llama.attention.layer_norm_rms_epsilon",
                Value::F32(f32::NAN),
            );
        }),
    );
    case(
        "rope-base-negative",
        "a negative RoPE base",
        INVALID,
        "freq_base",
        edit(|p| {
            p.set("llama.rope.freq_base", Value::F32(-1.0));
        }),
    );
    case(
        "gemma3-valid",
        "nothing: the gemma3 model the rope-base-swa cases edit",
        OK,
        "",
        synthetic_gemma3().to_bytes(),
    );
    case(
        "rope-base-swa-zero",
        "a gemma3 sliding-window RoPE base of 0",
        INVALID,
        "freq_base_swa",
        {
            let mut p = synthetic_gemma3();
            p.set("gemma3.rope.freq_base_swa", Value::F32(0.0));
            p.to_bytes()
        },
    );
    case(
        "rope-base-swa-nan",
        "a NaN gemma3 sliding-window RoPE base",
        INVALID,
        "freq_base_swa",
        {
            let mut p = synthetic_gemma3();
            p.set("gemma3.rope.freq_base_swa", Value::F32(f32::NAN));
            p.to_bytes()
        },
    );
    case(
        "rope-base-infinite",
        "an infinite RoPE base",
        INVALID,
        "freq_base",
        edit(|p| {
            p.set("llama.rope.freq_base", Value::F32(f32::INFINITY));
        }),
    );
    case(
        "rms-eps-zero",
        "a zero normalisation epsilon",
        INVALID,
        "epsilon",
        edit(|p| {
            p.set("llama.attention.layer_norm_rms_epsilon", Value::F32(0.0));
        }),
    );
    case(
        "rope-scaling-factor-zero",
        "linear RoPE scaling by a factor of 0",
        INVALID,
        "scaling.factor",
        edit(|p| {
            p.set("llama.rope.scaling.type", Value::String("linear".into()))
                .set("llama.rope.scaling.factor", Value::F32(0.0));
        }),
    );
    case(
        "rope-scaling-factor-nan",
        "linear RoPE scaling by a NaN factor",
        INVALID,
        "scaling.factor",
        edit(|p| {
            p.set("llama.rope.scaling.type", Value::String("linear".into()))
                .set("llama.rope.scaling.factor", Value::F32(f32::NAN));
        }),
    );
    case(
        "rope-freqs-zero",
        "a zero llama 3.1 RoPE frequency divisor",
        INVALID,
        "rope_freqs",
        edit(|p| {
            let mut data = ones(N_EMBD / 4);
            data[4..8].copy_from_slice(&0f32.to_le_bytes());
            p.tensors.push((
                "rope_freqs.weight".into(),
                GgmlType::F32,
                vec![N_EMBD / 4],
                data,
            ));
        }),
    );
    case(
        "missing-tensor",
        "the feed-forward down projection is missing",
        INVALID,
        "ffn_down",
        edit(|p| {
            p.drop_tensor("blk.0.ffn_down.weight");
        }),
    );
    case(
        "tensor-wrong-shape",
        "the key projection is transposed",
        INVALID,
        "attn_k",
        edit(|p| {
            let t = p.tensor_mut("blk.0.attn_k.weight");
            t.2.reverse();
        }),
    );
    case(
        "tensor-type-uncomputable",
        "a weight stored as i32",
        UNSUPPORTED,
        "ffn_up",
        edit(|p| {
            p.tensor_mut("blk.0.ffn_up.weight").1 = GgmlType::I32;
        }),
    );
    case(
        "vocab-embedding-mismatch",
        "the embedding has more rows than the vocabulary has tokens",
        INVALID,
        "vocabulary",
        edit(|p| {
            let v = n_vocab() + 7;
            let t = p.tensor_mut("token_embd.weight");
            t.2 = vec![N_EMBD, v];
            t.3 = weights(N_EMBD * v, 1);
        }),
    );
    case(
        "tokens-missing",
        "no tokenizer.ggml.tokens",
        INVALID,
        "tokenizer.ggml.tokens",
        edit(|p| {
            p.remove("tokenizer.ggml.tokens");
        }),
    );
    case(
        "tokens-empty",
        "an empty vocabulary",
        TOKENIZER,
        "empty",
        edit(|p| {
            p.set(
                "tokenizer.ggml.tokens",
                Value::Array(Array::String(Vec::new())),
            );
        }),
    );
    case(
        "tokens-not-strings",
        "tokenizer.ggml.tokens holds numbers",
        INVALID,
        "tokenizer.ggml.tokens",
        edit(|p| {
            p.set(
                "tokenizer.ggml.tokens",
                Value::Array(Array::U32(vec![1, 2, 3])),
            );
        }),
    );
    case(
        "tokens-duplicate",
        "two tokens with the same text",
        TOKENIZER,
        "duplicate",
        edit(|p| {
            if let Some((_, Value::Array(Array::String(t)))) = p
                .metadata
                .iter_mut()
                .find(|(k, _)| k == "tokenizer.ggml.tokens")
            {
                let last = t.len() - 1;
                t[last] = t[last - 1].clone();
            }
        }),
    );
    case(
        "scores-short",
        "fewer scores than tokens",
        INVALID,
        "tokenizer.ggml.scores",
        edit(|p| {
            p.set(
                "tokenizer.ggml.scores",
                Value::Array(Array::F32(vec![0.0; 5])),
            );
        }),
    );
    case(
        "bos-out-of-range",
        "a BOS id beyond the vocabulary",
        TOKENIZER,
        "bos",
        edit(|p| {
            p.set("tokenizer.ggml.bos_token_id", Value::U32(1_000_000));
        }),
    );
    case(
        "tokenizer-model-unknown",
        "tokenizer.ggml.model is `klingon`",
        TOKENIZER,
        "klingon",
        edit(|p| {
            p.set("tokenizer.ggml.model", Value::String("klingon".into()));
        }),
    );
    case(
        "bpe-merges-garbage",
        "a gpt2 vocabulary whose merges name unknown tokens",
        INVALID,
        "merge",
        edit(|p| {
            p.set("tokenizer.ggml.model", Value::String("gpt2".into()))
                .set(
                    "tokenizer.ggml.merges",
                    Value::Array(Array::String(vec!["zz qq".into(), "nospace".into()])),
                );
        }),
    );
    case(
        "chat-template-broken",
        "a chat template that does not parse (plain generation still works)",
        CHAT_INVALID,
        "chat template",
        edit(|p| {
            p.set(
                "tokenizer.chat_template",
                Value::String("{% for m in messages %}{{ m.content ".into()),
            );
        }),
    );
    case(
        "chat-template-runaway",
        "a chat template that loops 10^12 times",
        "chat:WOOLLY_ERR_INVALID_MODEL",
        "chat template",
        edit(|p| {
            p.set(
                "tokenizer.chat_template",
                Value::String(
                    "{% for a in range(10000) %}{% for b in range(10000) %}{% for c in range(10000) %}x{% endfor %}{% endfor %}{% endfor %}".into(),
                ),
            );
        }),
    );
    case(
        "chat-template-recursion",
        "a chat template macro that calls itself forever",
        "chat:WOOLLY_ERR_INVALID_MODEL",
        "chat template",
        edit(|p| {
            p.set(
                "tokenizer.chat_template",
                Value::String("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}".into()),
            );
        }),
    );
    case(
        "chat-template-chain",
        "a chat template with a 50000-term `1 + 1 + ...` expression (deep recursion while compiling)",
        "chat:WOOLLY_ERR_INVALID_MODEL",
        "chat template",
        edit(|p| {
            p.set(
                "tokenizer.chat_template",
                Value::String(format!("{{{{ 1{} }}}}", " + 1".repeat(50_000))),
            );
        }),
    );
    case(
        "chat-template-nesting",
        "a chat template with brackets nested 5000 deep",
        "chat:WOOLLY_ERR_INVALID_MODEL",
        "chat template",
        edit(|p| {
            p.set(
                "tokenizer.chat_template",
                Value::String(format!(
                    "{{{{ {}1{} }}}}",
                    "[".repeat(5000),
                    "]".repeat(5000)
                )),
            );
        }),
    );
    case(
        "chat-template-string-bomb",
        "a chat template that repeats a string to 100 MB, then doubles it",
        "chat:WOOLLY_ERR_INVALID_MODEL",
        "chat template",
        edit(|p| {
            p.set(
                "tokenizer.chat_template",
                Value::String(
                    "{% set s = 'a' * 100000000 %}{% for i in range(40) %}{% set s = s ~ s %}{% endfor %}{{ s }}".into(),
                ),
            );
        }),
    );
    case(
        "chat-template-list-growth",
        "a chat template that grows a list quadratically (100000 appends by copy)",
        "chat:WOOLLY_ERR_INVALID_MODEL",
        "chat template",
        edit(|p| {
            p.set(
                "tokenizer.chat_template",
                Value::String(
                    "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [i] %}{% endfor %}{{ ns.l|length }}".into(),
                ),
            );
        }),
    );
    case(
        "chat-template-replace-bomb",
        "a chat template that replaces every character of a 100 KB string with the string",
        "chat:WOOLLY_ERR_INVALID_MODEL",
        "chat template",
        edit(|p| {
            p.set(
                "tokenizer.chat_template",
                Value::String("{% set s = 'a' * 100000 %}{{ s|replace('a', s) }}".into()),
            );
        }),
    );
    case(
        "chat-template-capture-bomb",
        "a chat template that writes 400 MB of its own text into a variable",
        "chat:WOOLLY_ERR_INVALID_MODEL",
        "chat template",
        edit(|p| {
            p.set(
                "tokenizer.chat_template",
                Value::String(format!(
                    "{{% set x %}}{{% for i in range(100000) %}}{}{{% endfor %}}{{% endset %}}{{{{ x|length }}}}",
                    "x".repeat(4000)
                )),
            );
        }),
    );
    case(
        "token-types-garbage",
        "token types 99 and -5 (read as normal tokens)",
        OK,
        "",
        edit(|p| {
            p.set(
                "tokenizer.ggml.token_type",
                Value::Array(Array::I32(
                    (0..n_vocab() as i32)
                        .map(|i| {
                            if i < 3 {
                                [2, 3, 3][i as usize]
                            } else if i % 2 == 0 {
                                99
                            } else {
                                -5
                            }
                        })
                        .collect(),
                )),
            );
        }),
    );
    case(
        "scores-nan",
        "NaN token scores",
        OK,
        "",
        edit(|p| {
            p.set(
                "tokenizer.ggml.scores",
                Value::Array(Array::F32(vec![f32::NAN; n_vocab() as usize])),
            );
        }),
    );
    cases
}

/// The manifest's text: a header line, then `file\tstatus\tmessage\twhat` per hostile file.
pub fn manifest(cases: &[Case]) -> String {
    let mut s = String::from("# file\tstage\tstatus\tmessage fragment\twhat is wrong\n");
    for c in cases {
        s.push_str(&format!(
            "{}.gguf\t{}\t{}\t{}\t{}\n",
            c.name, c.stage, c.status, c.message, c.what
        ));
    }
    s
}

/// Writes `synthetic-llama.gguf`, every hostile file and `manifest.tsv` into `dir`, removing
/// `.gguf` files there that are no longer part of the corpus.
pub fn write_corpus(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let cases = hostile();
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.extension().is_some_and(|e| e == "gguf") {
            std::fs::remove_file(p)?;
        }
    }
    std::fs::write(
        dir.join("synthetic-llama.gguf"),
        synthetic_llama().to_bytes(),
    )?;
    for c in &cases {
        std::fs::write(dir.join(format!("{}.gguf", c.name)), &c.bytes)?;
    }
    std::fs::write(dir.join("manifest.tsv"), manifest(&cases))
}
