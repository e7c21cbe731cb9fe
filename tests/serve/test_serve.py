"""`woolly serve` as a client sees it: the official `openai` package and curl against a real
server process on 127.0.0.1, serving the default model.

Chat, streaming, tools, response_format, logprobs, completions, errors (400, 401, 404, 413,
429), a client that disconnects (its request is cancelled), and 16 concurrent streaming
clients for a bounded time, every response complete."""

import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.request

import jsonschema
import openai
import pytest

WOOLLY = os.environ.get("WOOLLY_BIN", os.path.join(os.path.dirname(__file__), "../../target/release/woolly"))


class Server:
    def __init__(self, *args):
        self.proc = subprocess.Popen([WOOLLY, "serve", "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://[\d.:]+)", line)
        assert m, f"no address in {line!r}; stderr: {self.proc.stderr.read() if self.proc.poll() is not None else ''}"
        self.url = m.group(1)
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def get(self, path, headers=None):
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    def post(self, path, body: bytes, headers=None):
        req = urllib.request.Request(self.url + path, data=body, method="POST",
                                     headers={"content-type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()


@pytest.fixture(scope="module")
def server():
    s = Server("--parallel", "8", "--queue", "64", "--max-body", "65536", "-t", "2")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["city"],
                   "properties": {"city": {"type": "string", "maxLength": 30},
                                  "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}}}}


def test_models_health_and_metrics(server, client):
    models = client.models.list()
    assert len(models.data) == 1 and models.data[0].id.startswith("gemma-3-270m")
    status, _, body = server.get("/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, headers, body = server.get("/metrics")
    assert status == 200 and "text/plain" in headers["content-type"]
    assert "woolly_engine_requests_total" in body


def test_chat_completion(client):
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Say hello."}],
                                       max_tokens=12, temperature=0)
    c = r.choices[0]
    assert c.message.role == "assistant" and c.message.content
    assert c.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 3 and 1 <= r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streaming_equals_the_whole_answer(client):
    kw = dict(model="m", messages=[{"role": "user", "content": "Count to five."}], max_tokens=16, temperature=0)
    whole = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_response_format_json_schema(client):
    schema = {"type": "object", "additionalProperties": False, "required": ["city", "population"],
              "properties": {"city": {"type": "string", "maxLength": 20},
                             "population": {"type": "integer", "minimum": 0}}}
    for temperature in (0, 0.9):
        r = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "The largest city in Japan, as JSON."}],
            response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}},
            temperature=temperature, seed=5)
        jsonschema.validate(json.loads(r.choices[0].message.content), schema)


def test_tool_calls_and_results(client):
    r = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "What's the weather in Oslo?"}],
        tools=[WEATHER], tool_choice="required", temperature=0)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls"
    call = c.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, WEATHER["function"]["parameters"])
    # Streaming gives the same call in a delta.
    chunks = list(client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "What's the weather in Oslo?"}],
        tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0, stream=True))
    calls = [tc for ch in chunks if ch.choices for tc in (ch.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and json.loads(calls[0].function.arguments) == args
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # The result goes back as a tool message and the model answers in text.
    r = client.chat.completions.create(model="m", temperature=0, max_tokens=30, tools=[WEATHER], tool_choice="none",
        messages=[{"role": "user", "content": "What's the weather in Oslo?"},
                  {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                  {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 3, "sky": "snow"}'}])
    assert r.choices[0].message.content and not r.choices[0].message.tool_calls


def test_logprobs(client):
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=6,
                                       temperature=0, logprobs=True, top_logprobs=4)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 4
        assert t.top_logprobs[0].token == t.token


def test_completions(client):
    r = client.completions.create(model="m", prompt="The capital of France is", max_tokens=6, temperature=0, logprobs=2)
    c = r.choices[0]
    assert c.text and len(c.logprobs.tokens) == r.usage.completion_tokens
    chunks = list(client.completions.create(model="m", prompt="The capital of France is", max_tokens=6, temperature=0, stream=True))
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == c.text


def test_errors_have_openai_shape(server, client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="m", messages=[], max_tokens=4)
    assert e.value.status_code == 400 and e.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                       response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"not": {}}}})
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], max_tokens=100000)
    assert e.value.code == "context_length_exceeded"
    for body in (b"{not json", b"[]", b'{"messages": 3}', "{\"messages\": [{\"role\": \"user\", \"content\": \"\\ud800\"}]}".encode()):
        status, _, text = server.post("/v1/chat/completions", body)
        assert status == 400, (body, status, text)
        assert json.loads(text)["error"]["message"]
    status, _, text = server.post("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "' + b"a" * 70000 + b'"}]}')
    assert status == 413 and json.loads(text)["error"]["type"] == "invalid_request_error"
    status, _, text = server.get("/v1/nothing")
    assert status == 404 and json.loads(text)["error"]
    # curl, as a shell user sends it.
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", server.url + "/v1/chat/completions", "-H", "content-type: application/json",
                          "-d", '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4,"temperature":0}'],
                         capture_output=True, text=True, check=True).stdout
    body, code = out.rsplit("\n", 1)
    assert code == "200" and json.loads(body)["choices"][0]["message"]["content"]


def test_api_key_and_a_full_queue():
    s = Server("--api-key", "s3cret", "--parallel", "1", "--queue", "1", "-t", "2")
    try:
        bad = openai.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        good = openai.OpenAI(base_url=s.url + "/v1", api_key="s3cret", max_retries=0, timeout=120)
        assert good.models.list().data
        # One runs, one waits, the rest are refused with 429 and Retry-After.
        results = []
        def one():
            try:
                good.chat.completions.create(model="m", messages=[{"role": "user", "content": "Tell a long story."}],
                                             max_tokens=48, temperature=0)
                results.append(200)
            except openai.RateLimitError as e:
                assert e.response.headers.get("retry-after")
                results.append(429)
        threads = [threading.Thread(target=one) for _ in range(6)]
        for t in threads:
            t.start()
            time.sleep(0.05)
        for t in threads:
            t.join()
        assert 429 in results and 200 in results, results
    finally:
        s.stop()


def metric(server, name, **labels):
    _, _, text = server.get("/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_client_that_disconnects_cancels_its_request(server):
    before = metric(server, "woolly_engine_requests_total", outcome="cancelled")
    body = json.dumps({"messages": [{"role": "user", "content": "Write a very long story."}],
                       "max_tokens": 1500, "temperature": 0, "stream": True}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    got = b""
    while got.count(b"data:") < 3:
        got += sock.recv(4096)
    sock.close()
    deadline = time.time() + 30
    while metric(server, "woolly_engine_requests_total", outcome="cancelled") <= before:
        assert time.time() < deadline, "the request went on after its client left"
        time.sleep(0.2)
    # Also one that leaves while its long prompt is read, before any token.
    before = metric(server, "woolly_engine_requests_total", outcome="cancelled")
    body = json.dumps({"messages": [{"role": "user", "content": "word " * 3000}], "max_tokens": 10}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    time.sleep(0.5)
    sock.close()
    deadline = time.time() + 30
    while metric(server, "woolly_engine_requests_total", outcome="cancelled") <= before:
        assert time.time() < deadline, "the prompt went on being read after its client left"
        time.sleep(0.2)


def test_sixteen_concurrent_streaming_clients(server):
    """16 clients stream for a bounded time (about 20 s); every response arrives complete."""
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)
    stop_at = time.time() + 20
    done, errors = [], []

    def worker(i):
        n = 0
        while time.time() < stop_at or n == 0:
            try:
                chunks = list(client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": f"Tell me fact number {i}."}],
                    max_tokens=24, temperature=0.7, seed=i * 100 + n, stream=True,
                    stream_options={"include_usage": True}))
                finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
                assert len(finals) == 1 and chunks[-1].usage is not None
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                assert chunks[-1].usage.completion_tokens >= 1 and (text or finals[0].choices[0].finish_reason == "stop")
                done.append(i)
                n += 1
            except Exception as e:  # noqa: BLE001 -- every failure is reported below
                errors.append(repr(e))
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors[:3]
    assert sorted(set(done)) == list(range(16))
