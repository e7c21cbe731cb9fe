#!/usr/bin/env python3
"""Woolly against llama.cpp on the same machine, model and threads, in one run.

llama.cpp comes from the llama-cpp-python package (it builds llama.cpp from source):

    python3 -m venv /tmp/llamavenv
    CMAKE_ARGS="-DGGML_NATIVE=ON" /tmp/llamavenv/bin/pip install llama-cpp-python==0.3.36
    make build
    /tmp/llamavenv/bin/python bench/compare.py            # or --quick

Each engine runs in its own child process (so that its peak RSS is its own). Measured, as
llama-bench does: prompt processing (pp, tokens/s over a fresh context), generation (tg, one
token per forward pass), time to first token after a prompt, load time, and the peak RSS of a
short generation. Printed: a table per setting with the ratio woolly / llama.cpp (above 1 is
better for tok/s, below 1 is better for times and memory), and with --json one JSON line.
This is a benchmark, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WOOLLY = ROOT / "target" / "release" / "woolly"


def default_model() -> Path:
    env = os.environ.get("WOOLLY_MODEL")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "woolly" / "models" / "gemma-3-270m-q4_k_m.gguf"


# The llama.cpp side, run in a child interpreter that has llama_cpp installed.
LLAMA_CHILD = textwrap.dedent(
    r"""
    import json, random, resource, statistics, sys, time
    from llama_cpp import Llama, llama_cpp as C
    args = json.loads(sys.argv[1])
    t0 = time.perf_counter()
    llm = Llama(model_path=args["model"], n_ctx=args["n_ctx"], n_batch=512, n_ubatch=512,
                n_threads=args["threads"], n_threads_batch=args["threads"], verbose=False)
    load_ms = (time.perf_counter() - t0) * 1e3
    vocab = llm.n_vocab()
    rng = random.Random(1)
    def tokens(n):
        return [llm.token_bos()] + [rng.randrange(1000, vocab - 1000) for _ in range(n - 1)]
    out = {"load_ms": load_ms}
    if args["mode"] == "speed":
        pp, tg, ttft = [], [], []
        for rep in range(args["reps"] + 1):
            if args["n_prompt"]:
                toks = tokens(args["n_prompt"])
                llm.reset()
                C.llama_memory_clear(C.llama_get_memory(llm.ctx), True)
                t = time.perf_counter()
                llm.eval(toks)
                dt = time.perf_counter() - t
                if rep:
                    pp.append(len(toks) / dt)
                    ttft.append(dt * 1e3)
            if args["n_gen"]:
                llm.reset()
                C.llama_memory_clear(C.llama_get_memory(llm.ctx), True)
                llm.eval([llm.token_bos()])
                t = time.perf_counter()
                tok = 1000
                for _ in range(args["n_gen"]):
                    llm.eval([tok])
                    tok = (tok * 7 + 13) % (vocab - 2000) + 1000
                dt = time.perf_counter() - t
                if rep:
                    tg.append(args["n_gen"] / dt)
        def ms(v):
            return (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0) if v else (0.0, 0.0)
        out.update(pp_tok_s=ms(pp)[0], pp_tok_s_sd=ms(pp)[1], tg_tok_s=ms(tg)[0],
                   tg_tok_s_sd=ms(tg)[1], ttft_ms=ms(ttft)[0])
    else:
        toks = llm.tokenize(args["prompt"].encode(), add_bos=True, special=True)
        n = 0
        for t in llm.generate(toks, top_k=1, temp=0.0):
            n += 1
            if n >= args["n_gen"]:
                break
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out))
    """
)


def run_llama(python: str, **args) -> dict:
    r = subprocess.run(
        [python, "-c", LLAMA_CHILD, json.dumps(args)], capture_output=True, text=True
    )
    if r.returncode != 0:
        sys.exit(f"llama.cpp child failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_woolly(args: list[str]) -> tuple[str, int]:
    """Runs woolly in a fresh child process; returns its stdout and its own peak RSS in bytes."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(r.stderr)\n"
        "print(r.stdout, end='')\n"
        "print('RSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
        "sys.exit(r.returncode)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", wrapper, str(WOOLLY), *args], capture_output=True, text=True
    )
    if r.returncode != 0:
        sys.exit(f"woolly failed:\n{r.stderr[-4000:]}")
    lines = r.stdout.strip().splitlines()
    return "\n".join(lines[:-1]), int(lines[-1].split()[1])


def woolly_speed(model: Path, threads: int, n_prompt: int, n_gen: int, reps: int) -> dict:
    out, _ = run_woolly(
        ["bench", "--model", str(model), "-t", str(threads), "-p", str(n_prompt),
         "-n", str(n_gen), "-r", str(reps), "--json"]
    )
    return json.loads(out.splitlines()[-1])


def ratio(a: float, b: float) -> str:
    return f"{a / b:5.2f}x" if b else "  n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=default_model())
    ap.add_argument("--llama-python", default=sys.executable,
                    help="a Python that has llama_cpp installed (default: this one)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prompts", default="128,512,2048")
    ap.add_argument("--n-gen", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="pp512 and tg128 at the largest thread count, 2 repetitions")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not WOOLLY.exists():
        sys.exit(f"{WOOLLY} is missing: run `make build` first")
    if not a.model.exists():
        sys.exit(f"{a.model} is missing: run `make model` first")
    threads = [int(t) for t in a.threads.split(",")]
    prompts = [int(p) for p in a.prompts.split(",")]
    if a.quick:
        threads, prompts, a.reps = [max(threads)], [512], 2

    rows = []
    print(f"model {a.model.name}, {os.cpu_count()} logical CPUs, {a.reps} repetitions\n")
    print("| threads | test    |   llama.cpp |      woolly |  ratio |")
    print("|--------:|:--------|------------:|------------:|-------:|")
    for t in threads:
        for i, p in enumerate(prompts):
            n_gen = a.n_gen if i == 0 else 0
            ctx = p + max(n_gen, 1) + 16
            ll = run_llama(a.llama_python, model=str(a.model), n_ctx=ctx, threads=t, mode="speed",
                           n_prompt=p, n_gen=n_gen, reps=a.reps)
            wo = woolly_speed(a.model, t, p, n_gen, a.reps)
            print(f"| {t:7} | pp{p:<5} | {ll['pp_tok_s']:11.1f} | {wo['pp_tok_s']:11.1f} | {ratio(wo['pp_tok_s'], ll['pp_tok_s'])} |")
            rows.append({"threads": t, "test": f"pp{p}", "llama": ll["pp_tok_s"], "woolly": wo["pp_tok_s"]})
            print(f"| {t:7} | ttft{p:<3} | {ll['ttft_ms']:9.0f}ms | {wo['ttft_ms']:9.0f}ms | {ratio(wo['ttft_ms'], ll['ttft_ms'])} |")
            rows.append({"threads": t, "test": f"ttft{p}_ms", "llama": ll["ttft_ms"], "woolly": wo["ttft_ms"]})
            if n_gen:
                print(f"| {t:7} | tg{n_gen:<5} | {ll['tg_tok_s']:11.1f} | {wo['tg_tok_s']:11.1f} | {ratio(wo['tg_tok_s'], ll['tg_tok_s'])} |")
                rows.append({"threads": t, "test": f"tg{n_gen}", "llama": ll["tg_tok_s"], "woolly": wo["tg_tok_s"]})
                print(f"| {t:7} | load    | {ll['load_ms']:9.0f}ms | {wo['load_ms']:9.0f}ms | {ratio(wo['load_ms'], ll['load_ms'])} |")
                rows.append({"threads": t, "test": "load_ms", "llama": ll["load_ms"], "woolly": wo["load_ms"]})

    # Peak RSS of the same short generation (load, a short prompt, 32 greedy tokens).
    t = max(threads)
    prompt = "The capital of France is"
    ll = run_llama(a.llama_python, model=str(a.model), n_ctx=4096, threads=t, mode="rss",
                   prompt=prompt, n_gen=32)
    _, wrss = run_woolly(["run", "--model", str(a.model), "-t", str(t), "--temp", "0", "-n", "32",
                          "-c", "4096", prompt])
    mib = 1 << 20
    print(f"| {t:7} | peakRSS | {ll['peak_rss_bytes'] / mib:8.0f}MiB | {wrss / mib:8.0f}MiB | {ratio(wrss, ll['peak_rss_bytes'])} |")
    print("\n(llama.cpp's RSS includes its Python interpreter, about 10 MiB.)")
    rows.append({"threads": t, "test": "peak_rss_bytes", "llama": ll["peak_rss_bytes"], "woolly": wrss})
    if a.json:
        print(json.dumps({"model": str(a.model), "rows": rows}))


if __name__ == "__main__":
    main()
