//! Every input under fuzz/corpus/<target> and fuzz/regressions/<target> (and tests/hostile for
//! `gguf`) through its target: the
//! seeds and what the fuzzers found stay handled on stable Rust, in every `make test`.

use std::path::Path;

fn replay(target: &str) {
    let root = woolly_core::testing::repo_root().join("fuzz");
    let mut n = 0;
    let mut dirs = vec![
        root.join("corpus").join(target),
        root.join("regressions").join(target),
    ];
    if target == "gguf" {
        // The hostile corpus seeds the GGUF fuzzer too.
        dirs.push(woolly_core::testing::hostile_dir());
    }
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files
            .iter()
            .filter(|p| p.is_file() && !is_readme(p) && !p.ends_with("manifest.tsv"))
        {
            let data = std::fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| woolly_fuzz::run(target, &data));
            assert!(r.is_ok(), "{target}: {} fails again", f.display());
            n += 1;
        }
    }
    assert!(n > 0, "{target}: no corpus under fuzz/corpus/{target}");
    println!("{target}: {n} inputs");
}

fn is_readme(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n == "README.md")
}

#[test]
fn gguf() {
    replay("gguf");
}

#[test]
fn tokenizer() {
    replay("tokenizer");
}

#[test]
fn chat_template() {
    replay("chat_template");
}

#[test]
fn c_api() {
    replay("c_api");
}
