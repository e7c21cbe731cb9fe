use super::writer::GgufWriter;
use super::*;

fn sample() -> GgufWriter {
    GgufWriter::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("llama.block_count", Value::U32(2))
        .kv("llama.rope.freq_base", Value::F32(10000.0))
        .kv("some.i64", Value::I64(-5))
        .kv("some.flag", Value::Bool(true))
        .kv(
            "tokenizer.ggml.tokens",
            Value::Array(Array::String(vec!["<s>".into(), "a".into(), "é".into()])),
        )
        .kv(
            "tokenizer.ggml.scores",
            Value::Array(Array::F32(vec![0.0, -1.0, -2.5])),
        )
        .kv(
            "nested",
            Value::Array(Array::Array(vec![
                Array::U8(vec![1, 2]),
                Array::I16(vec![-3]),
            ])),
        )
        .tensor(
            "t.f32",
            GgmlType::F32,
            &[4, 2],
            (0..8u32).flat_map(|i| (i as f32).to_le_bytes()).collect(),
        )
        .tensor("t.q8", GgmlType::Q8_0, &[32], vec![7u8; 34])
}

fn parse(bytes: &[u8]) -> Result<Header, GgufError> {
    parse_header(bytes, bytes.len() as u64)
}

/// Offset of the first tensor info in `sample()` (right after the metadata).
fn first_tensor_info_offset(bytes: &[u8]) -> usize {
    let name = b"t.f32";
    bytes
        .windows(name.len())
        .position(|w| w == name)
        .expect("tensor name in file")
        - 8
}

#[test]
fn round_trip_all_value_types() {
    let bytes = sample().to_bytes();
    let h = parse(&bytes).expect("valid file");
    assert_eq!(h.version, 3);
    assert_eq!(h.alignment, 32);
    assert_eq!(h.data_offset % 32, 0);
    assert_eq!(h.metadata.len(), 8);
    assert_eq!(
        h.metadata
            .get("general.architecture")
            .and_then(Value::as_str),
        Some("llama")
    );
    assert_eq!(h.metadata.get("some.i64").and_then(Value::as_i64), Some(-5));
    let keys: Vec<&str> = h.metadata.iter().map(|(k, _)| k).collect();
    assert_eq!(keys[0], "general.architecture", "file order kept");
    match h.metadata.get("nested") {
        Some(Value::Array(Array::Array(v))) => {
            assert_eq!(v[0], Array::U8(vec![1, 2]));
            assert_eq!(v[1], Array::I16(vec![-3]));
        }
        other => panic!("nested array parsed as {other:?}"),
    }
    assert_eq!(h.tensors.len(), 2);
    let t = &h.tensors[0];
    assert_eq!(
        (t.n_elements(), t.row_len(), t.n_rows(), t.size),
        (8, 4, 2, 32)
    );
    let data = &bytes[t.offset as usize..(t.offset + t.size) as usize];
    assert_eq!(&data[4..8], &1f32.to_le_bytes());
    assert_eq!(h.tensors[1].size, 34);
    assert_eq!(h.tensors[1].offset % 32, 0);
}

#[test]
fn version_2_parses_and_1_does_not() {
    let h = parse(&sample().version(2).to_bytes()).expect("v2");
    assert_eq!(h.version, 2);
    match parse(&sample().version(1).to_bytes()) {
        Err(GgufError::UnsupportedVersion { version: 1, .. }) => {}
        other => panic!("{other:?}"),
    }
    match parse(&sample().version(3u32.swap_bytes()).to_bytes()) {
        Err(GgufError::UnsupportedVersion { note, .. }) => assert!(note.contains("big-endian")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn custom_alignment_is_honoured() {
    let bytes = sample().kv("general.alignment", Value::U32(64)).to_bytes();
    let h = parse(&bytes).unwrap();
    assert_eq!(h.alignment, 64);
    assert_eq!(h.data_offset % 64, 0);
    for t in &h.tensors {
        assert_eq!((t.offset - h.data_offset) % 64, 0);
    }
    let bad = sample().kv("general.alignment", Value::U32(48)).to_bytes();
    assert!(matches!(parse(&bad), Err(GgufError::InvalidAlignment(_))));
}

#[test]
fn bad_magic() {
    let mut bytes = sample().to_bytes();
    bytes[0] = b'X';
    match parse(&bytes) {
        Err(e @ GgufError::BadMagic { .. }) => assert!(e.to_string().contains("not a GGUF file")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    let bytes = sample().to_bytes();
    for len in 0..bytes.len() {
        let cut = &bytes[..len];
        assert!(
            parse(cut).is_err(),
            "a file cut to {len} of {} bytes parsed",
            bytes.len()
        );
    }
}

#[test]
fn truncated_names_what_was_being_read() {
    let bytes = sample().to_bytes();
    let cut = &bytes[..40];
    match parse(cut) {
        Err(e @ GgufError::Truncated { .. }) => assert!(e.to_string().contains("truncated")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn absurd_counts_fail_before_allocating() {
    let mut bytes = sample().to_bytes();
    // metadata count
    bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(parse(&bytes), Err(GgufError::Truncated { .. })));
    let mut bytes = sample().to_bytes();
    // tensor count
    bytes[8..16].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(matches!(parse(&bytes), Err(GgufError::Truncated { .. })));
    // an array with an absurd element count
    let bytes = GgufWriter::new()
        .kv("a", Value::Array(Array::U32(vec![1, 2, 3])))
        .to_bytes();
    let mut bytes = bytes;
    let count_at = 24 + 8 + 1 + 4 + 4;
    bytes[count_at..count_at + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert!(matches!(parse(&bytes), Err(GgufError::Truncated { .. })));
    // a string with an absurd length
    let mut bytes = GgufWriter::new()
        .kv("k", Value::String("v".into()))
        .to_bytes();
    let len_at = 24 + 8 + 1 + 4;
    bytes[len_at..len_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(parse(&bytes), Err(GgufError::Truncated { .. })));
}

#[test]
fn unknown_value_type() {
    let mut bytes = GgufWriter::new().kv("k", Value::U32(1)).to_bytes();
    let ty_at = 24 + 8 + 1;
    bytes[ty_at..ty_at + 4].copy_from_slice(&99u32.to_le_bytes());
    match parse(&bytes) {
        Err(GgufError::InvalidValueType { key, type_id: 99 }) => assert_eq!(key, "k"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_utf8_and_bad_bool() {
    let mut bytes = GgufWriter::new()
        .kv("k", Value::String("ab".into()))
        .to_bytes();
    let s_at = 24 + 8 + 1 + 4 + 8;
    bytes[s_at] = 0xff;
    assert!(matches!(parse(&bytes), Err(GgufError::InvalidUtf8 { .. })));
    let mut bytes = GgufWriter::new().kv("b", Value::Bool(true)).to_bytes();
    let at = 24 + 8 + 1 + 4;
    bytes[at] = 7;
    assert!(matches!(parse(&bytes), Err(GgufError::InvalidValue { .. })));
}

#[test]
fn deep_nesting_is_refused() {
    let mut a = Array::U8(vec![1]);
    for _ in 0..20 {
        a = Array::Array(vec![a]);
    }
    let bytes = GgufWriter::new().kv("deep", Value::Array(a)).to_bytes();
    match parse(&bytes) {
        Err(GgufError::InvalidValue { key, reason }) => {
            assert_eq!(key, "deep");
            assert!(reason.contains("nested"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn duplicates_are_refused() {
    let bytes = GgufWriter::new()
        .kv("k", Value::U32(1))
        .kv("k", Value::U32(2))
        .to_bytes();
    assert!(matches!(parse(&bytes), Err(GgufError::DuplicateKey(k)) if k == "k"));
    let bytes = GgufWriter::new()
        .tensor("t", GgmlType::F32, &[1], vec![0; 4])
        .tensor("t", GgmlType::F32, &[1], vec![0; 4])
        .to_bytes();
    assert!(matches!(parse(&bytes), Err(GgufError::DuplicateTensor(t)) if t == "t"));
}

#[test]
fn unknown_tensor_type_names_the_tensor() {
    let mut bytes = sample().to_bytes();
    let info = first_tensor_info_offset(&bytes);
    let ty_at = info + 8 + 5 + 4 + 2 * 8;
    assert_eq!(&bytes[ty_at..ty_at + 4], &0u32.to_le_bytes());
    bytes[ty_at..ty_at + 4].copy_from_slice(&4u32.to_le_bytes()); // retired Q4_2
    match parse(&bytes) {
        Err(e @ GgufError::UnknownTensorType { .. }) => {
            assert!(e.to_string().contains("t.f32"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tensor_outside_the_file() {
    let mut bytes = sample().to_bytes();
    let info = first_tensor_info_offset(&bytes);
    let off_at = info + 8 + 5 + 4 + 2 * 8 + 4;
    bytes[off_at..off_at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    match parse(&bytes) {
        Err(e @ GgufError::TensorOutOfBounds { .. }) => assert!(e.to_string().contains("t.f32")),
        other => panic!("{other:?}"),
    }
    // offset + size overflowing u64
    bytes[off_at..off_at + 8].copy_from_slice(&(u64::MAX - 31).to_le_bytes());
    assert!(matches!(
        parse(&bytes),
        Err(GgufError::TensorOutOfBounds { .. })
    ));
    // the last tensor's data cut short
    let bytes = sample().to_bytes();
    assert!(matches!(
        parse_header(&bytes, bytes.len() as u64 - 1),
        Err(GgufError::TensorOutOfBounds { .. })
    ));
}

#[test]
fn misaligned_tensor() {
    let mut bytes = sample().to_bytes();
    let info = first_tensor_info_offset(&bytes);
    let off_at = info + 8 + 5 + 4 + 2 * 8 + 4;
    bytes[off_at..off_at + 8].copy_from_slice(&3u64.to_le_bytes());
    assert!(matches!(
        parse(&bytes),
        Err(GgufError::MisalignedTensor { offset: 3, .. })
    ));
}

#[test]
fn overflowing_and_ragged_shapes() {
    let bytes = GgufWriter::new()
        .tensor("big", GgmlType::F32, &[u64::MAX / 2, 4], vec![])
        .to_bytes();
    match parse(&bytes) {
        Err(e @ GgufError::InvalidTensorShape { .. }) => assert!(e.to_string().contains("big")),
        other => panic!("{other:?}"),
    }
    let bytes = GgufWriter::new()
        .tensor("ragged", GgmlType::Q4_K, &[100], vec![0; 144])
        .to_bytes();
    match parse(&bytes) {
        Err(GgufError::InvalidTensorShape { reason, .. }) => assert!(reason.contains("blocks")),
        other => panic!("{other:?}"),
    }
    let mut bytes = GgufWriter::new()
        .tensor("t", GgmlType::F32, &[1], vec![0; 4])
        .to_bytes();
    let ndims_at = 24 + 8 + 1;
    bytes[ndims_at..ndims_at + 4].copy_from_slice(&9u32.to_le_bytes());
    assert!(matches!(
        parse(&bytes),
        Err(GgufError::TooManyDims { n_dims: 9, .. })
    ));
}

#[test]
fn random_corruption_never_panics() {
    // A deterministic generator so the test is repeatable.
    let mut rng = crate::testing::XorShift(0x9e3779b97f4a7c15);
    let base = sample().to_bytes();
    for _ in 0..5000 {
        let mut b = base.clone();
        for _ in 0..(1 + rng.next_u64() % 4) {
            let i = (rng.next_u64() as usize) % b.len();
            b[i] = rng.next_u64() as u8;
        }
        let _ = parse(&b);
    }
}

#[test]
fn open_reports_io_and_format_errors_with_the_path() {
    let dir = std::env::temp_dir().join(format!("woolly-gguf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.gguf");
    let e = GgufFile::open(&missing).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Io);
    assert!(e.to_string().contains("missing.gguf"));

    let empty = dir.join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    let e = GgufFile::open(&empty).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::InvalidModel);

    let e = GgufFile::open(&dir).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Io);

    let good = dir.join("good.gguf");
    sample().write(&good).unwrap();
    let f = GgufFile::open(&good).unwrap();
    assert_eq!(f.architecture().unwrap(), "llama");
    assert_eq!(f.get_u32("llama.block_count").unwrap(), Some(2));
    assert_eq!(f.get_f32("llama.rope.freq_base").unwrap(), Some(10000.0));
    assert_eq!(f.get_u32("absent").unwrap(), None);
    assert!(
        f.get_u32("some.i64").is_err(),
        "negative value for a u32 key"
    );
    assert!(f.get_str("llama.block_count").is_err());
    let e = f
        .require("absent.key", f.get_u32("absent.key"))
        .unwrap_err();
    assert!(e.to_string().contains("absent.key"));
    assert_eq!(
        f.get_str_array("tokenizer.ggml.tokens").unwrap().unwrap()[2],
        "é"
    );
    let t = f.require_tensor("t.q8").unwrap();
    assert_eq!(f.tensor_data(t), &[7u8; 34][..]);
    assert!(f.require_tensor("nope").is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
