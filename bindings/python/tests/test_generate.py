"""Generation on the default model: llama.cpp's greedy tokens, streaming, chat, threads."""

import json
import threading
import time

import pytest

import woolly
from conftest import REFERENCE, greedy_reference

CASES = [
    "capital",
    "chat_haiku",
    "code_fib",
    "count",
    "story",
    "long_inventory",
]


@pytest.mark.parametrize("name", CASES)
def test_greedy_equals_the_reference(model, name):
    ref = greedy_reference(name)
    out = model.generate_details(ref["prompt"], max_tokens=len(ref["generated_ids"]), temperature=0)
    assert out["prompt_ids"] == ref["prompt_ids"]
    n = ref["exact"]
    assert n >= 1
    assert out["generated_ids"][:n] == ref["generated_ids"][:n]
    assert out["text"] == model.detokenize(out["generated_ids"])


def test_generate_returns_the_reference_text(model, capital):
    n = capital["exact"]
    text = model.generate(capital["prompt"], max_tokens=n, temperature=0)
    assert text == model.detokenize(capital["generated_ids"][:n])


def test_streamed_pieces_join_to_the_full_text(model, capital):
    pieces = list(model.stream(capital["prompt"], max_tokens=24, temperature=0))
    assert len(pieces) > 5
    assert all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == model.generate(capital["prompt"], max_tokens=24, temperature=0)


def test_seeded_sampling_repeats(model):
    a = model.generate("Once upon a time", max_tokens=16, seed=7)
    b = model.generate("Once upon a time", max_tokens=16, seed=7)
    assert a == b
    c = model.generate("Once upon a time", max_tokens=16, seed=8, temperature=1.5)
    d = model.generate("Once upon a time", max_tokens=16, seed=9, temperature=1.5)
    assert c != d


def test_stop_strings_end_the_text_before_them(model, capital):
    full = model.generate(capital["prompt"], max_tokens=24, temperature=0)
    assert " France" in full
    cut = model.generate(capital["prompt"], max_tokens=24, temperature=0, stop=" France")
    assert cut == full[: full.index(" France")]


def test_chat_equals_the_reference(model):
    # chat_haiku's prompt is the gemma template around one user message.
    ref = greedy_reference("chat_haiku")
    msgs = [{"role": "user", "content": "Write a haiku about the sea."}]
    prompt = model.apply_chat_template(msgs)
    assert prompt.endswith(ref["prompt"]) and prompt.endswith("<start_of_turn>model\n")
    n = ref["exact"]
    reply = model.chat(msgs, max_tokens=n, temperature=0)
    assert reply == model.detokenize(ref["generated_ids"][:n])
    assert "".join(model.chat(msgs, stream=True, max_tokens=n, temperature=0)) == reply


def test_tokenization_matches_the_reference_exactly(model):
    cases = json.loads((REFERENCE / "gemma3-270m" / "tokenize.json").read_text())
    assert len(cases) > 5
    for case in cases:
        assert model.tokenize(case["text"]) == case["ids"], case["text"]
    assert model.tokenize("Hello world", add_special=False) == [9259, 1902]
    assert model.detokenize(model.tokenize("Hello world")) == "Hello world"


def test_two_threads_generate_at_once(model, capital):
    n = capital["exact"]
    want = model.detokenize(capital["generated_ids"][:n])
    results, spans = [None, None], [None, None]

    def work(i):
        t0 = time.monotonic()
        results[i] = model.generate(capital["prompt"], max_tokens=n, temperature=0)
        spans[i] = (t0, time.monotonic())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [want, want]
    # The GIL was released: the two generations overlapped in time.
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1


def test_python_threads_keep_running_during_generation(model):
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.005)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        model.generate("Once upon a time", max_tokens=48, temperature=0, ignore_eos=True)
    finally:
        stop.set()
        t.join()
    assert len(ticks) > 10


def test_info_metrics_hardware_diagnostics(model):
    info = model.info
    assert info["architecture"] == "gemma3"
    assert info["hparams"]["n_vocab"] == 262144 if "n_vocab" in info["hparams"] else True
    assert info["vocab_size"] == 262144
    assert "Q4_K" in info["tensor_types"]
    before = model.metrics()
    model.generate("Hi", max_tokens=3, temperature=0, ignore_eos=True)
    after = model.metrics()
    assert after["generations"] == before["generations"] + 1
    assert after["generated_tokens"] == before["generated_tokens"] + 3
    hw = woolly.hardware()
    assert hw["logical_cores"] >= 1 and "simd" in hw
    d = woolly.diagnostics()
    assert d["woolly_version"] == woolly.__version__
    assert d["thread_policy"]["prompt_processing"] >= 1
    assert model.diagnostics()["model"]["architecture"] == "gemma3"
