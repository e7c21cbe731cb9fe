#!/usr/bin/env bash
# Runs the Rust, Python and Node suites RUNS times each on the same build, to find tests that
# fail at random (a flaky test makes a CI rejection mean nothing). Not part of make test.
#
#   RUNS=20 SUITES="rust python node" bash scripts/repeat.sh
#
# The Python and Node suites run on the installs that make test-python and make test-node leave
# in build/ (made first when missing). Each failure's log is kept in build/repeat/; the summary
# lists every test that failed and in how many runs. REPEAT_OUT (default build/repeat) is where,
# so that loops of different suites can run side by side.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-20}
suites=${SUITES:-rust python node}
out="${REPEAT_OUT:-$root/build/repeat}"
rm -rf "$out"
mkdir -p "$out"
cd "$root"

for s in $suites; do
  case $s in
    rust) cargo test --workspace --no-run -q >/dev/null || exit 1 ;;
    python) [ -x build/python/venv/bin/python ] || bash scripts/test-python.sh >/dev/null || exit 1 ;;
    node) [ -d build/node-test/node_modules/woolly ] || bash scripts/test-node.sh >/dev/null || exit 1 ;;
    *) echo "repeat: unknown suite $s (rust, python, node)" >&2; exit 2 ;;
  esac
done

run_suite() {
  case $1 in
    rust) cargo test --workspace --no-fail-fast -q 2>&1 ;;
    python) (cd bindings/python/tests && ../../../build/python/venv/bin/python -m pytest -q -p no:cacheprovider 2>&1) ;;
    node) NODE_PATH="$root/build/node-test/node_modules" node --test --test-concurrency=1 \
            --test-reporter=tap bindings/node/test/*.test.js 2>&1 ;;
  esac
}

# The names of the failed tests in a suite's output.
failed_tests() {
  case $1 in
    rust) grep -E '^    [A-Za-z0-9_:]+$' "$2" | sed 's/^ *//' | sort -u ;;
    python) grep -E '^FAILED ' "$2" | awk '{print $2}' | sort -u ;;
    node) grep -E '^ *not ok ' "$2" | sed -E 's/^ *not ok [0-9]+ - //' | sort -u ;;
  esac
}

status=0
for s in $suites; do
  pass=0
  : > "$out/$s.failures"
  for i in $(seq 1 "$runs"); do
    log="$out/$s-$i.log"
    start=$SECONDS
    if run_suite "$s" > "$log"; then
      pass=$((pass + 1))
      rm -f "$log"
      echo "$s run $i/$runs: passed ($((SECONDS - start)) s)"
    else
      status=1
      failed_tests "$s" "$log" | tee -a "$out/$s.failures" | sed "s/^/$s run $i: FAILED /"
      echo "$s run $i/$runs: failed ($((SECONDS - start)) s), log in $log"
    fi
  done
  echo "$s: $pass of $runs runs passed" | tee -a "$out/summary.txt"
  sort "$out/$s.failures" | uniq -c | sed "s/^/  failed in runs: /" | tee -a "$out/summary.txt"
done
exit $status
