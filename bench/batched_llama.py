"""llama.cpp's batched generation speed, measured as llama-batched-bench does (not shipped by
llama-cpp-python, so rebuilt here on its low-level API): `npl` sequences each read a prompt of
`pp` tokens, then generate `tg` tokens together, one llama_decode per step with one token per
sequence. Prints S_TG = npl * tg / (generation time) per npl, and Woolly's figure for the same
shape from `woolly bench --concurrency` when --woolly is given, side by side.

    /tmp/llamavenv/bin/python bench/batched_llama.py --model MODEL --threads 2 --npl 4,8,16 \
        --woolly target/release/woolly
"""

import argparse
import ctypes
import json
import subprocess
import sys
import time

import llama_cpp as L


def batched(model, npl, pp, tg, threads):
    cp = L.llama_context_default_params()
    cp.n_ctx = npl * (pp + tg) + 64
    cp.n_batch = max(npl * pp, 512)
    cp.n_ubatch = 512
    cp.n_seq_max = npl
    cp.n_threads = threads
    cp.n_threads_batch = threads
    cp.kv_unified = True
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        raise SystemExit("cannot create a llama.cpp context")
    batch = L.llama_batch_init(max(npl * pp, npl), 0, npl)

    def fill(entries):
        batch.n_tokens = len(entries)
        for i, (tok, pos, seq, logits) in enumerate(entries):
            batch.token[i] = tok
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = logits
        if L.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed")

    def run():
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        # Prompts: distinct token ids per sequence, in one batch (as batched-bench does).
        entries = []
        for s in range(npl):
            for p in range(pp):
                entries.append((1000 + (s * 7919 + p * 104729) % 50000, p, s, p == pp - 1))
        fill(entries)
        t0 = time.perf_counter()
        for i in range(tg):
            fill([(2000 + (s + i) % 1000, pp + i, s, True) for s in range(npl)])
        return npl * tg / (time.perf_counter() - t0)

    run()  # warm-up
    best = [run() for _ in range(2)]
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    return sum(best) / len(best)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--npl", default="4,8,16")
    ap.add_argument("--pp", type=int, default=32)
    ap.add_argument("--tg", type=int, default=64)
    ap.add_argument("--woolly", help="the woolly binary, to measure it in the same run")
    a = ap.parse_args()
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(a.model.encode(), mp)
    if not model:
        raise SystemExit("cannot load " + a.model)
    npls = [int(x) for x in a.npl.split(",")]
    rows = []
    for n in npls:
        ll = batched(model, n, a.pp, a.tg, a.threads)
        w = None
        if a.woolly:
            out = subprocess.run(
                [a.woolly, "bench", "--model", a.model, "--concurrency", str(n), "-n", str(a.tg),
                 "--concurrent-prompt", str(a.pp), "-r", "2", "-t", str(a.threads), "--json"],
                check=True, capture_output=True, text=True).stdout
            w = json.loads(out.strip().splitlines()[-1])["aggregate_tg_tok_s"]
        rows.append((n, ll, w))
        print(f"npl {n}: llama.cpp {ll:.1f} tok/s" + (f", woolly {w:.1f} tok/s ({w / ll:.2f}x)" if w else ""),
              file=sys.stderr)
    print(f"| parallel sequences | llama.cpp S_TG tok/s | woolly aggregate tok/s | ratio |")
    print("|---:|---:|---:|---:|")
    for n, ll, w in rows:
        print(f"| {n} | {ll:.1f} | {w:.1f} | {w / ll:.2f}x |" if w else f"| {n} | {ll:.1f} | | |")
    L.llama_model_free(model)


if __name__ == "__main__":
    main()
