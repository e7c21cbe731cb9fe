//! `woolly run --overflow`: a prompt too long for the context is an error by default, is cut in
//! the middle with `truncate-middle` (said on standard error and in `--json`), and a rolling
//! window (`shift`) generates past the context; real processes on the default model.

use std::process::{Command, Output};

use serde_json::Value;

fn woolly(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_woolly"))
        .args(args)
        .output()
        .expect("the woolly binary runs")
}

fn long_prompt() -> String {
    "Item is on the list. ".repeat(200)
}

#[test]
fn overflow_is_an_error_a_cut_or_a_shift_and_always_said() {
    let prompt = long_prompt();
    let o = woolly(&[
        "run",
        "--ctx-size",
        "256",
        "-n",
        "8",
        "--temp",
        "0",
        &prompt,
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("exceeds the context of 256 tokens"), "{err}");

    let o = woolly(&[
        "run",
        "--ctx-size",
        "256",
        "-n",
        "8",
        "--temp",
        "0",
        "--overflow",
        "truncate-middle",
        &prompt,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("[dropped ")
            && err.contains("at position 1 (prompt) to fit the context of 256 tokens"),
        "{err}"
    );

    let o = woolly(&[
        "run",
        "--ctx-size",
        "256",
        "-n",
        "300",
        "--temp",
        "0",
        "--overflow",
        "shift",
        "--keep",
        "8",
        "--json",
        "Once upon a time",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["timings"]["generated_tokens"], 300);
    let dropped = v["dropped"].as_array().unwrap();
    assert!(
        !dropped.is_empty()
            && dropped
                .iter()
                .all(|d| d["during"] == "shift" && d["at"] == 8),
        "{dropped:?}"
    );

    let o = woolly(&["run", "--overflow", "quietly", "x"]);
    assert_eq!(o.status.code(), Some(2), "a usage error");
}
