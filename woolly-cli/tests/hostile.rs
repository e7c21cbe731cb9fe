//! The hostile corpus (tests/hostile) through the `woolly` binary: each file a clear message and
//! exit status 1, never a signal or a panic, under a 2 GiB address-space limit so that no
//! allocation can be sized by the file; the harmless oddities generate.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

#[test]
fn every_hostile_file_is_a_clear_error() {
    let dir = woolly_core::testing::hostile_dir();
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    let mut wrong = Vec::new();
    let mut n = 0;
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        let (file, stage, message, what) = (f[0], f[1], f[3], f[4]);
        n += 1;
        let path = dir.join(file);
        let mut args = vec![
            "run",
            "--model",
            path.to_str().unwrap(),
            "-n",
            "3",
            "--temp",
            "0",
        ];
        if stage == "chat" {
            args.push("--chat");
        }
        args.push("the cat");
        // `ulimit -v` in a shell, then the binary in its place.
        let out = Command::new("sh")
            .arg("-c")
            .arg("ulimit -v 2097152 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_woolly"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if let Some(sig) = out.status.signal() {
            wrong.push(format!("{file} ({what}): killed by signal {sig}: {err}"));
            continue;
        }
        if err.contains("panicked") {
            wrong.push(format!("{file}: a panic: {err}"));
            continue;
        }
        let code = out.status.code().unwrap();
        match stage {
            "generate" if code != 0 => wrong.push(format!("{file}: exit {code}: {err}")),
            "generate" => {}
            _ if code != 1 => wrong.push(format!("{file}: exit {code}, expected 1: {err}")),
            _ if !err.contains("woolly: error:") || !err.contains(message) => {
                wrong.push(format!("{file}: message lacks `{message}`: {err}"))
            }
            _ => {}
        }
    }
    assert!(n >= 40, "{n} cases");
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}
