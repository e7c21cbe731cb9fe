//! The real model files: the default model and the tiny reference models open and describe
//! themselves correctly.

use woolly_core::gguf::{GgmlType, GgufFile};
use woolly_core::model::{Architecture, HParams, ModelSummary};
use woolly_core::testing;

#[test]
fn default_model_hparams() {
    let f = GgufFile::open(testing::default_model()).unwrap();
    assert_eq!(f.version(), 3);
    let h = HParams::from_gguf(&f).unwrap();
    assert_eq!(h.architecture, Architecture::Gemma3);
    assert_eq!((h.n_layer, h.n_embd, h.n_ff), (18, 640, 2048));
    assert_eq!(
        (h.n_head, h.n_head_kv, h.head_dim_k, h.head_dim_v),
        (4, 1, 256, 256)
    );
    assert_eq!(h.rope_dims, 256);
    assert_eq!(h.rope_freq_base, 1e6);
    assert_eq!(h.rope_freq_base_swa, 10000.0);
    assert_eq!(h.sliding_window, 512);
    assert_eq!(h.n_vocab, 262144);
    let global: Vec<usize> = (0..h.n_layer).filter(|&il| !h.is_sliding(il)).collect();
    assert_eq!(global, vec![5, 11, 17]);
}

#[test]
fn default_model_tensors_stay_quantized_in_the_mapping() {
    let f = GgufFile::open(testing::default_model()).unwrap();
    let s = ModelSummary::from_gguf(&f).unwrap();
    let count = |t: &str| s.tensor_types.get(t).map(|c| c.tensors).unwrap_or(0);
    assert_eq!(count("Q8_0"), 10);
    assert_eq!(count("Q5_0"), 81);
    assert_eq!(count("Q4_K"), 27);
    assert_eq!(count("Q6_K"), 9);
    assert_eq!(count("F32"), 109);
    assert_eq!(s.vocab_size, 262144);
    assert_eq!(s.vocab_kind.as_deref(), Some("llama"));
    assert!(
        !s.has_chat_template,
        "this file has no tokenizer.chat_template key"
    );
    let emb = f.require_tensor("token_embd.weight").unwrap();
    assert_eq!(emb.ggml_type, GgmlType::Q8_0);
    assert_eq!(emb.dims, vec![640, 262144]);
    // 262144 rows of 640 Q8_0 elements: 20 blocks of 34 bytes per row, read straight from the map.
    assert_eq!(f.tensor_data(emb).len(), 262144 * 20 * 34);
    assert_eq!(
        f.tensor_data(emb).as_ptr(),
        f.bytes()[emb.offset as usize..].as_ptr()
    );
    // Every tensor lies inside the file and is aligned.
    for t in f.tensors() {
        assert!(t.offset + t.size <= f.file_size());
        assert_eq!((t.offset - f.data_offset()) % f.alignment(), 0);
    }
}

#[test]
fn tiny_models_open() {
    for (name, arch, types) in [
        (
            "tiny-llama-spm-q4_k_m.gguf",
            Architecture::Llama,
            &["Q4_K", "Q6_K"][..],
        ),
        (
            "tiny-llama-bpe-q4_0.gguf",
            Architecture::Llama,
            &["Q4_0", "Q4_1", "Q8_0"][..],
        ),
        (
            "tiny-qwen2-mixed.gguf",
            Architecture::Qwen2,
            &["F16", "BF16", "Q5_0", "Q5_1", "Q8_0"][..],
        ),
    ] {
        let f = GgufFile::open(testing::tiny_model(name)).unwrap();
        let s = ModelSummary::from_gguf(&f).unwrap();
        assert_eq!(s.hparams.architecture, arch, "{name}");
        for t in types {
            assert!(s.tensor_types.contains_key(*t), "{name} lacks {t}");
        }
        assert_eq!(s.hparams.n_layer, 2);
        assert!(s.hparams.n_head_kv < s.hparams.n_head, "{name} uses GQA");
    }
}

#[test]
fn unknown_architecture_lists_the_supported_ones() {
    use woolly_core::gguf::{writer::GgufWriter, Value};
    let dir = std::env::temp_dir().join(format!("woolly-arch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("mamba.gguf");
    GgufWriter::new()
        .kv("general.architecture", Value::String("mamba".into()))
        .write(&p)
        .unwrap();
    let f = GgufFile::open(&p).unwrap();
    let e = HParams::from_gguf(&f).unwrap_err();
    assert_eq!(e.kind(), woolly_core::ErrorKind::Unsupported);
    let msg = e.to_string();
    assert!(
        msg.contains("mamba") && msg.contains("gemma3") && msg.contains("qwen2"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
