#!/usr/bin/env bash
# Packs build/gpu-check/ for a GPU machine without Rust or network: the stripped release binary,
# skeletons of the default model and of the tiny reference models (filled there with
# `woolly synth --fill`), the tiny models themselves when the pack stays under ~40 MiB, and
# scripts/gpu-check.sh, which runs the checks there. Usage: scripts/gpu-check-pack.sh [MODEL]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-${MODEL:-${XDG_CACHE_HOME:-$HOME/.cache}/woolly/models/gemma-3-270m-q4_k_m.gguf}}
TINY=${TINY:-../shared/reference/tiny}
DEST=build/gpu-check
LIMIT=$((40 * 1024 * 1024))

cargo build --release -p woolly-cli
rm -rf "$DEST" && mkdir -p "$DEST/skeletons" "$DEST/models"
strip -o "$DEST/woolly" target/release/woolly 2>/dev/null || objcopy --strip-all target/release/woolly "$DEST/woolly"
cp scripts/gpu-check.sh "$DEST/gpu-check.sh"

if [ -f "$MODEL" ]; then
  "$DEST/woolly" synth --like "$MODEL" --out "$DEST/skeletons/default.gguf"
else
  echo "note: default model $MODEL absent (run make model); no default-shaped skeleton" >&2
fi
for m in "$TINY"/*.gguf; do
  [ -f "$m" ] || continue
  "$DEST/woolly" synth --like "$m" --out "$DEST/skeletons/$(basename "$m")"
done
size() { du -sb "$DEST" | cut -f1; }
for m in "$TINY"/*.gguf; do
  [ -f "$m" ] || continue
  if [ $(( $(size) + $(stat -c %s "$m") )) -le $LIMIT ]; then
    cp "$m" "$DEST/models/"
  else
    echo "note: $(basename "$m") left out (pack would pass 40 MiB); its skeleton travels" >&2
  fi
done
echo "== build/gpu-check ($(awk "BEGIN{printf \"%.1f\", $(size)/1048576}") MiB)"
find "$DEST" -type f -printf '%10s  %p\n' | sort -k2
