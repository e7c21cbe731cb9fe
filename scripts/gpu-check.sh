#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root, with build/gpu-check/ (made by
# scripts/gpu-check-pack.sh). Needs bash, coreutils, nvidia-smi and python3 (stdlib) only.
# Writes $OUT/gpu-check.json (OUT defaults to build/gpu-check/out) and a summary on stdout.
set -uo pipefail
cd "$(dirname "$0")/.." 2>/dev/null || true
[ -d build/gpu-check ] || cd "$(dirname "$0")/../.."
P=build/gpu-check
W=$P/woolly
OUT=${OUT:-$P/out}
mkdir -p "$OUT/raw"
R=$OUT/raw
TMP=$(mktemp -d /tmp/gpu-check.XXXXXX)
PROMPT="The quick brown fox"
NTOK=32
mem() { timeout 20 nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1 | tr -d ' '; }

echo "== 1. nvidia-smi"
timeout 30 nvidia-smi > "$R/nvidia-smi.txt" 2>&1; cat "$R/nvidia-smi.txt" | head -20
timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$R/gpu.csv" 2>&1

echo "== 2. gpu-check kernels"
timeout 120 "$W" gpu-check kernels --json > "$R/kernels.json" 2> "$R/kernels.err"; echo $? > "$R/kernels.rc"
echo "rc=$(cat "$R/kernels.rc")"; tail -c 2000 "$R/kernels.json"

echo "== 3. fill skeletons"
MODELS=()
for m in "$P"/models/*.gguf; do [ -f "$m" ] && MODELS+=("$m"); done
for s in "$P"/skeletons/*.gguf; do
  [ -f "$s" ] || continue
  n=$(basename "$s" .gguf)
  # a tiny model that travelled whole is used as is; its skeleton is filled too (synth-$n)
  timeout 120 "$W" synth --fill "$s" --out "$TMP/synth-$n.gguf" --seed 1 2> "$R/fill-$n.err" \
    && MODELS+=("$TMP/synth-$n.gguf") || echo "fill $n failed: $(tail -1 "$R/fill-$n.err")"
done

echo "== 4-6. run and bench, --gpu-layers 0 and auto"
echo "mem_before $(mem)" > "$R/mem.txt"
for m in "${MODELS[@]}"; do
  n=$(basename "$m" .gguf)
  for g in 0 auto; do
    timeout 90 "$W" run --model "$m" --temp 0 -n $NTOK --json --gpu-layers $g "$PROMPT" \
      > "$R/run-$n-$g.json" 2> "$R/run-$n-$g.err"; echo $? > "$R/run-$n-$g.rc"
    ( timeout 240 "$W" bench --model "$m" -p 512 -n 128 -r 2 --json --gpu-layers $g \
      > "$R/bench-$n-$g.json" 2> "$R/bench-$n-$g.err"; echo $? > "$R/bench-$n-$g.rc" ) &
    bp=$!; sleep 3; echo "mem_during $n $g $(mem)" >> "$R/mem.txt"; wait $bp
  done
done
echo "mem_after $(mem)" >> "$R/mem.txt"
echo "== 7. unload: device memory back after the model and its session are dropped"
U=$TMP/synth-default.gguf; [ -f "$U" ] || U=${MODELS[0]:-}
if [ -n "$U" ]; then
  timeout 90 "$W" gpu-check unload --model "$U" > "$R/unload.json" 2> "$R/unload.err"; echo $? > "$R/unload.rc"
  echo "rc=$(cat "$R/unload.rc")"; cat "$R/unload.json"
fi
rm -rf "$TMP"

python3 - "$R" "$OUT/gpu-check.json" <<'PY'
import json, os, sys, glob
r, out = sys.argv[1], sys.argv[2]
def rd(p):
    try: return open(p).read()
    except OSError: return None
def js(p):
    t = rd(p)
    if t is None: return None
    try: return json.loads(t)
    except ValueError:
        lines = [json.loads(l) for l in t.splitlines() if l.strip().startswith("{")] if t else []
        return lines or {"raw": t[-4000:]}
res = {"nvidia_smi": rd(f"{r}/gpu.csv"), "kernels": js(f"{r}/kernels.json"),
       "kernels_rc": rd(f"{r}/kernels.rc"), "kernels_stderr": (rd(f"{r}/kernels.err") or "")[-2000:],
       "memory_mib": (rd(f"{r}/mem.txt") or "").splitlines(), "unload": js(f"{r}/unload.json"),
       "unload_rc": rd(f"{r}/unload.rc"), "models": {}}
names = sorted({os.path.basename(p)[4:].rsplit("-", 1)[0] for p in glob.glob(f"{r}/run-*.json")})
for n in names:
    e = {}
    for g in ("0", "auto"):
        e[f"run_{g}"] = js(f"{r}/run-{n}-{g}.json"); e[f"run_{g}_rc"] = rd(f"{r}/run-{n}-{g}.rc")
        e[f"run_{g}_stderr"] = (rd(f"{r}/run-{n}-{g}.err") or "")[-1500:]
        e[f"bench_{g}"] = js(f"{r}/bench-{n}-{g}.json"); e[f"bench_{g}_rc"] = rd(f"{r}/bench-{n}-{g}.rc")
    ids = [(e[f"run_{g}"] or {}).get("generated_ids") if isinstance(e[f"run_{g}"], dict) else None for g in ("0", "auto")]
    if ids[0] is None or ids[1] is None: e["tokens"] = "missing"
    elif ids[0] == ids[1]: e["tokens"] = "equal"
    else:
        k = next((i for i, (a, b) in enumerate(zip(*ids)) if a != b), min(map(len, ids)))
        e["tokens"] = f"differ at index {k}"
    res["models"][n] = e
json.dump(res, open(out, "w"), indent=1)
print("== summary")
print("kernels rc:", (res["kernels_rc"] or "").strip(), " unload rc:", (res["unload_rc"] or "").strip())
for n, e in res["models"].items():
    print(f"{n:40s} tokens cpu vs gpu: {e['tokens']:20s} run rc {str(e['run_0_rc']).strip()}/{str(e['run_auto_rc']).strip()} bench rc {str(e['bench_0_rc']).strip()}/{str(e['bench_auto_rc']).strip()}")
print("\n".join(res["memory_mib"]))
print("wrote", out)
PY
