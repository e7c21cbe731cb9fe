//! Tokenizer tests: exact agreement with llama.cpp's outputs (shared/reference), round trips,
//! streaming decoding, and errors on broken vocabularies.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde_json::Value as Json;
use woolly_core::gguf::writer::GgufWriter;
use woolly_core::gguf::{Array, GgufFile, Value};
use woolly_core::testing::{self, XorShift};
use woolly_core::tokenizer::{StreamDecoder, TokenId, Tokenizer, TokenizerKind};
use woolly_core::ErrorKind;

// ---------------------------------------------------------------------------------------------
// Locating the models

fn load(path: PathBuf) -> Tokenizer {
    let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Tokenizer::from_gguf(&file).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn gemma() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| load(testing::default_model()))
}

fn tiny(name: &str) -> &'static Tokenizer {
    static SPM: OnceLock<Tokenizer> = OnceLock::new();
    static BPE: OnceLock<Tokenizer> = OnceLock::new();
    static QWEN: OnceLock<Tokenizer> = OnceLock::new();
    let (cell, file) = match name {
        "llama-spm" => (&SPM, "tiny-llama-spm-q4_k_m.gguf"),
        "llama-bpe" => (&BPE, "tiny-llama-bpe-q4_0.gguf"),
        "qwen2" => (&QWEN, "tiny-qwen2-mixed.gguf"),
        _ => panic!("no tiny model {name}"),
    };
    cell.get_or_init(|| load(testing::tiny_model(file)))
}

fn ids_of(v: &Json) -> Vec<TokenId> {
    v.as_array()
        .expect("an array of ids")
        .iter()
        .map(|x| x.as_u64().expect("an id") as TokenId)
        .collect()
}

/// The texts of `tokenize.json` for the default model.
fn gemma_cases() -> Vec<(String, Vec<TokenId>)> {
    testing::reference_json("gemma3-270m/tokenize.json")
        .as_array()
        .expect("an array")
        .iter()
        .map(|e| {
            (
                e["text"].as_str().expect("text").to_string(),
                ids_of(&e["ids"]),
            )
        })
        .collect()
}

/// llama.cpp's test vectors: texts separated by `\n__ggml_vocab_test__\n`, one line of ids each
/// (tests/test-tokenizer-0.cpp).
fn vectors(vocab: &str) -> Vec<(String, Vec<TokenId>)> {
    let dir = testing::reference_dir().join("tokenizer-vectors");
    let inp =
        std::fs::read_to_string(dir.join(format!("ggml-vocab-{vocab}.gguf.inp"))).expect("inp");
    let out =
        std::fs::read_to_string(dir.join(format!("ggml-vocab-{vocab}.gguf.out"))).expect("out");
    let sep = "\n__ggml_vocab_test__\n";
    let mut texts = Vec::new();
    let mut pos = 0;
    while pos < inp.len() {
        match inp[pos..].find(sep) {
            Some(i) => {
                texts.push(inp[pos..pos + i].to_string());
                pos += i + sep.len();
            }
            None => {
                texts.push(inp[pos..].to_string());
                break;
            }
        }
    }
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        texts.len(),
        lines.len(),
        "{vocab}: .inp and .out disagree on the number of tests"
    );
    assert!(texts.len() > 40, "{vocab}: too few vectors");
    texts
        .into_iter()
        .zip(lines)
        .map(|(t, l)| {
            let ids = l
                .split_whitespace()
                .map(|x| x.parse().expect("an id"))
                .collect();
            (t, ids)
        })
        .collect()
}

fn check_vectors(vocab: &str) {
    let tok = tiny(vocab);
    let mut bad = Vec::new();
    let cases = vectors(vocab);
    for (text, want) in &cases {
        let got = tok.encode(text, false, false).expect("encode");
        if &got != want {
            bad.push(format!("  {text:?}\n    want {want:?}\n    got  {got:?}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{vocab}: {} of {} vectors differ:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Exact agreement with llama.cpp

/// Every text of `gemma3-270m/tokenize.json` (BOS added, special tokens parsed).
#[test]
fn gemma_matches_llama_cpp() {
    let tok = gemma();
    let mut bad = Vec::new();
    let cases = gemma_cases();
    assert!(cases.len() >= 20);
    for (text, want) in &cases {
        let got = tok.encode(text, true, true).expect("encode");
        if &got != want {
            bad.push(format!("  {text:?}\n    want {want:?}\n    got  {got:?}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} texts differ:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
}

/// The prompts of the default model's greedy references.
#[test]
fn gemma_greedy_prompts_match() {
    let dir = testing::reference_dir().join("gemma3-270m/greedy");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("greedy dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let j = testing::read_json(&path);
            let prompt = j["prompt"].as_str().expect("prompt");
            let got = gemma().encode(prompt, true, true).expect("encode");
            assert_eq!(got, ids_of(&j["prompt_ids"]), "{}", path.display());
            n += 1;
        }
    }
    assert!(
        n >= 5,
        "expected the greedy references in {}",
        dir.display()
    );
}

/// The prompts of the tiny models' references (`.p1.json`, `.p2.json`).
#[test]
fn tiny_prompts_match() {
    for (vocab, stem) in [
        ("llama-spm", "tiny-llama-spm-q4_k_m"),
        ("llama-bpe", "tiny-llama-bpe-q4_0"),
        ("qwen2", "tiny-qwen2-mixed"),
    ] {
        for p in ["p1", "p2"] {
            let path = testing::tiny_model(&format!("{stem}.{p}.json"));
            let j = testing::read_json(&path);
            let got = tiny(vocab)
                .encode(j["prompt"].as_str().expect("prompt"), true, true)
                .expect("encode");
            assert_eq!(got, ids_of(&j["prompt_ids"]), "{}", path.display());
        }
    }
}

/// llama.cpp's `ggml-vocab-llama-spm` vectors (no BOS, special tokens not parsed).
#[test]
fn llama_spm_vectors() {
    check_vectors("llama-spm");
}

/// llama.cpp's `ggml-vocab-llama-bpe` vectors.
#[test]
fn llama_bpe_vectors() {
    check_vectors("llama-bpe");
}

/// llama.cpp's `ggml-vocab-qwen2` vectors.
#[test]
fn qwen2_vectors() {
    check_vectors("qwen2");
}

// ---------------------------------------------------------------------------------------------
// Metadata: kinds, special tokens, end of generation

#[test]
fn kinds_and_special_tokens() {
    let g = gemma();
    assert_eq!(g.kind(), TokenizerKind::Spm);
    assert_eq!(g.vocab_size(), 262144);
    assert_eq!((g.bos(), g.eos()), (Some(2), Some(1)));
    assert!(g.add_bos() && !g.add_eos());
    assert_eq!(g.token_id("<start_of_turn>"), Some(105));
    assert_eq!(g.token_id("<end_of_turn>"), Some(106));
    assert_eq!(g.token_text(106), Some("<end_of_turn>"));
    assert_eq!(g.token_id("no such token, surely"), None);

    let spm = tiny("llama-spm");
    assert_eq!(spm.kind(), TokenizerKind::Spm);
    assert_eq!(
        (spm.bos(), spm.eos(), spm.vocab_size()),
        (Some(1), Some(2), 32000)
    );
    assert_eq!(spm.token_id("<0x0A>"), Some(13));

    let bpe = tiny("llama-bpe");
    assert_eq!(
        bpe.kind(),
        TokenizerKind::Bpe {
            pre: "llama-bpe".into()
        }
    );
    assert_eq!((bpe.bos(), bpe.eos()), (Some(128000), Some(128001)));
    assert!(bpe.add_bos());
    assert_eq!(bpe.token_id("<|eot_id|>"), Some(128009));
    assert_eq!(bpe.token_id("Ġthe"), Some(279));
    assert_eq!(bpe.token_text(279), Some("Ġthe"));

    let qwen = tiny("qwen2");
    assert_eq!(
        qwen.kind(),
        TokenizerKind::Bpe {
            pre: "qwen2".into()
        }
    );
    assert!(!qwen.add_bos(), "Qwen 2 adds no BOS");
    assert_eq!(
        qwen.encode("Hi", true, true).expect("encode"),
        qwen.encode("Hi", false, false).expect("encode")
    );
    assert_eq!(qwen.token_id("<|im_start|>"), Some(151644));
}

#[test]
fn end_of_generation_tokens() {
    let g = gemma();
    assert!(g.is_eog(1), "<eos>");
    assert!(g.is_eog(106), "<end_of_turn>");
    assert!(!g.is_eog(2) && !g.is_eog(105) && !g.is_eog(9259));
    assert_eq!(g.eot(), Some(106));

    let bpe = tiny("llama-bpe");
    for t in ["<|end_of_text|>", "<|eot_id|>"] {
        assert!(bpe.is_eog(bpe.token_id(t).expect(t)), "{t}");
    }
    assert_eq!(bpe.eot(), bpe.token_id("<|eot_id|>"));
    assert!(!bpe.is_eog(128000));

    let qwen = tiny("qwen2");
    for t in ["<|endoftext|>", "<|im_end|>"] {
        assert!(qwen.is_eog(qwen.token_id(t).expect(t)), "{t}");
    }
    assert!(!qwen.is_eog(qwen.token_id("<|im_start|>").expect("im_start")));

    let spm = tiny("llama-spm");
    assert!(spm.is_eog(2) && !spm.is_eog(1));
    assert!(!g.is_eog(u32::MAX));
}

#[test]
fn special_tokens_parse_only_when_asked() {
    let g = gemma();
    let text = "<start_of_turn>user\nHi<end_of_turn>";
    let parsed = g.encode(text, false, true).expect("encode");
    assert_eq!(parsed[0], 105);
    assert!(parsed.contains(&106));
    let plain = g.encode(text, false, false).expect("encode");
    assert!(!plain.contains(&105) && !plain.contains(&106));
    // User-defined tokens (here "\n") are matched either way.
    assert!(plain.contains(&107) && parsed.contains(&107));
    assert_eq!(g.decode(&plain, false).expect("decode"), text);

    let q = tiny("qwen2");
    let ids = q.encode("<|im_start|>user", false, true).expect("encode");
    assert_eq!(ids[0], 151644);
    assert!(!q
        .encode("<|im_start|>user", false, false)
        .expect("encode")
        .contains(&151644));
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Control tokens render only with `render_special`; user-defined and normal ones always.
#[test]
fn decode_renders_special_tokens_on_request() {
    let g = gemma();
    let ids = g
        .encode("<start_of_turn>user\nHello world<end_of_turn>", true, true)
        .expect("encode");
    assert_eq!(g.decode(&ids, false).expect("decode"), "user\nHello world");
    assert_eq!(
        g.decode(&ids, true).expect("decode"),
        "<bos><start_of_turn>user\nHello world<end_of_turn>"
    );
    assert_eq!(g.piece(105, false).expect("piece"), b"");
    assert_eq!(g.piece(105, true).expect("piece"), b"<start_of_turn>");
    assert_eq!(g.token_bytes(105), Some(&b"<start_of_turn>"[..]));
    assert_eq!(g.piece(107, false).expect("piece"), b"\n");
}

/// decode(encode(text)) gives the text back.
#[test]
fn round_trips() {
    let g = gemma();
    for (text, ids) in gemma_cases() {
        // The reference ids start with BOS; special-token text was parsed, so render it.
        assert_eq!(g.decode(&ids[1..], true).expect("decode"), text);
        let plain = g.encode(&text, false, false).expect("encode");
        assert_eq!(g.decode(&plain, false).expect("decode"), text);
    }
    for vocab in ["llama-bpe", "qwen2"] {
        let tok = tiny(vocab);
        for (text, ids) in vectors(vocab) {
            assert_eq!(tok.decode(&ids, false).expect("decode"), text, "{vocab}");
        }
    }
    // SentencePiece with add_space_prefix: the text comes back behind the prefixed space.
    let spm = tiny("llama-spm");
    for (text, ids) in vectors("llama-spm") {
        let want = if text.is_empty() {
            String::new()
        } else {
            format!(" {text}")
        };
        assert_eq!(spm.decode(&ids, false).expect("decode"), want);
    }
}

fn stream_all<T: std::borrow::Borrow<Tokenizer>>(
    dec: &mut StreamDecoder<T>,
    ids: &[TokenId],
) -> String {
    let mut s = String::new();
    for &id in ids {
        s.push_str(&dec.push(id).expect("push"));
    }
    s.push_str(&dec.finish());
    s
}

/// Decoding token by token gives the same string as decoding at once.
#[test]
fn streaming_matches_decode() {
    let mut cases: Vec<(&Tokenizer, Vec<TokenId>)> = Vec::new();
    for (_, ids) in gemma_cases() {
        cases.push((gemma(), ids));
    }
    for vocab in ["llama-spm", "llama-bpe", "qwen2"] {
        for (_, ids) in vectors(vocab) {
            cases.push((tiny(vocab), ids));
        }
    }
    for (tok, ids) in cases {
        for special in [false, true] {
            let whole = tok.decode(&ids, special).expect("decode");
            let mut dec = StreamDecoder::new(tok, special);
            assert_eq!(stream_all(&mut dec, &ids), whole);
        }
    }
}

/// A character split across byte tokens is held back, then emitted whole.
#[test]
fn streaming_holds_back_split_characters() {
    let spm = tiny("llama-spm");
    // "🦙" falls back to four byte tokens in the Llama 2 vocabulary.
    let ids = spm.encode("🦙", false, false).expect("encode");
    assert_eq!(ids, [29871, 243, 162, 169, 156]);
    let mut dec = StreamDecoder::new(spm, false);
    assert_eq!(dec.push(29871).expect("push"), " ");
    for &id in &ids[1..4] {
        assert_eq!(dec.push(id).expect("push"), "");
        assert!(dec.has_pending());
    }
    assert_eq!(dec.push(156).expect("push"), "🦙");
    assert!(!dec.has_pending());
    assert_eq!(dec.finish(), "");

    // An Arc works as well (a generation loop owns one).
    let arc: Arc<Tokenizer> = Arc::new(load(testing::tiny_model("tiny-llama-spm-q4_k_m.gguf")));
    let mut dec = StreamDecoder::new(Arc::clone(&arc), false);
    assert_eq!(stream_all(&mut dec, &ids), " 🦙");
}

/// Bytes that never form a character become U+FFFD, in decode and in streams alike.
#[test]
fn invalid_utf8_becomes_replacement_character() {
    let spm = tiny("llama-spm");
    // <0xF0> alone, then "a": the lead byte has no continuation.
    let a = spm.token_id("a").expect("a");
    let ids = [243, a];
    assert_eq!(spm.decode(&ids, false).expect("decode"), "\u{FFFD}a");
    let mut dec = StreamDecoder::new(spm, false);
    assert_eq!(dec.push(243).expect("push"), "");
    assert_eq!(dec.push(a).expect("push"), "\u{FFFD}a");
    // An incomplete character at the very end comes out of finish().
    assert_eq!(dec.push(243).expect("push"), "");
    assert_eq!(dec.finish(), "\u{FFFD}");
    assert_eq!(spm.decode(&[243, 162], false).expect("decode"), "\u{FFFD}");
}

/// An id outside the vocabulary is an error, never a panic.
#[test]
fn out_of_range_ids_are_errors() {
    let g = gemma();
    let n = g.vocab_size() as TokenId;
    for id in [n, n + 1, u32::MAX] {
        let e = g.decode(&[2, id], false).expect_err("decode");
        assert_eq!(e.kind(), ErrorKind::Tokenizer);
        assert!(e.to_string().contains("out of range"), "{e}");
        assert!(g.piece(id, true).is_err());
        assert_eq!(g.token_bytes(id), None);
        assert_eq!(g.token_text(id), None);
        let mut dec = StreamDecoder::new(g, false);
        assert!(dec.push(id).is_err());
    }
}

// ---------------------------------------------------------------------------------------------
// Speed: linear in the text, even on inputs that stress the special-token split

#[test]
fn long_and_pathological_inputs_finish() {
    let g = gemma();
    for text in [
        " ".repeat(200_000),
        "\n".repeat(100_000),
        "<".repeat(100_000),
        "<start_of_turn>".repeat(10_000),
        "a".repeat(100_000),
    ] {
        let ids = g.encode(&text, false, true).expect("encode");
        assert_eq!(g.decode(&ids, true).expect("decode"), text);
    }
    for vocab in ["llama-bpe", "qwen2"] {
        let t = tiny(vocab);
        for text in ["x".repeat(50_000), "!".repeat(50_000), " ".repeat(50_000)] {
            let ids = t.encode(&text, false, false).expect("encode");
            assert_eq!(t.decode(&ids, false).expect("decode"), text, "{vocab}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Small synthetic vocabularies and broken files

fn strings(v: &[&str]) -> Value {
    Value::Array(Array::String(v.iter().map(|s| s.to_string()).collect()))
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "woolly-tokenizer-test-{}-{name}.gguf",
        std::process::id()
    ))
}

fn build(name: &str, w: GgufWriter) -> woolly_core::Result<Tokenizer> {
    let path = temp_path(name);
    w.write(&path).expect("write gguf");
    let file = GgufFile::open(&path);
    let _ = std::fs::remove_file(&path);
    Tokenizer::from_gguf(&file?)
}

/// A SentencePiece vocabulary: `<unk> <s> </s>`, byte tokens for a few bytes, then `pieces`.
fn spm_writer(pieces: &[(&str, f32)]) -> GgufWriter {
    let mut tokens = vec!["<unk>", "<s>", "</s>", "<0x41>", "<0xC3>", "<0xA9>"];
    let mut scores = vec![0.0f32; tokens.len()];
    let mut types = vec![2i32, 3, 3, 6, 6, 6];
    for &(t, sc) in pieces {
        tokens.push(t);
        scores.push(sc);
        types.push(1);
    }
    GgufWriter::new()
        .kv("tokenizer.ggml.model", s("llama"))
        .kv("tokenizer.ggml.tokens", strings(&tokens))
        .kv("tokenizer.ggml.scores", Value::Array(Array::F32(scores)))
        .kv("tokenizer.ggml.token_type", Value::Array(Array::I32(types)))
}

#[test]
fn spm_merges_by_score_then_leftmost() {
    // ids: 6 ▁, 7 a, 8 b, 9 ab, 10 ba, 11 ▁a
    let base = [
        ("▁", -1.0),
        ("a", -1.0),
        ("b", -1.0),
        ("ab", -2.0),
        ("ba", -1.5),
        ("▁a", -5.0),
    ];
    let t = build("spm-score", spm_writer(&base)).expect("tokenizer");
    assert_eq!(t.kind(), TokenizerKind::Spm);
    // "▁aba": "ba" scores best, so a|ba, never ab|a.
    assert_eq!(t.encode("aba", false, false).expect("encode"), [11, 10]);
    // Equal scores: the leftmost pair merges first.
    let tied = [
        ("▁", -1.0),
        ("a", -1.0),
        ("b", -1.0),
        ("ab", -2.0),
        ("ba", -2.0),
        ("▁a", -9.0),
    ];
    let t = build("spm-tie", spm_writer(&tied)).expect("tokenizer");
    assert_eq!(t.encode("aba", false, false).expect("encode"), [6, 9, 7]);
    // BOS by default; byte fallback for characters outside the vocabulary.
    assert_eq!(t.encode("A", true, false).expect("encode"), [1, 6, 3]);
    assert_eq!(t.encode("é", false, false).expect("encode"), [6, 4, 5]);
    assert_eq!(t.decode(&[6, 4, 5], false).expect("decode"), " é");
    // A byte with no byte token is an error, not a panic.
    let e = t
        .encode("z", false, false)
        .expect_err("no byte token for z");
    assert_eq!(e.kind(), ErrorKind::Tokenizer);
}

/// Phi-3 (recognised by `general.name`, as llama.cpp does): special tokens drop the whitespace
/// after them, except `<s>`, `<unk>` and `<|endoftext|>`.
#[test]
fn phi3_special_tokens_strip_following_whitespace() {
    let tokens = [
        "<unk>",
        "<s>",
        "</s>",
        "▁",
        "h",
        "i",
        "▁h",
        "hi",
        "<|user|>",
        "<|endoftext|>",
        "<0x0A>",
    ];
    let types = vec![2i32, 3, 3, 1, 1, 1, 1, 1, 4, 3, 6];
    let w = |name: &str| {
        GgufWriter::new()
            .kv("general.name", s(name))
            .kv("tokenizer.ggml.model", s("llama"))
            .kv("tokenizer.ggml.tokens", strings(&tokens))
            .kv(
                "tokenizer.ggml.token_type",
                Value::Array(Array::I32(types.clone())),
            )
    };
    let phi = build("phi3", w("Phi-3 mini")).expect("tokenizer");
    let other = build("notphi", w("tiny")).expect("tokenizer");
    // After <|user|> the spaces and newline go; the text is prefixed with a space again
    // ("▁hi": equal scores, so the leftmost pair "▁h" merges first).
    let enc = |t: &Tokenizer, text: &str| t.encode(text, false, true).expect("encode");
    assert_eq!(enc(&phi, "<|user|> \n hi"), [8, 6, 5]);
    assert_eq!(enc(&other, "<|user|> hi"), [8, 3, 6, 5]);
    // <|endoftext|> keeps what follows.
    assert_eq!(enc(&phi, "<|endoftext|> hi"), [9, 3, 6, 5]);
}

fn bpe_writer(tokens: &[&str], merges: &[&str], pre: &str) -> GgufWriter {
    GgufWriter::new()
        .kv("tokenizer.ggml.model", s("gpt2"))
        .kv("tokenizer.ggml.pre", s(pre))
        .kv("tokenizer.ggml.tokens", strings(tokens))
        .kv("tokenizer.ggml.merges", strings(merges))
}

#[test]
fn bpe_merges_by_rank() {
    let tokens = ["a", "b", "c", "Ġ", "ab", "bc", "Ġa", "Ġab", "<|end|>"];
    let t = build(
        "bpe",
        bpe_writer(&tokens, &["b c", "a b", "Ġ a", "Ġa b"], "gpt-2"),
    )
    .expect("tokenizer");
    assert_eq!(
        t.kind(),
        TokenizerKind::Bpe {
            pre: "gpt-2".into()
        }
    );
    // "bc" ranks before "ab".
    assert_eq!(t.encode("abc", false, false).expect("encode"), [0, 5]);
    assert_eq!(t.encode(" abc", false, false).expect("encode"), [6, 5]);
    assert_eq!(t.decode(&[6, 5], false).expect("decode"), " abc");
    // No pre-tokenizer named: llama.cpp's "default".
    let t = build("bpe-default", bpe_writer(&tokens, &["a b"], "")).expect("tokenizer");
    assert_eq!(
        t.kind(),
        TokenizerKind::Bpe {
            pre: "default".into()
        }
    );
    // "<|end|>" is found by its text: end of generation, a control token.
    assert!(t.is_eog(8));
    assert_eq!(t.decode(&[8], false).expect("decode"), "");
}

fn err_kind(name: &str, w: GgufWriter) -> (ErrorKind, String) {
    let e = build(name, w).expect_err("a broken vocabulary must not load");
    (e.kind(), e.to_string())
}

#[test]
fn broken_vocabularies_are_errors() {
    let ok = || {
        GgufWriter::new().kv("tokenizer.ggml.model", s("llama")).kv(
            "tokenizer.ggml.tokens",
            strings(&["<unk>", "<s>", "</s>", "▁", "a"]),
        )
    };
    assert!(build("ok", ok()).is_ok());

    // No tokenizer at all.
    let (k, m) = err_kind(
        "no-model",
        GgufWriter::new().kv("general.architecture", s("llama")),
    );
    assert_eq!(k, ErrorKind::InvalidModel);
    assert!(m.contains("tokenizer.ggml.model"), "{m}");

    // An unknown tokenizer model.
    let (k, m) = err_kind(
        "unknown",
        GgufWriter::new()
            .kv("tokenizer.ggml.model", s("wordpiece-9000"))
            .kv("tokenizer.ggml.tokens", strings(&["a"])),
    );
    assert_eq!(k, ErrorKind::Tokenizer);
    assert!(m.contains("wordpiece-9000"), "{m}");

    // Known to llama.cpp, not implemented here.
    let (k, _) = err_kind(
        "bert",
        GgufWriter::new().kv("tokenizer.ggml.model", s("bert")),
    );
    assert_eq!(k, ErrorKind::Unsupported);

    // No tokens.
    let (k, m) = err_kind(
        "no-tokens",
        GgufWriter::new().kv("tokenizer.ggml.model", s("llama")),
    );
    assert_eq!(k, ErrorKind::InvalidModel);
    assert!(m.contains("tokenizer.ggml.tokens"), "{m}");

    // Tokens of the wrong type.
    let (k, _) = err_kind(
        "tokens-type",
        GgufWriter::new().kv("tokenizer.ggml.model", s("llama")).kv(
            "tokenizer.ggml.tokens",
            Value::Array(Array::I32(vec![1, 2])),
        ),
    );
    assert_eq!(k, ErrorKind::InvalidModel);

    // Token types / scores shorter than the tokens.
    let (k, m) = err_kind(
        "short-types",
        ok().kv(
            "tokenizer.ggml.token_type",
            Value::Array(Array::I32(vec![1, 1])),
        ),
    );
    assert_eq!(k, ErrorKind::InvalidModel, "{m}");
    assert!(m.contains("token_type"), "{m}");
    let (k, m) = err_kind(
        "short-scores",
        ok().kv("tokenizer.ggml.scores", Value::Array(Array::F32(vec![0.0]))),
    );
    assert_eq!(k, ErrorKind::InvalidModel, "{m}");
    assert!(m.contains("scores"), "{m}");

    // Special token ids beyond the vocabulary.
    for key in [
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.eot_token_id",
    ] {
        let (k, m) = err_kind("bad-id", ok().kv(key, Value::U32(1_000_000)));
        assert_eq!(k, ErrorKind::Tokenizer, "{key}");
        assert!(m.contains(key) && m.contains("1000000"), "{m}");
    }
    let (k, _) = err_kind(
        "neg-id",
        ok().kv("tokenizer.ggml.bos_token_id", Value::I32(-1)),
    );
    assert_eq!(k, ErrorKind::InvalidModel);

    // Duplicate tokens.
    let (k, m) = err_kind("dup", spm_writer(&[("a", 0.0), ("a", 0.0)]));
    assert_eq!(k, ErrorKind::Tokenizer);
    assert!(m.contains("duplicate"), "{m}");

    // BPE: merges missing, or an entry that is not two tokens.
    let toks = ["a", "b", "ab"];
    let (k, m) = err_kind(
        "no-merges",
        GgufWriter::new()
            .kv("tokenizer.ggml.model", s("gpt2"))
            .kv("tokenizer.ggml.tokens", strings(&toks)),
    );
    assert_eq!(k, ErrorKind::InvalidModel);
    assert!(m.contains("merges"), "{m}");
    let (k, m) = err_kind("bad-merge", bpe_writer(&toks, &["a b", "ab"], "gpt-2"));
    assert_eq!(k, ErrorKind::InvalidModel);
    assert!(m.contains("merges") && m.contains("entry 1"), "{m}");
    let (k, _) = err_kind("bad-merge2", bpe_writer(&toks, &[" "], "gpt-2"));
    assert_eq!(k, ErrorKind::InvalidModel);

    // An unknown pre-tokenizer.
    let (k, m) = err_kind("bad-pre", bpe_writer(&toks, &["a b"], "no-such-pre"));
    assert_eq!(k, ErrorKind::Unsupported);
    assert!(m.contains("no-such-pre"), "{m}");

    // BOS requested but absent (BPE has no default BOS within a 3-token vocabulary).
    let (k, _) = err_kind(
        "add-bos",
        bpe_writer(&toks, &["a b"], "gpt-2").kv("tokenizer.ggml.add_bos_token", Value::Bool(true)),
    );
    assert_eq!(k, ErrorKind::Tokenizer);

    // An empty vocabulary.
    let (k, _) = err_kind(
        "empty",
        GgufWriter::new()
            .kv("tokenizer.ggml.model", s("llama"))
            .kv("tokenizer.ggml.tokens", strings(&[])),
    );
    assert_eq!(k, ErrorKind::Tokenizer);
}

#[test]
fn tokenizer_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
    assert_send_sync::<StreamDecoder<Arc<Tokenizer>>>();
    // And usable from several threads at once.
    let g = gemma();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let ids = g.encode("Hello world", true, true).expect("encode");
                assert_eq!(ids, [2, 9259, 1902]);
            });
        }
    });
}

/// Random vocabularies, merges, ids and texts: loading and tokenizing give results or errors,
/// never a panic.
#[test]
fn random_vocabularies_never_panic() {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1Du64);
    let mut rnd = move |n: u64| rng.below(n);
    let alphabet = [
        "a",
        "b",
        "ab",
        " ",
        "▁",
        "Ġ",
        "<",
        ">",
        "<0x",
        "<0x41>",
        "<0xZZ>",
        "<0x4",
        "\n",
        "é",
        "日",
        "🦙",
        "'s",
        "1",
        "<s>",
        "</s>",
        "<|im_end|>",
        "<end_of_turn>",
        "<unk>",
        "[EMPTY_3]",
        "",
    ];
    let mut loaded = 0;
    for round in 0..400u64 {
        let n_tokens = 1 + rnd(40) as usize;
        let tokens: Vec<String> = (0..n_tokens)
            .map(|_| {
                (0..1 + rnd(3))
                    .map(|_| alphabet[rnd(alphabet.len() as u64) as usize])
                    .collect()
            })
            .collect();
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let bpe = rnd(2) == 0;
        let mut w = GgufWriter::new()
            .kv("general.name", s(if rnd(4) == 0 { "phi3" } else { "x" }))
            .kv(
                "tokenizer.ggml.model",
                s(if bpe { "gpt2" } else { "llama" }),
            )
            .kv("tokenizer.ggml.tokens", strings(&refs));
        if rnd(3) > 0 {
            let types: Vec<i32> = (0..n_tokens).map(|_| rnd(9) as i32 - 1).collect();
            w = w.kv("tokenizer.ggml.token_type", Value::Array(Array::I32(types)));
        }
        if rnd(3) > 0 {
            let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0];
            let scores: Vec<f32> = (0..n_tokens)
                .map(|_| {
                    if rnd(5) == 0 {
                        specials[rnd(5) as usize]
                    } else {
                        -(rnd(100) as f32) / 7.0
                    }
                })
                .collect();
            w = w.kv("tokenizer.ggml.scores", Value::Array(Array::F32(scores)));
        }
        if bpe {
            let pres = [
                "default",
                "llama-bpe",
                "qwen2",
                "gpt-2",
                "starcoder",
                "falcon",
                "glm4",
                "",
            ];
            w = w.kv(
                "tokenizer.ggml.pre",
                s(pres[rnd(pres.len() as u64) as usize]),
            );
            let merges: Vec<String> = (0..rnd(30))
                .map(|_| {
                    let a = &tokens[rnd(n_tokens as u64) as usize];
                    let b = &tokens[rnd(n_tokens as u64) as usize];
                    if rnd(20) == 0 {
                        a.clone()
                    } else {
                        format!("{a} {b}")
                    }
                })
                .collect();
            let mrefs: Vec<&str> = merges.iter().map(String::as_str).collect();
            w = w.kv("tokenizer.ggml.merges", strings(&mrefs));
        }
        for key in ["bos", "eos", "eot", "eom", "fim_pad"] {
            if rnd(4) == 0 {
                let id = rnd(n_tokens as u64 + 3) as u32;
                w = w.kv(&format!("tokenizer.ggml.{key}_token_id"), Value::U32(id));
            }
        }
        for key in ["add_bos_token", "add_eos_token", "add_space_prefix"] {
            if rnd(3) == 0 {
                w = w.kv(&format!("tokenizer.ggml.{key}"), Value::Bool(rnd(2) == 0));
            }
        }
        let Ok(tok) = build(&format!("fuzz-{round}"), w) else {
            continue;
        };
        loaded += 1;
        for _ in 0..20 {
            let text: String = (0..rnd(12))
                .map(|_| alphabet[rnd(alphabet.len() as u64) as usize])
                .collect();
            for (add, parse) in [(false, false), (true, true), (true, false)] {
                if let Ok(ids) = tok.encode(&text, add, parse) {
                    assert!(ids.iter().all(|&id| (id as usize) < tok.vocab_size()));
                    let _ = tok.decode(&ids, parse);
                }
            }
            let ids: Vec<TokenId> = (0..rnd(6))
                .map(|_| rnd(n_tokens as u64 + 2) as TokenId)
                .collect();
            let _ = tok.decode(&ids, true);
            let mut dec = StreamDecoder::new(&tok, false);
            for &id in &ids {
                let _ = dec.push(id);
            }
            let _ = dec.finish();
        }
    }
    assert!(loaded >= 20, "only {loaded} random vocabularies loaded");
}
