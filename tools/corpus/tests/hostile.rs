//! The hostile corpus: checked in under tests/hostile, current with the generator, and every
//! file refused by the loader with its stated status and message, while the synthetic model it is
//! derived from loads and generates.

use std::path::PathBuf;

use woolly_core::generate::{ChatMessage, SamplingParams};
use woolly_core::generate::{GenerateParams, Session, SessionParams};
use woolly_core::model::{Model, ModelParams, Preload};
use woolly_corpus::{hostile, manifest, synthetic_llama, Case};

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/hostile"))
}

fn params() -> ModelParams {
    ModelParams {
        preload: Preload::Lazy,
        ..ModelParams::default()
    }
}

#[test]
fn checked_in_corpus_is_current() {
    let dir = corpus_dir();
    let stale =
        "tests/hostile is stale: run `cargo run -p woolly-corpus -- tests/hostile` and commit it";
    let cases = hostile();
    assert_eq!(
        std::fs::read_to_string(dir.join("manifest.tsv")).expect(stale),
        manifest(&cases),
        "{stale}"
    );
    assert_eq!(
        std::fs::read(dir.join("synthetic-llama.gguf")).expect(stale),
        synthetic_llama().to_bytes(),
        "{stale}"
    );
    for c in &cases {
        let got = std::fs::read(dir.join(format!("{}.gguf", c.name))).expect(stale);
        assert!(got == c.bytes, "{}: {stale}", c.name);
    }
    let on_disk = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "gguf")
        })
        .count();
    assert_eq!(on_disk, cases.len() + 1, "{stale}");
}

#[test]
fn the_synthetic_model_loads_and_generates() {
    let path = corpus_dir().join("synthetic-llama.gguf");
    let model = Model::load(Some(&path), &params()).unwrap();
    assert_eq!(model.hparams().n_vocab, woolly_corpus::n_vocab() as usize);
    let ids = model
        .tokenize("the cat sat on the mat", true, false)
        .unwrap();
    assert_eq!(ids[0], 1, "BOS first");
    assert_eq!(
        model.detokenize(&ids).unwrap(),
        " the cat sat on the mat",
        "SentencePiece's prefix space stays, as llama_detokenize leaves it after BOS"
    );
    let mut s = Session::new(model.clone(), &SessionParams::default()).unwrap();
    let params = GenerateParams {
        max_tokens: 8,
        ignore_eos: true,
        sampling: SamplingParams::greedy(),
        ..GenerateParams::default()
    };
    let out = s.generate("the cat", &params, |_| true).unwrap();
    assert_eq!(out.generated_ids.len(), 8, "{out:?}");
    // Greedy: the same tokens again from a fresh session.
    let mut again = Session::new(model.clone(), &SessionParams::default()).unwrap();
    let out2 = again.generate("the cat", &params, |_| true).unwrap();
    assert_eq!(out.generated_ids, out2.generated_ids);
}

/// What `c` gives, against what the manifest says: `Err` describes a difference.
fn check(c: &Case) -> Result<(), String> {
    let path = corpus_dir().join(format!("{}.gguf", c.name));
    let expect = |e: woolly_core::Error| {
        let msg = e.to_string();
        if e.kind().code() == c.status && msg.contains(c.message) {
            Ok(())
        } else {
            Err(format!(
                "{} `{msg}` (expected {} containing `{}`)",
                e.kind().code(),
                c.status,
                c.message
            ))
        }
    };
    let loaded = Model::load(Some(&path), &params());
    let model = match (c.stage, loaded) {
        ("load", Ok(_)) => return Err("loaded".into()),
        ("load", Err(e)) => return expect(e),
        (_, Err(e)) => return Err(format!("did not load: {e}")),
        (_, Ok(m)) => m,
    };
    let messages = [ChatMessage::new("user", "the cat")];
    let chat = model.apply_chat_template(&messages);
    if c.stage == "chat" {
        return match chat {
            Ok(text) => Err(format!("chat rendered {} bytes", text.len())),
            Err(e) => expect(e),
        };
    }
    chat.map_err(|e| format!("chat: {e}"))?;
    let mut s = Session::new(model, &SessionParams::default()).map_err(|e| e.to_string())?;
    let params = GenerateParams {
        max_tokens: 4,
        ignore_eos: true,
        ..GenerateParams::default()
    };
    let g = s
        .generate("the cat", &params, |_| true)
        .map_err(|e| format!("generate: {e}"))?;
    if g.generated_ids.len() != 4 {
        return Err(format!("generated {:?}", g.generated_ids));
    }
    Ok(())
}

#[test]
fn every_hostile_file_is_refused_with_its_status() {
    let wrong: Vec<String> = hostile()
        .iter()
        .filter_map(|c| check(c).err().map(|e| format!("{}: {e}", c.name)))
        .collect();
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}
