#!/usr/bin/env bash
# make fuzz: each cargo-fuzz target (fuzz/fuzz_targets) for FUZZ_SECONDS (default 60) on its corpus
# (fuzz/corpus/<target>, plus tests/hostile for gguf). New coverage is added to the corpus; a crash,
# timeout or leak is copied to fuzz/regressions/<target>/ (which cargo test replays) and fails the
# run. FUZZ_TARGETS picks targets (default: all four); FUZZ_JOBS runs parallel workers per target.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-gguf tokenizer chat_template c_api}
jobs=${FUZZ_JOBS:-1}

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

cd "$root/fuzz"
cargo +nightly fuzz build
status=0
for t in $targets; do
  extra=()
  [ "$t" = gguf ] && extra=("$root/tests/hostile")
  par=()
  [ "$jobs" -gt 1 ] && par=(-jobs="$jobs" -workers="$jobs")
  mkdir -p "artifacts/$t" "regressions/$t"
  before=$(ls "artifacts/$t" | wc -l)
  echo "== fuzz $t for ${seconds} s"
  # -timeout: one input may take this long under the sanitizer (a runaway template stops at its
  # fuel in about 3 s there); -rss_limit_mb: no input may make the process grow past this.
  if ! cargo +nightly fuzz run "$t" "corpus/$t" "${extra[@]}" -- \
      -max_total_time="$seconds" -timeout=25 -rss_limit_mb=3072 "${par[@]}" \
      -print_final_stats=1 2>&1 | grep -E '^(#[0-9]+[[:space:]]+DONE|stat::|==[0-9]+== ERROR|SUMMARY|thread .* panicked|artifact_prefix)'; then
    :
  fi
  for a in $(ls "artifacts/$t" | tail -n +$((before + 1))); do
    case "$a" in
      crash-*|timeout-*|leak-*|oom-*)
        cp "artifacts/$t/$a" "regressions/$t/$a"
        echo "fuzz $t: found regressions/$t/$a (reproduce: cd fuzz && cargo +nightly fuzz run $t regressions/$t/$a)"
        status=1
        ;;
    esac
  done
done
[ $status -eq 0 ] && echo "make fuzz: no crash in $targets"
exit $status
