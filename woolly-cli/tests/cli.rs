//! The `woolly` binary as a user runs it: real processes, the default model, exit statuses.

use std::process::{Command, Output};

use woolly_core::testing;

fn woolly(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_woolly"))
        .args(args)
        .output()
        .expect("the woolly binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn tokenize_prints_the_reference_ids() {
    let cases = testing::reference_json("gemma3-270m/tokenize.json");
    for case in cases.as_array().unwrap().iter().take(8) {
        let text = case["text"].as_str().unwrap();
        if text.is_empty() || text.starts_with('-') {
            continue;
        }
        let o = woolly(&["tokenize", text]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let got: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(ids(&got), ids(&case["ids"]), "{text:?}");
    }
}

#[test]
fn inspect_describes_the_model() {
    let o = woolly(&["inspect", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let text = v.to_string();
    assert!(text.contains("gemma3"), "{text}");
    assert!(text.contains("Q4_K") && text.contains("Q6_K"), "{text}");
    let o = woolly(&["inspect"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("gemma3"));
}

#[test]
fn run_json_matches_the_greedy_reference() {
    let r = testing::reference_json("gemma3-270m/greedy/capital.json");
    let prompt = r["prompt"].as_str().unwrap();
    let o = woolly(&["run", "--temp", "0", "-n", "8", "--json", prompt]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "--json prints one line: {out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ids(&v["prompt_ids"]), ids(&r["prompt_ids"]));
    assert_eq!(
        ids(&v["generated_ids"]),
        ids(&r["generated_ids"])[..8].to_vec()
    );
    assert!(v["text"].as_str().unwrap().len() > 2);
    for k in [
        "load_ms",
        "prompt_ms",
        "prompt_tok_s",
        "gen_tok_s",
        "ttft_ms",
    ] {
        assert!(v["timings"][k].as_f64().unwrap() > 0.0, "{k}: {v}");
    }
}

#[test]
fn run_streams_text_to_stdout() {
    let r = testing::reference_json("gemma3-270m/greedy/story.json");
    let o = woolly(&[
        "run",
        "--temp",
        "0",
        "-n",
        "48",
        r["prompt"].as_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The reference continuation up to its first near-tie (step 4).
    let want: String = r["generated_text"]
        .as_str()
        .unwrap()
        .chars()
        .take(14)
        .collect();
    assert!(
        stdout(&o).starts_with(&want),
        "{:?} vs {want:?}",
        stdout(&o)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("tok/s"));
}

#[test]
fn errors_go_to_stderr_with_a_failure_status() {
    let dir = std::env::temp_dir().join(format!("woolly-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.gguf");
    std::fs::write(&garbage, b"GGUF\x03\x00\x00\x00\xff\xff").unwrap();
    let missing = dir.join("missing.gguf");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "inspect".into(),
                "--model".into(),
                missing.display().to_string(),
            ],
            "missing.gguf",
        ),
        (
            vec![
                "tokenize".into(),
                "--model".into(),
                garbage.display().to_string(),
                "hi".into(),
            ],
            "garbage.gguf",
        ),
        (
            vec!["run".into(), "--temp=-3".into(), "hello".into()],
            "temperature",
        ),
        (
            vec![
                "run".into(),
                "-c".into(),
                "16".into(),
                "-n".into(),
                "64".into(),
                "hello".into(),
            ],
            "context",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = woolly(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("woolly: error") && err.contains(needle),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_refuses_a_model_over_the_memory_budget_with_the_figures() {
    let o = woolly(&["run", "--memory-budget", "128MB", "-n", "4", "hello"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not enough memory")
            && err.contains("only 128.0 MiB")
            && err.contains("needs"),
        "{err}"
    );
    // A budget that fits runs, and the memory line shows the choices.
    let o = woolly(&[
        "run",
        "--memory-budget",
        "1GB",
        "--preload",
        "critical",
        "--kv",
        "f32",
        "-n",
        "4",
        "--temp",
        "0",
        "hello",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("budget 1024 MiB")
            && err.contains("f32 KV")
            && err.contains("preload critical"),
        "{err}"
    );
    // Sizes and names are checked.
    for bad in [
        ["--memory-budget", "lots"],
        ["--preload", "eager"],
        ["--kv", "f8"],
    ] {
        let o = woolly(&["run", bad[0], bad[1], "hello"]);
        assert!(!o.status.success(), "{bad:?}");
    }
}

#[test]
fn gpu_check_kernels_says_why_it_skips_without_a_device() {
    let o = woolly(&["gpu-check", "kernels", "--json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    if let Some(skipped) = v["skipped"].as_str() {
        assert!(o.status.success());
        assert!(skipped.starts_with("no CUDA device ("), "{skipped}");
        println!("skipped: {skipped}");
    } else {
        // A machine with a GPU: every kernel within tolerance of its CPU twin.
        assert_eq!(v["ok"], true, "{v}");
        assert!(o.status.success());
    }
}

#[test]
fn gpu_check_unload_says_why_it_skips_without_a_device() {
    let model = testing::synthetic_model();
    let o = woolly(&["gpu-check", "unload", "--model", model.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    if let Some(skipped) = v["skipped"].as_str() {
        assert!(o.status.success());
        assert!(skipped.starts_with("no CUDA device ("), "{skipped}");
        println!("skipped: {skipped}");
    } else {
        // A machine with a GPU: the memory comes back.
        assert_eq!(v["ok"], true, "{v}");
        assert!(v["generated_tokens"].as_u64().unwrap() > 0, "{v}");
    }
}
