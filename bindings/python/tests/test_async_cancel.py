"""asyncio responsiveness, cancellation (tasks, Ctrl-C, abandoned iterators)."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import woolly

LONG_PROMPT = "The quick brown fox jumps over the lazy dog. " * 250


def test_asyncio_loop_keeps_ticking_during_generation(model, capital):
    async def main():
        gaps = []

        async def ticker(done):
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        done = asyncio.Event()
        tick = asyncio.create_task(ticker(done))
        n = capital["exact"]
        text = await model.agenerate(capital["prompt"], max_tokens=n, temperature=0)
        pieces = [p async for p in model.astream(capital["prompt"], max_tokens=n, temperature=0)]
        reply = await model.achat([{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0)
        done.set()
        await tick
        return text, pieces, reply, gaps

    text, pieces, reply, gaps = asyncio.run(main())
    assert text == model.detokenize(capital["generated_ids"][: capital["exact"]])
    assert "".join(pieces) == text
    assert reply
    assert len(gaps) > 20
    # The loop was never held for long (generation ran on other threads).
    assert max(gaps) < 0.5, max(gaps)


def test_cancelling_a_task_cancels_its_generation(model, capital):
    async def main():
        async def consume():
            async for _ in model.astream(LONG_PROMPT, max_tokens=8, temperature=0):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    before = model.metrics()["cancelled"]
    asyncio.run(main())
    # The native generation stopped too (it is counted as cancelled, soon).
    deadline = time.monotonic() + 10
    while model.metrics()["cancelled"] == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert model.metrics()["cancelled"] > before
    n = capital["exact"]
    assert model.generate(capital["prompt"], max_tokens=n, temperature=0) == model.detokenize(
        capital["generated_ids"][:n]
    )


def test_abandoned_iterator_stops_its_generation(model, capital):
    before = model.metrics()["cancelled"]
    it = model.stream("Once upon a time", max_tokens=200, temperature=0, ignore_eos=True)
    next(it)
    it.close()
    assert model.metrics()["cancelled"] == before + 1


CTRL_C = textwrap.dedent(
    """
    import signal, sys, time, woolly
    # Python raises KeyboardInterrupt only where SIGINT was not ignored when it started, and a
    # shell ignores it in a background job: set the default handler whatever this inherited.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    model = woolly.Model()
    print("loaded", flush=True)
    try:
        model.generate(sys.argv[1], max_tokens=8, temperature=0)
        print("finished without interruption", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    t0 = time.monotonic()
    print("after:", repr(model.generate("The capital of France is", max_tokens=5, temperature=0)), flush=True)
    print("metrics cancelled:", model.metrics()["cancelled"], flush=True)
    """
)


def test_ctrl_c_during_a_long_prompt_raises_keyboard_interrupt(tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C)
    p = subprocess.Popen(
        [sys.executable, str(script), LONG_PROMPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert p.stdout.readline().strip() == "loaded"
    time.sleep(0.5)  # inside the 2500-token prompt
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    line = p.stdout.readline().strip()
    latency = time.monotonic() - sent
    out, err = p.communicate(timeout=60)
    assert line == "interrupted", (line, out, err)
    assert p.returncode == 0, err
    assert "after: ' the capital of the country'" in out
    assert "metrics cancelled: 1" in out
    print(f"KeyboardInterrupt {latency * 1e3:.0f} ms after SIGINT")
