//! The `woolly` binary on inputs that must not hang or mislead: a FIFO as the model (every way it
//! can be named), no HOME, a closed standard output, `--memory-budget 0` and too many threads.
//! Real processes, each under a watchdog so that a hang fails instead of blocking the suite.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use woolly_core::testing;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_woolly"))
}

/// Runs `cmd` to completion, killing it (and failing) after a generous watchdog.
fn finish(mut cmd: Command, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the woolly binary runs");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: woolly hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn with_stdout(mut cmd: Command) -> Command {
    cmd.stdout(Stdio::piped());
    cmd
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("woolly-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn mkfifo(p: &Path) {
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

/// One way of naming the model: its label, the arguments, and an environment variable to set.
type Way<'a> = (&'a str, Vec<&'a str>, Option<(&'a str, &'a Path)>);

#[test]
fn a_fifo_as_the_model_is_refused_by_every_command() {
    let dir = temp_dir("fifo");
    let fifo = dir.join("model.gguf");
    mkfifo(&fifo);
    let cache = dir.join("cache");
    std::fs::create_dir_all(cache.join("woolly/models")).unwrap();
    let cached = cache.join("woolly/models/gemma-3-270m-q4_k_m.gguf");
    mkfifo(&cached);
    let commands: [&[&str]; 4] = [
        &["run", "-n", "2", "hello"],
        &["tokenize", "hello"],
        &["inspect"],
        &["bench", "-p", "1", "-n", "1", "-r", "1"],
    ];
    for args in commands {
        // An explicit path, WOOLLY_MODEL, and the cache.
        let f = fifo.to_str().unwrap();
        let mut explicit = vec![args[0], "-m", f];
        explicit.extend_from_slice(&args[1..]);
        let ways: [Way; 3] = [
            ("explicit", explicit, None),
            ("WOOLLY_MODEL", args.to_vec(), Some(("WOOLLY_MODEL", &fifo))),
            ("cache", args.to_vec(), Some(("XDG_CACHE_HOME", &cache))),
        ];
        for (way, argv, env) in ways {
            let mut cmd = with_stdout(bin());
            cmd.args(&argv).env_remove("WOOLLY_MODEL");
            if let Some((k, v)) = env {
                cmd.env(k, v);
            }
            let o = finish(cmd, &format!("{args:?} ({way})"));
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{args:?} ({way}): {err}");
            let name = if way == "cache" {
                "gemma-3-270m-q4_k_m.gguf"
            } else {
                "model.gguf"
            };
            assert!(
                err.contains("FIFO") && err.contains(name),
                "{args:?} ({way}): {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_home_the_error_says_where_it_looked() {
    let mut cmd = with_stdout(bin());
    cmd.args(["inspect"])
        .env_remove("HOME")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("WOOLLY_MODEL");
    let o = finish(cmd, "inspect without HOME");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for part in ["WOOLLY_MODEL", "XDG_CACHE_HOME", "HOME", "make model"] {
        assert!(err.contains(part), "{part}: {err}");
    }
}

/// A pipe whose reading end is already closed: every write to it fails with EPIPE.
fn broken_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors are fresh and owned here; the read end is closed at once.
    unsafe {
        drop(OwnedFd::from_raw_fd(fds[0]));
        Stdio::from(OwnedFd::from_raw_fd(fds[1]))
    }
}

#[test]
fn a_closed_standard_output_is_an_error() {
    let model = testing::synthetic_model();
    let m = model.to_str().unwrap();
    for args in [
        vec!["run", "-m", m, "-n", "8", "--temp", "0", "the cat"],
        vec![
            "run", "-m", m, "-n", "8", "--temp", "0", "--json", "the cat",
        ],
        vec!["tokenize", "-m", m, "the cat"],
        vec!["inspect", "-m", m],
        vec!["hardware"],
    ] {
        // A pipe nobody reads any more (`woolly ... | head -c1` after head is gone).
        let mut cmd = bin();
        cmd.args(&args).stdout(broken_pipe());
        let o = finish(cmd, &format!("{args:?} into a broken pipe"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("standard output"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");

        // A closed descriptor (`woolly ... >&-`).
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("exec \"$0\" \"$@\" >&-")
            .arg(env!("CARGO_BIN_EXE_woolly"))
            .args(&args);
        let o = finish(cmd, &format!("{args:?} with stdout closed"));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?} >&-: {err}");
        assert!(err.contains("standard output is closed"), "{args:?}: {err}");
    }
}

#[test]
fn a_memory_budget_of_zero_means_none() {
    let mut cmd = with_stdout(bin());
    cmd.args(["run", "-m", testing::synthetic_model().to_str().unwrap()])
        .args(["--memory-budget", "0", "-n", "4", "--temp", "0", "the cat"]);
    let o = finish(cmd, "--memory-budget 0");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("[memory:") && !err.contains("budget"), "{err}");
}

#[test]
fn threads_above_the_cpus_are_capped() {
    let cpus = std::thread::available_parallelism().unwrap().get() as u64;
    let mut cmd = with_stdout(bin());
    cmd.args(["run", "-m", testing::synthetic_model().to_str().unwrap()])
        .args(["-t", "1024", "-n", "4", "--temp", "0", "--json", "the cat"]);
    let o = finish(cmd, "-t 1024");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert_eq!(v["timings"]["threads"].as_u64(), Some(cpus), "{v}");
    assert_eq!(v["timings"]["prompt_threads"].as_u64(), Some(cpus), "{v}");
    assert_eq!(v["timings"]["generated_tokens"].as_u64(), Some(4), "{v}");
    // Above 1024 is refused as absurd.
    let mut cmd = with_stdout(bin());
    cmd.args(["run", "-m", testing::synthetic_model().to_str().unwrap()])
        .args(["-t", "1025", "-n", "1", "the cat"]);
    let o = finish(cmd, "-t 1025");
    assert_eq!(o.status.code(), Some(1));
}
