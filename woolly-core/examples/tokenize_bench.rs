//! Tokenizer throughput: encodes 0.25, 0.5 and 1 MB of text with the default model's tokenizer and
//! prints MB/s for each (a flat rate means tokenization is linear in the text).
//!
//! ```text
//! cargo run --release -p woolly-core --example tokenize_bench [-- MODEL.gguf ...]
//! ```
//!
//! Without arguments it uses `$WOOLLY_MODEL` or the default model installed by `make model`, plus
//! the tiny BPE reference models when `shared/reference` sits beside the repository.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use woolly_core::gguf::GgufFile;
use woolly_core::testing::{self, XorShift};
use woolly_core::tokenizer::Tokenizer;

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "model",
    "token",
    "weights",
    "inventory",
    "warehouse",
    "orange",
    "quickly",
    "between",
    "sentence",
    "language",
    "running",
    "machine",
    "desktop",
    "application",
    "memory",
    "context",
    "generation",
    "streaming",
    "tokenizer",
    "vocabulary",
    "merge",
    "priority",
    "because",
    "although",
    "however",
    "people",
    "through",
    "government",
    "development",
    "information",
    "important",
    "different",
    "children",
    "village",
    "capital",
    "France",
    "Paris",
    "river",
    "mountain",
    "ocean",
    "haiku",
    "story",
    "naïve",
    "café",
    "résumé",
    "über",
    "straße",
    "日本語",
    "テキスト",
    "Привет",
    "мир",
    "مرحبا",
    "안녕하세요",
    "emoji🙂",
    "x86_64",
    "HTTP/1.1",
    "e-mail",
    "don't",
    "it's",
    "we're",
    "they'll",
];

/// Deterministic text that looks like prose with some code, numbers and other scripts.
fn corpus(bytes: usize, seed: u64) -> String {
    let mut rng = XorShift(seed | 1);
    let mut next = move || rng.next_u64();
    let mut s = String::with_capacity(bytes + 64);
    let mut sentence_start = true;
    while s.len() < bytes {
        let r = next();
        match r % 100 {
            0..=1 => {
                s.push_str("\n\n");
                sentence_start = true;
            }
            2 => s.push_str("\n    let x = vec![1, 2, 3]; // code\n"),
            3..=5 => {
                s.push(' ');
                s.push_str(&(next() % 100_000).to_string());
            }
            _ => {
                let w = WORDS[(next() % WORDS.len() as u64) as usize];
                if !s.is_empty() && !s.ends_with('\n') {
                    s.push(' ');
                }
                if sentence_start {
                    let mut c = w.chars();
                    if let Some(f) = c.next() {
                        s.extend(f.to_uppercase());
                        s.push_str(c.as_str());
                    }
                    sentence_start = false;
                } else {
                    s.push_str(w);
                }
                match next() % 20 {
                    0 => {
                        s.push('.');
                        sentence_start = true;
                    }
                    1 => s.push(','),
                    2 => {
                        s.push('?');
                        sentence_start = true;
                    }
                    _ => {}
                }
            }
        }
    }
    // Cut at a character boundary.
    let mut end = bytes.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

fn bench(path: &PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let t0 = Instant::now();
    let file = GgufFile::open(path)?;
    let tok = Tokenizer::from_gguf(&file)?;
    println!(
        "{} — {} tokenizer, {} tokens, built in {:.0} ms",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        tok.kind(),
        tok.vocab_size(),
        t0.elapsed().as_secs_f64() * 1e3
    );
    for &size in &[250_000usize, 500_000, 1_000_000] {
        let text = corpus(size, 0x9E37_79B9_7F4A_7C15);
        // Repeat until at least half a second has passed (and at least 3 times); keep the best.
        let mut best = Duration::MAX;
        let mut runs = 0;
        let mut n_tokens = 0;
        let start = Instant::now();
        while runs < 3 || start.elapsed() < Duration::from_millis(500) {
            let t = Instant::now();
            let ids = tok.encode(&text, true, true)?;
            best = best.min(t.elapsed());
            n_tokens = ids.len();
            runs += 1;
        }
        let mb = text.len() as f64 / 1e6;
        println!(
            "  {:>4.2} MB: {:>7.2} MB/s  ({} tokens, {:.1} ms, best of {})",
            mb,
            mb / best.as_secs_f64(),
            n_tokens,
            best.as_secs_f64() * 1e3,
            runs
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let paths = if !args.is_empty() {
        args
    } else {
        let model = woolly_core::model::resolve_model_path(None)?;
        let mut paths = vec![model];
        let tiny = testing::reference_path().join("tiny");
        for name in ["tiny-llama-bpe-q4_0.gguf", "tiny-qwen2-mixed.gguf"] {
            if tiny.join(name).is_file() {
                paths.push(tiny.join(name));
            }
        }
        paths
    };
    for p in &paths {
        bench(p)?;
    }
    Ok(())
}
