//! The bodies of Woolly's fuzz targets.
//!
//! `fuzz/` (cargo fuzz, `make fuzz`) calls each of these from a libFuzzer target; the tests in
//! `tests/corpus.rs` replay every input under `fuzz/corpus/<target>` and
//! `fuzz/regressions/<target>` through the same functions on stable Rust, so a crash found once
//! stays fixed. A target panics (which the fuzzer reports) only when Woolly broke a promise: a
//! panic inside Woolly, an answer that is not an error for bad input, or a property such as
//! "decoding undoes encoding" failing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use woolly_core::chat::{BuiltinTemplate, ChatMessage, ChatTemplate};
use woolly_core::gguf::GgufFile;
use woolly_core::model::{Model, ModelParams, Preload};
use woolly_core::testing;
use woolly_core::tokenizer::{StreamDecoder, Tokenizer, TokenizerKind};

/// The targets, by name (as in `fuzz/fuzz_targets/<name>.rs`).
pub const TARGETS: &[&str] = &["gguf", "tokenizer", "chat_template", "c_api"];

/// Runs target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "gguf" => gguf(data),
        "tokenizer" => tokenizer(data),
        "chat_template" => chat_template(data),
        "c_api" => c_api(data),
        other => panic!("no fuzz target {other}"),
    }
}

fn lazy() -> ModelParams {
    ModelParams {
        preload: Preload::Lazy,
        ..ModelParams::default()
    }
}

/// A private scratch file for this thread, holding `data`.
fn scratch_file(data: &[u8]) -> PathBuf {
    thread_local! {
        static PATH: PathBuf = {
            let base = if Path::new("/dev/shm").is_dir() {
                PathBuf::from("/dev/shm")
            } else {
                std::env::temp_dir()
            };
            base.join(format!(
                "woolly-fuzz-{}-{:?}.gguf",
                std::process::id(),
                std::thread::current().id()
            ))
        };
    }
    let p = PATH.with(|p| p.clone());
    std::fs::write(&p, data).expect("the scratch file is writable");
    p
}

/// The GGUF parser and the model loader on arbitrary bytes: either an error or a model that
/// then tokenizes, renders its chat template and generates a token.
pub fn gguf(data: &[u8]) {
    let path = scratch_file(data);
    if let Ok(f) = GgufFile::open(&path) {
        // Everything the header claims is inside the file.
        for t in f.tensors() {
            let _ = f.tensor_data(t).len();
        }
        let _ = f.architecture();
    }
    let _ = Model::estimate(Some(&path), &lazy());
    let Ok(model) = Model::load(Some(&path), &lazy()) else {
        return;
    };
    let _ = model.info();
    let _ = model.tokenize("the cat", true, true);
    let _ = model.apply_chat_template(&[ChatMessage::new("user", "hi")]);
    let session = woolly_core::generate::Session::new(
        model.clone(),
        &woolly_core::generate::SessionParams {
            context_size: 16,
            ..Default::default()
        },
    );
    if let Ok(mut s) = session {
        let p = woolly_core::generate::GenerateParams {
            max_tokens: 1,
            ..Default::default()
        };
        let _ = s.generate("the", &p, |_| true);
    }
}

/// The tokenizers fuzzed: the synthetic SentencePiece one, the tiny byte-level BPE reference
/// model's and the default model's (gemma 3).
fn tokenizers() -> &'static [Arc<Tokenizer>] {
    static T: OnceLock<Vec<Arc<Tokenizer>>> = OnceLock::new();
    T.get_or_init(|| {
        let mut paths = vec![
            testing::synthetic_model(),
            testing::reference_path().join("tiny/tiny-llama-bpe-q4_0.gguf"),
        ];
        if let Ok(p) = woolly_core::model::resolve_model_path(None) {
            paths.push(p);
        }
        paths
            .iter()
            .filter(|p| p.exists())
            .map(|p| {
                let f = GgufFile::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                Arc::new(Tokenizer::from_gguf(&f).unwrap())
            })
            .collect()
    })
}

/// What decoding the ids of `text` gives back, for a tokenizer that does not parse specials.
fn expected_round_trip(t: &Tokenizer, text: &str) -> String {
    match t.kind() {
        TokenizerKind::Spm => {
            let body = text.replace('\u{2581}', " ");
            if t.add_space_prefix() && !text.is_empty() {
                format!(" {body}")
            } else {
                body
            }
        }
        _ => text.to_string(),
    }
}

/// Encoding then decoding: the first byte picks a tokenizer and the flags, the rest is the text
/// (invalid UTF-8 replaced). Decoding undoes encoding; streamed decoding equals decoding at
/// once; arbitrary ids decode or fail cleanly.
pub fn tokenizer(data: &[u8]) {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let all = tokenizers();
    let t = &all[head as usize % all.len()];
    let add_special = head & 0x10 != 0;
    let parse_special = head & 0x20 != 0;
    if head & 0x40 != 0 {
        // Raw ids, four bytes each.
        let ids: Vec<u32> = rest
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let at_once = t.decode(&ids, parse_special);
        let mut stream = StreamDecoder::new(t.clone(), parse_special);
        let mut streamed = String::new();
        let mut failed = false;
        for &id in &ids {
            match stream.push(id) {
                Ok(s) => streamed.push_str(&s),
                Err(_) => failed = true,
            }
        }
        streamed.push_str(&stream.finish());
        match at_once {
            Ok(text) => assert_eq!(streamed, text, "streamed decoding differs from decoding"),
            Err(_) => assert!(failed, "decode failed but every id streamed"),
        }
        return;
    }
    let text = String::from_utf8_lossy(rest);
    let ids = match t.encode(&text, add_special, parse_special) {
        Ok(ids) => ids,
        Err(e) => panic!("encoding {text:?} failed: {e}"),
    };
    let n = t.vocab_size() as u32;
    assert!(ids.iter().all(|&id| id < n), "an id outside the vocabulary");
    let mut body: &[u32] = &ids;
    if add_special {
        if t.add_bos() && body.first() == t.bos().as_ref() {
            body = &body[1..];
        }
        if t.add_eos() && body.last() == t.eos().as_ref() {
            body = &body[..body.len() - 1];
        }
    }
    let decoded = t.decode(body, parse_special).unwrap();
    if !parse_special {
        assert_eq!(
            decoded,
            expected_round_trip(t, &text),
            "decode(encode(text)) != text for {text:?} ({:?})",
            t.kind()
        );
    }
    let mut stream = StreamDecoder::new(t.clone(), parse_special);
    let mut streamed = String::new();
    for &id in body {
        streamed.push_str(&stream.push(id).unwrap());
    }
    streamed.push_str(&stream.finish());
    assert_eq!(streamed, decoded, "streamed decoding differs");
}

/// Splits `data` at the first NUL: before it a Jinja template (the model file's), after it
/// messages separated by 0x01, each a role byte then content. Rendering returns text or an
/// error, always within the template limits; the built-in templates take the same messages.
pub fn chat_template(data: &[u8]) {
    let (src, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let src = String::from_utf8_lossy(src).into_owned();
    let roles = ["system", "user", "assistant", "tool", "model", " "];
    let messages: Vec<ChatMessage> = rest
        .split(|&b| b == 1)
        .filter_map(|m| m.split_first())
        .map(|(&r, content)| {
            ChatMessage::new(
                roles[r as usize % roles.len()],
                String::from_utf8_lossy(content),
            )
        })
        .collect();
    let generation_prompt = src.len().is_multiple_of(2);
    let _ = ChatTemplate::Jinja(src).render(&messages, generation_prompt, "<s>", "</s>");
    for b in [
        BuiltinTemplate::Gemma,
        BuiltinTemplate::Llama3,
        BuiltinTemplate::ChatMl,
    ] {
        let _ = ChatTemplate::Builtin(b).render(&messages, generation_prompt, "<s>", "</s>");
    }
}

mod c_api;
pub use c_api::c_api;
