"""OpenAI-shaped requests on the default model (``create_chat_completion``, ``create_completion``
and their asyncio forms, on a Model and an Engine): the dicts llama-cpp-python returns, streams
whose text is the whole response's, response formats validated with ``jsonschema``, tool calls,
log probabilities, cancellation by leaving a stream, and bad requests raising the binding's
exceptions before anything is generated."""

import asyncio
import json
import time

import jsonschema
import pytest

import woolly

HELLO = [{"role": "user", "content": "Say hello."}]
STORY = [{"role": "user", "content": "Tell me a long story about a dragon."}]

CITY = {
    "type": "object",
    "additionalProperties": False,
    "required": ["city", "population"],
    "properties": {
        "city": {"type": "string", "maxLength": 20},
        "population": {"type": "integer", "minimum": 0},
    },
}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "required": ["city"],
            "properties": {
                "city": {"type": "string", "maxLength": 30},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def streamed_text(chunks):
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def counts(usage):
    return {k: usage[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


def assert_usage(u, max_completion=None):
    assert u["prompt_tokens"] > 3
    assert u["completion_tokens"] >= 1
    if max_completion is not None:
        assert u["completion_tokens"] <= max_completion
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]


def test_chat_completion_has_openai_shape(model):
    r = model.create_chat_completion(HELLO, max_tokens=12, temperature=0)
    assert isinstance(r, dict)
    assert r["object"] == "chat.completion"
    assert r["id"].startswith("chatcmpl-")
    assert r["model"] == "gemma-3-270m-q4_k_m"
    assert isinstance(r["created"], int) and r["created"] > 1_600_000_000
    (c,) = r["choices"]
    assert c["index"] == 0
    assert c["message"]["role"] == "assistant"
    assert isinstance(c["message"]["content"], str) and c["message"]["content"]
    assert "tool_calls" not in c["message"]
    assert c["finish_reason"] in ("stop", "length")
    assert c["logprobs"] is None
    assert_usage(r["usage"], 12)
    # The body's `model` is echoed; fields given as None are left out (OpenAI's defaults).
    r2 = model.create_chat_completion(HELLO, max_tokens=12, temperature=0, model="mine", stop=None, seed=None)
    assert r2["model"] == "mine"
    assert r2["choices"][0]["message"]["content"] == c["message"]["content"]
    # Messages from any iterable.
    r3 = model.create_chat_completion((m for m in HELLO), max_tokens=12, temperature=0)
    assert r3["choices"][0]["message"]["content"] == c["message"]["content"]


def test_completion_with_logprobs_and_echo(model):
    prompt = "The capital of France is"
    r = model.create_completion(prompt, max_tokens=5, temperature=0, logprobs=2, echo=True)
    assert r["object"] == "text_completion"
    assert r["id"].startswith("cmpl-")
    c = r["choices"][0]
    assert c["text"].startswith(prompt)
    lp = c["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == r["usage"]["completion_tokens"]
    assert all(len(t) <= 2 for t in lp["top_logprobs"])
    # The text equals what Model.generate gives (greedy), streamed or not.
    plain = model.create_completion(prompt, max_tokens=5, temperature=0)
    assert plain["choices"][0]["text"] == model.generate(prompt, max_tokens=5, temperature=0)
    chunks = list(model.create_completion(prompt, max_tokens=5, temperature=0, stream=True))
    assert all(ch["object"] == "text_completion" for ch in chunks)
    assert "".join(ch["choices"][0]["text"] for ch in chunks) == plain["choices"][0]["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]


def test_streaming_text_equals_the_greedy_response(model):
    fields = dict(max_tokens=24, temperature=0)
    full = model.create_chat_completion(HELLO, **fields)
    stream = model.create_chat_completion(HELLO, stream=True, stream_options={"include_usage": True}, **fields)
    assert not isinstance(stream, dict)
    chunks = list(stream)
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    assert len({ch["id"] for ch in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert streamed_text(chunks) == full["choices"][0]["message"]["content"]
    # The last choice chunk has the finish reason; then the usage chunk (no choices).
    assert chunks[-2]["choices"][0]["finish_reason"] == full["choices"][0]["finish_reason"]
    assert chunks[-1]["choices"] == []
    assert counts(chunks[-1]["usage"]) == counts(full["usage"])
    # A reused session had the prompt's tokens in its cache.
    assert 0 <= chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] <= full["usage"]["prompt_tokens"]


def test_json_schema_response_format_validates(model):
    r = model.create_chat_completion(
        [{"role": "user", "content": "The largest city in Japan, as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": CITY, "strict": True}},
        temperature=0,
    )
    text = r["choices"][0]["message"]["content"]
    jsonschema.validate(json.loads(text), CITY)
    assert r["choices"][0]["finish_reason"] == "stop"


def test_required_tool_choice_gives_a_tool_call(model):
    r = model.create_chat_completion(
        [{"role": "user", "content": "What's the weather in Oslo?"}],
        tools=[WEATHER, TIME],
        tool_choice="required",
        temperature=0,
        seed=3,
    )
    c = r["choices"][0]
    assert c["finish_reason"] == "tool_calls", r
    (call,) = c["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"]["name"] in ("get_weather", "get_time")
    args = json.loads(call["function"]["arguments"])
    if call["function"]["name"] == "get_weather":
        jsonschema.validate(args, WEATHER["function"]["parameters"])
    # A named function is the one called; streamed, the call comes in a delta.
    named = {"type": "function", "function": {"name": "get_weather"}}
    chunks = list(
        model.create_chat_completion(
            [{"role": "user", "content": "What's the weather in Oslo?"}],
            tools=[WEATHER, TIME],
            tool_choice=named,
            temperature=0,
            stream=True,
        )
    )
    calls = [tc for ch in chunks for tc in ch["choices"][0]["delta"].get("tool_calls", [])]
    assert [tc["function"]["name"] for tc in calls] == ["get_weather"]
    jsonschema.validate(json.loads(calls[0]["function"]["arguments"]), WEATHER["function"]["parameters"])
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_logprobs_with_top_logprobs(model):
    r = model.create_chat_completion(
        [{"role": "user", "content": "Count to five."}], max_tokens=16, temperature=0, logprobs=True, top_logprobs=3
    )
    content = r["choices"][0]["logprobs"]["content"]
    assert len(content) == r["usage"]["completion_tokens"]
    for t in content:
        assert t["logprob"] <= 0.0
        assert isinstance(t["token"], str)
        assert isinstance(t["bytes"], list) and all(isinstance(b, int) for b in t["bytes"])
        assert len(t["top_logprobs"]) == 3
        assert t["top_logprobs"][0]["token"] == t["token"]  # greedy takes the best
        assert [a["logprob"] for a in t["top_logprobs"]] == sorted((a["logprob"] for a in t["top_logprobs"]), reverse=True)


def test_async_calls(model):
    fields = dict(max_tokens=10, temperature=0)

    async def main():
        gaps = []
        done = asyncio.Event()

        async def ticker():
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.005)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        full = await model.acreate_chat_completion(HELLO, **fields)
        stream = await model.acreate_chat_completion(HELLO, stream=True, **fields)
        chunks = [c async for c in stream]
        completion = await model.acreate_completion("The capital of France is", **fields)
        with pytest.raises(woolly.InvalidArgumentError, match="at least one message"):
            await model.acreate_chat_completion([], **fields)
        done.set()
        await tick
        return full, chunks, completion, gaps

    full, chunks, completion, gaps = asyncio.run(main())
    assert full["object"] == "chat.completion"
    assert streamed_text(chunks) == full["choices"][0]["message"]["content"]
    assert full["choices"][0]["message"]["content"] == model.create_chat_completion(HELLO, **fields)["choices"][0]["message"]["content"]
    assert completion["object"] == "text_completion"
    assert len(gaps) > 10
    assert max(gaps) < 0.5, max(gaps)


def test_cancelling_an_async_stream(model):
    async def main():
        stream = await model.acreate_chat_completion(HELLO, stream=True, max_tokens=300, temperature=0)
        n = 0
        async for _ in stream:
            n += 1
            if n == 3:
                break
        await stream.aclose()
        return n

    before = model.metrics()["cancelled"]
    assert asyncio.run(main()) == 3
    deadline = time.monotonic() + 10
    while model.metrics()["cancelled"] == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert model.metrics()["cancelled"] == before + 1


def test_engine_variant_batches_and_matches(model):
    fields = dict(max_tokens=10, temperature=0)
    alone = model.create_chat_completion(HELLO, **fields)["choices"][0]["message"]["content"]
    with woolly.Engine(model, max_concurrent=4, context_size=1024) as engine:
        before = engine.stats()["submitted"]
        r = engine.create_chat_completion(HELLO, priority="high", **fields)
        assert r["object"] == "chat.completion"
        assert r["choices"][0]["message"]["content"] == alone
        assert_usage(r["usage"], 10)
        chunks = list(engine.create_chat_completion(HELLO, stream=True, stream_options={"include_usage": True}, **fields))
        assert streamed_text(chunks) == alone
        assert counts(chunks[-1]["usage"]) == counts(r["usage"])
        c = engine.create_completion("The capital of France is", max_tokens=5, temperature=0)
        assert c["choices"][0]["text"] == model.generate("The capital of France is", max_tokens=5, temperature=0)

        async def together():
            return await asyncio.gather(*(engine.acreate_chat_completion(HELLO, **fields) for _ in range(3)))

        for reply in asyncio.run(together()):
            assert reply["choices"][0]["message"]["content"] == alone
        stats = engine.stats()
        assert stats["submitted"] == before + 6
        assert stats["completed"] >= 6
        # A tool call through the engine.
        t = engine.create_chat_completion(
            [{"role": "user", "content": "What's the weather in Oslo?"}],
            tools=[WEATHER],
            tool_choice="required",
            temperature=0,
        )
        assert t["choices"][0]["finish_reason"] == "tool_calls"
        jsonschema.validate(
            json.loads(t["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]),
            WEATHER["function"]["parameters"],
        )
        # The engine's context is the plan's: a max_tokens beyond it is an error.
        with pytest.raises(woolly.ContextOverflowError):
            engine.create_chat_completion(HELLO, max_tokens=5000)
        # The body's deadline is the request's.
        with pytest.raises(woolly.DeadlineExceededError):
            engine.create_chat_completion(STORY, max_tokens=400, deadline_ms=1)


def test_breaking_out_of_a_stream_stops_the_generation(model):
    before = model.metrics()["cancelled"]
    stream = model.create_chat_completion(STORY, stream=True, max_tokens=400, temperature=0)
    n = 0
    for _ in stream:
        n += 1
        if n == 3:
            break
    stream.close()
    assert model.metrics()["cancelled"] == before + 1
    # Dropping an unread stream cancels too; the model goes on working.
    stream = model.create_chat_completion(STORY, stream=True, max_tokens=400, temperature=0)
    next(stream)
    del stream
    deadline = time.monotonic() + 10
    while model.metrics()["cancelled"] < before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert model.metrics()["cancelled"] == before + 2
    assert model.create_chat_completion(HELLO, max_tokens=4, temperature=0)["usage"]["completion_tokens"] >= 1

    with woolly.Engine(model, context_size=1024) as engine:
        stream = engine.create_chat_completion(STORY, stream=True, max_tokens=400, temperature=0)
        for i, _ in enumerate(stream):
            if i == 2:
                break
        stream.close()
        deadline = time.monotonic() + 10
        while engine.stats()["cancelled"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.stats()["cancelled"] == 1


@pytest.mark.parametrize(
    "messages,fields,needle",
    [
        ([], {}, "messages must hold at least one message"),
        (HELLO, {"n": 2}, "n must be 1"),
        (HELLO, {"temperature": 5}, "temperature 5 is not within 0..2"),
        (HELLO, {"tool_choice": "required"}, "no tools were given"),
        (HELLO, {"max_tokens": 0}, "max_tokens must be at least 1"),
        (HELLO, {"top_logprobs": 3}, "top_logprobs needs logprobs"),
        (HELLO, {"priority": "urgent"}, "urgent"),
        ("not a list", {}, "the request body"),
        (HELLO, {"temperature": float("nan")}, "not JSON"),
        (HELLO, {"logit_hook": print}, "not JSON"),
    ],
)
def test_bad_requests_raise_clear_errors(model, messages, fields, needle):
    for stream in (False, True):
        with pytest.raises(woolly.InvalidArgumentError) as e:
            model.create_chat_completion(messages, stream=stream, **fields)
        assert isinstance(e.value, woolly.WoollyError) and isinstance(e.value, ValueError)
        assert e.value.code == "WOOLLY_ERR_INVALID_ARGUMENT"
        assert needle in str(e.value), str(e.value)


def test_engine_errors_and_completion_errors(model):
    with pytest.raises(woolly.InvalidArgumentError, match="one string"):
        model.create_completion(["a", "b"])
    with pytest.raises(woolly.InvalidArgumentError, match="n must be 1"):
        model.create_completion("a", n=2, stream=True)
    for stream in (False, True):
        with pytest.raises(woolly.ContextOverflowError, match="exceeds the context"):
            model.create_chat_completion(HELLO, max_tokens=10**6, stream=stream)
    engine = woolly.Engine(model, context_size=512)
    with pytest.raises(woolly.InvalidArgumentError, match="at least one message"):
        engine.create_chat_completion([])
    with pytest.raises(woolly.InvalidArgumentError, match="n must be 1"):
        engine.create_chat_completion(HELLO, n=2, stream=True)
    engine.close()
    with pytest.raises(woolly.InvalidArgumentError, match="closed"):
        engine.create_chat_completion(HELLO)
