//! `woolly run` with constrained output (`--json-schema`, `--grammar`, `--regex`, `--choice`,
//! `--json-object`) and `--logprobs`: real processes on the default model.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn woolly(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_woolly"))
        .args(args)
        .output()
        .expect("the woolly binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The one JSON line `--json` prints.
fn json_line(o: &Output) -> Value {
    assert!(o.status.success(), "{}", stderr(o));
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(out.lines().count(), 1, "--json prints one line: {out}");
    serde_json::from_str(out.trim()).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("woolly-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A schema file gives one JSON value with the schema's required keys and types, greedy and
/// sampled; `--logprobs` adds each token's log probability and its alternatives.
#[test]
fn a_json_schema_file_shapes_the_output() {
    let dir = temp_dir("schema");
    let schema = dir.join("person.json");
    std::fs::write(
        &schema,
        r#"{
  "type": "object", "additionalProperties": false, "required": ["name", "age", "city"],
  "properties": {
    "name": {"type": "string", "maxLength": 30},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "city": {"type": "string", "maxLength": 30}
  }
}"#,
    )
    .unwrap();
    let schema = schema.to_str().unwrap();
    for sampling in [["--temp", "0"], ["--seed", "3"]] {
        let o = woolly(&[
            "run",
            "--chat",
            sampling[0],
            sampling[1],
            "-n",
            "200",
            "--json",
            "--logprobs",
            "3",
            "--json-schema",
            schema,
            "Describe a person who lives in Paris.",
        ]);
        let v = json_line(&o);
        assert_eq!(v["stop_reason"], "end_of_generation", "{v}");
        let text = v["text"].as_str().unwrap();
        let out: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?} is not JSON: {e}"));
        let obj = out.as_object().unwrap_or_else(|| panic!("{text:?}"));
        assert_eq!(obj.len(), 3, "{text:?}");
        assert!(
            obj["name"].is_string() && obj["city"].is_string(),
            "{text:?}"
        );
        let age = obj["age"].as_u64().unwrap_or_else(|| panic!("{text:?}"));
        assert!(age <= 120, "{text:?}");

        let ids = v["generated_ids"].as_array().unwrap();
        let lps = v["logprobs"].as_array().unwrap();
        assert_eq!(lps.len(), ids.len(), "{v}");
        for (lp, id) in lps.iter().zip(ids) {
            assert_eq!(&lp["id"], id);
            assert!(lp["logprob"].as_f64().unwrap() <= 0.0, "{lp}");
            assert!(lp["bytes"].is_array() && lp["token"].is_string(), "{lp}");
            let top = lp["top_logprobs"].as_array().unwrap();
            assert_eq!(top.len(), 3, "{lp}");
            let lps: Vec<f64> = top.iter().map(|t| t["logprob"].as_f64().unwrap()).collect();
            assert!(lps.windows(2).all(|w| w[0] >= w[1]), "{lp}");
        }
    }
    // Without --logprobs the line has none.
    let o = woolly(&[
        "run",
        "--chat",
        "--temp",
        "0",
        "-n",
        "200",
        "--json",
        "--json-object",
        "Answer in JSON with the key \"answer\": what is 2+2?",
    ]);
    let v = json_line(&o);
    assert!(v.get("logprobs").is_none(), "{v}");
    let text = v["text"].as_str().unwrap();
    assert!(
        serde_json::from_str::<Value>(text).is_ok_and(|x| x.is_object()),
        "{text:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A regular expression and a choice shape the streamed text too.
#[test]
fn regex_and_choice_shape_the_output() {
    let o = woolly(&[
        "run",
        "--chat",
        "--temp",
        "0",
        "-n",
        "32",
        "--regex",
        r"\(\d{3}\) \d{3}-\d{4}",
        "Give a US phone number.",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout.clone()).unwrap();
    let b = text.trim_end_matches('\n').as_bytes();
    assert!(
        b.len() == 14
            && b[0] == b'('
            && b[4] == b')'
            && b[5] == b' '
            && b[9] == b'-'
            && b.iter().filter(|c| c.is_ascii_digit()).count() == 10,
        "{text:?}"
    );
    // Comma-separated and repeated; text mode prints the logprobs on stderr.
    let o = woolly(&[
        "run",
        "--chat",
        "--seed",
        "5",
        "--choice",
        "positive,negative",
        "--choice",
        "neutral",
        "--logprobs",
        "2",
        "Sentiment of: I love this!",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(
        ["positive", "negative", "neutral"].contains(&text.trim_end_matches('\n')),
        "{text:?}"
    );
    assert!(stderr(&o).contains("[logprob "), "{}", stderr(&o));
}

/// A malformed grammar file, a missing file and a schema that is not JSON each fail with a
/// message naming the option and the file, and exit status 1, before generating; two
/// constraints at once are a usage error.
#[test]
fn bad_constraints_fail_clearly() {
    let dir = temp_dir("bad-constraints");
    let grammar = dir.join("unclosed.gbnf");
    std::fs::write(&grammar, "root ::= (\"a\" | \"b\"\n").unwrap();
    let undefined = dir.join("undefined.gbnf");
    std::fs::write(&undefined, "root ::= word\n").unwrap();
    let not_json = dir.join("schema.json");
    std::fs::write(&not_json, "{\"type\": ").unwrap();
    let missing = dir.join("missing.gbnf");
    let cases: Vec<(&str, &PathBuf, &[&str])> = vec![
        (
            "--grammar",
            &grammar,
            &["GBNF grammar, line 2", "expected )"],
        ),
        (
            "--grammar",
            &undefined,
            &["`word` is used but never defined"],
        ),
        ("--grammar", &missing, &["No such file"]),
        ("--json-schema", &not_json, &["not valid JSON"]),
    ];
    for (flag, file, needles) in cases {
        let path = file.to_str().unwrap();
        let o = woolly(&["run", "-n", "4", flag, path, "hello"]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{flag} {path}: {err}");
        assert!(
            err.starts_with("woolly: error: ") && err.contains(&format!("{flag} {path}")),
            "{err}"
        );
        for n in needles {
            assert!(err.contains(n), "{n:?} in {err}");
        }
        assert!(!err.contains("panicked") && !err.contains("tok/s"), "{err}");
        assert!(o.stdout.is_empty());
    }
    // An unsupported schema keyword and a bad regular expression: the core's errors, named.
    let unique = dir.join("unique.json");
    std::fs::write(&unique, r#"{"type": "array", "uniqueItems": true}"#).unwrap();
    for args in [
        vec!["--json-schema", unique.to_str().unwrap()],
        vec!["--regex", "(unclosed"],
        vec!["--choice", ""],
    ] {
        let mut all = vec!["run", "-n", "4"];
        all.extend(&args);
        all.push("hello");
        let o = woolly(&all);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(args[0]) && err.contains("invalid argument"),
            "{args:?}: {err}"
        );
    }
    for args in [
        ["--regex", "a", "--json-object"],
        ["--grammar", "x.gbnf", "--choice=a"],
        ["--logprobs", "21", "--json"],
    ] {
        let mut all = vec!["run"];
        all.extend(args);
        all.push("hello");
        let o = woolly(&all);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
