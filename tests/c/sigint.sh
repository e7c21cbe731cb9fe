#!/usr/bin/env bash
# Ctrl-C during a long prompt: the C++ example aborts cleanly (message, exit status 130, no
# crash) within a second.
set -u
exe=$1
prompt=$(printf 'The quick brown fox jumps over the lazy dog. %.0s' $(seq 1 300))
out=$(mktemp)
"$exe" -n 64 "$prompt" >"$out" 2>&1 &
pid=$!
# Wait until the model is loaded (the progress bar reaches 100%), then interrupt.
for _ in $(seq 1 200); do
  grep -q "100%" "$out" && break
  sleep 0.05
done
sleep 0.3
kill -INT "$pid"
start=$(date +%s%N)
wait "$pid"
status=$?
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
cat "$out"
rm -f "$out"
[ "$status" -eq 130 ] || { echo "sigint: exit status $status, expected 130" >&2; exit 1; }
echo "sigint: aborted cleanly in ${elapsed_ms} ms"
