"""Drives the native parts of the Python package for `make leaks` (run under valgrind): every
call into the extension, on the synthetic model, a few rounds, then the hostile corpus."""

import pathlib
import sys

import woolly

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = str(ROOT / "tests" / "hostile" / "synthetic-llama.gguf")
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3


def one_round():
    m = woolly.Model(MODEL, preload="lazy")
    ids = m.tokenize("the cat sat on the mat")
    assert m.detokenize(ids).strip() == "the cat sat on the mat"
    m.apply_chat_template([{"role": "user", "content": "hi"}])
    m.generate("the cat", max_tokens=4, ignore_eos=True, temperature=0)
    for i, _ in enumerate(m.stream("the cat", max_tokens=16, ignore_eos=True)):
        if i == 2:
            break  # an abandoned stream
    m.chat([{"role": "user", "content": "hi"}], max_tokens=2)
    m.generate_details("the", max_tokens=2, stop=["x"], seed=3)
    m.info, m.metrics(), m.memory_report(), m.preload_progress
    for bad in (lambda: m.detokenize([10**9]), lambda: m.generate("x", top_p=float("nan"))):
        try:
            bad()
        except woolly.WoollyError:
            pass
    e = woolly.Engine(m, context_size=64)
    reqs = [e.submit("the cat", max_tokens=8, ignore_eos=True) for _ in range(4)]
    reqs[0].cancel()
    for r in reqs[1:]:
        r.result(timeout=60)
    pending = e.submit("the cat", max_tokens=48, ignore_eos=True)
    e.close()  # answers the pending request
    try:
        pending.result(timeout=60)
    except woolly.WoollyError:
        pass
    cache = woolly.ModelCache()
    c = cache.load("s", MODEL, preload="lazy")
    cache.pin("s", True)
    cache.pin("s", False)
    del c
    cache.unload("s")
    del m
    woolly.metrics_prometheus(), woolly.metrics(), woolly.memory_report(), woolly.hardware()


def hostile():
    corpus = ROOT / "tests" / "hostile"
    for line in (corpus / "manifest.tsv").read_text().splitlines():
        if line.startswith("#"):
            continue
        file, stage = line.split("\t")[:2]
        try:
            m = woolly.Model(str(corpus / file), preload="lazy")
        except woolly.WoollyError:
            continue
        try:
            m.chat([{"role": "user", "content": "hi"}], max_tokens=1)
        except woolly.WoollyError:
            pass
        del m


for _ in range(ROUNDS):
    one_round()
hostile()
print("driver.py: done")
