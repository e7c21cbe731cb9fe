'use strict';
// OpenAI-shaped requests on the default model: `createChatCompletion` and `createCompletion` on a
// Model and an Engine take the body OpenAI's JS SDK sends (snake_case) and resolve with its
// response objects; `stream: true` gives an async iterator of chunks whose text is the whole
// response's; response formats, tool calls, log probabilities; an AbortSignal or leaving a
// stream cancels; bad requests reject with WOOLLY_ERR_INVALID_ARGUMENT before anything runs.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Model, Engine, WoollyError } = require('woolly');
const { watchEventLoop } = require('./helpers');

const HELLO = [{ role: 'user', content: 'Say hello.' }];
const STORY = [{ role: 'user', content: 'Tell me a long story about a dragon.' }];
const LONG = 'The quick brown fox jumps over the lazy dog. '.repeat(150); // ~1500 tokens of prompt

const CITY = {
  type: 'object',
  additionalProperties: false,
  required: ['city', 'population'],
  properties: { city: { type: 'string', maxLength: 20 }, population: { type: 'integer', minimum: 0 } },
};
const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The current weather in a city',
    parameters: {
      type: 'object',
      additionalProperties: false,
      required: ['city'],
      properties: { city: { type: 'string', maxLength: 30 }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
    },
  },
};
const TIME = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } };

/** The subset of JSON Schema the tests' schemas use (object, string, integer, enum, bounds). */
function validate(schema, v, at = '$') {
  if (schema.enum) assert.ok(schema.enum.includes(v), `${at}: ${JSON.stringify(v)} not in ${schema.enum}`);
  switch (schema.type) {
    case 'object': {
      assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v), `${at} is an object`);
      for (const k of schema.required || []) assert.ok(k in v, `${at}.${k} is required`);
      for (const [k, x] of Object.entries(v)) {
        const sub = (schema.properties || {})[k];
        if (!sub) assert.notEqual(schema.additionalProperties, false, `${at}.${k} is not allowed`);
        else validate(sub, x, `${at}.${k}`);
      }
      break;
    }
    case 'string':
      assert.equal(typeof v, 'string', `${at} is a string`);
      if (schema.maxLength !== undefined) assert.ok([...v].length <= schema.maxLength, `${at} too long`);
      break;
    case 'integer':
      assert.ok(Number.isInteger(v), `${at} is an integer`);
      if (schema.minimum !== undefined) assert.ok(v >= schema.minimum, `${at} >= ${schema.minimum}`);
      break;
    default:
  }
}

const invalid = (needle) => (e) => {
  assert.ok(e instanceof WoollyError, `a WoollyError: ${e}`);
  assert.equal(e.code, 'WOOLLY_ERR_INVALID_ARGUMENT', e.message);
  assert.ok(e.message.includes(needle), `${JSON.stringify(needle)} in ${e.message}`);
  return true;
};
const cancelled = (e) => {
  assert.ok(e instanceof WoollyError, `a WoollyError: ${e}`);
  assert.equal(e.code, 'WOOLLY_ERR_CANCELLED', e.message);
  assert.equal(e.name, 'AbortError');
  return true;
};

const text = (chunks) => chunks.map((c) => (c.choices[0] && c.choices[0].delta.content) || '').join('');
const counts = (u) => ({ prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.total_tokens });

async function collect(iterable) {
  const out = [];
  for await (const c of iterable) out.push(c);
  return out;
}

async function eventually(check, what) {
  const until = Date.now() + 10000;
  while (!check()) {
    if (Date.now() > until) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let model;
before(async () => {
  model = await Model.load(undefined, { contextSize: 2048 });
});
after(() => model && model.close());

test('a chat completion has OpenAI shape and usage', async () => {
  const loop = watchEventLoop();
  const r = await model.createChatCompletion({ messages: HELLO, max_tokens: 12, temperature: 0 });
  const gaps = loop.stop();
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, 'gemma-3-270m-q4_k_m');
  assert.ok(Number.isInteger(r.created) && r.created > 1.6e9);
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  assert.equal(c.index, 0);
  assert.equal(c.message.role, 'assistant');
  assert.ok(typeof c.message.content === 'string' && c.message.content.length > 0);
  assert.equal(c.message.tool_calls, undefined);
  assert.ok(['stop', 'length'].includes(c.finish_reason));
  assert.equal(c.logprobs, null);
  const u = r.usage;
  assert.ok(u.prompt_tokens > 3);
  assert.ok(u.completion_tokens >= 1 && u.completion_tokens <= 12);
  assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  // Never blocking the event loop: planning and generation ran on other threads.
  assert.ok(gaps.maxGapMs < 250, `event loop stalled ${gaps.maxGapMs.toFixed(1)} ms`);
  // The body's `model` is echoed.
  const named = await model.createChatCompletion({ messages: HELLO, max_tokens: 12, temperature: 0, model: 'mine' });
  assert.equal(named.model, 'mine');
  assert.equal(named.choices[0].message.content, c.message.content);
});

test('streaming gives the text of the greedy response', async () => {
  const body = { messages: HELLO, max_tokens: 24, temperature: 0 };
  const full = await model.createChatCompletion(body);
  const stream = await model.createChatCompletion({ ...body, stream: true, stream_options: { include_usage: true } });
  const chunks = await collect(stream);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  assert.equal(text(chunks), full.choices[0].message.content);
  assert.equal(chunks.at(-2).choices[0].finish_reason, full.choices[0].finish_reason);
  assert.deepEqual(chunks.at(-1).choices, []);
  assert.deepEqual(counts(chunks.at(-1).usage), counts(full.usage));
  // The promise is iterable directly too.
  assert.equal(text(await collect(model.createChatCompletion({ ...body, stream: true }))), full.choices[0].message.content);
});

test('completions with logprobs and echo, whole and streamed', async () => {
  const prompt = 'The capital of France is';
  const r = await model.createCompletion({ prompt, max_tokens: 5, temperature: 0, logprobs: 2, echo: true });
  assert.equal(r.object, 'text_completion');
  assert.match(r.id, /^cmpl-/);
  assert.ok(r.choices[0].text.startsWith(prompt));
  const lp = r.choices[0].logprobs;
  assert.equal(lp.tokens.length, r.usage.completion_tokens);
  assert.equal(lp.token_logprobs.length, lp.tokens.length);
  assert.ok(lp.top_logprobs.every((t) => Object.keys(t).length <= 2));
  const plain = await model.createCompletion({ prompt, max_tokens: 5, temperature: 0 });
  assert.equal(plain.choices[0].text, await model.generate(prompt, { maxTokens: 5, temperature: 0 }));
  const chunks = await collect(await model.createCompletion({ prompt, max_tokens: 5, temperature: 0, stream: true }));
  assert.ok(chunks.every((c) => c.object === 'text_completion'));
  assert.equal(chunks.map((c) => c.choices[0].text).join(''), plain.choices[0].text);
});

test('a json_schema response format gives JSON that validates', async () => {
  const r = await model.createChatCompletion({
    messages: [{ role: 'user', content: 'The largest city in Japan, as JSON.' }],
    response_format: { type: 'json_schema', json_schema: { name: 'city', schema: CITY, strict: true } },
    temperature: 0,
  });
  validate(CITY, JSON.parse(r.choices[0].message.content));
  assert.equal(r.choices[0].finish_reason, 'stop');
});

test('tool_choice required gives a tool call with valid arguments', async () => {
  const messages = [{ role: 'user', content: "What's the weather in Oslo?" }];
  const r = await model.createChatCompletion({ messages, tools: [WEATHER, TIME], tool_choice: 'required', temperature: 0, seed: 3 });
  const c = r.choices[0];
  assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(r));
  assert.equal(c.message.tool_calls.length, 1);
  const call = c.message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.match(call.id, /^call_/);
  assert.ok(['get_weather', 'get_time'].includes(call.function.name));
  const args = JSON.parse(call.function.arguments);
  if (call.function.name === 'get_weather') validate(WEATHER.function.parameters, args);
  // A named function, streamed: the call comes in a delta.
  const chunks = await collect(
    await model.createChatCompletion({
      messages,
      tools: [WEATHER, TIME],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      temperature: 0,
      stream: true,
    }),
  );
  const calls = chunks.flatMap((ch) => ch.choices[0]?.delta.tool_calls || []);
  assert.deepEqual(calls.map((t) => t.function.name), ['get_weather']);
  assert.equal(calls[0].index, 0);
  validate(WEATHER.function.parameters, JSON.parse(calls[0].function.arguments));
  assert.equal(chunks.at(-1).choices[0].finish_reason, 'tool_calls');
});

test('logprobs with top_logprobs', async () => {
  const r = await model.createChatCompletion({
    messages: [{ role: 'user', content: 'Count to five.' }],
    max_tokens: 16,
    temperature: 0,
    logprobs: true,
    top_logprobs: 3,
  });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  for (const t of content) {
    assert.ok(t.logprob <= 0);
    assert.equal(typeof t.token, 'string');
    assert.ok(Array.isArray(t.bytes) && t.bytes.every(Number.isInteger));
    assert.equal(t.top_logprobs.length, 3);
    assert.equal(t.top_logprobs[0].token, t.token, 'greedy takes the best');
  }
});

test('an AbortSignal cancels: mid-stream, mid-prompt, before the start, in the body', async () => {
  const before = model.metrics().cancelled;
  const ac = new AbortController();
  const stream = await model.createChatCompletion({ messages: STORY, max_tokens: 400, temperature: 0, stream: true }, { signal: ac.signal });
  let n = 0;
  await assert.rejects(async () => {
    for await (const _ of stream) {
      if (++n === 4) ac.abort(new Error('user pressed stop'));
    }
  }, cancelled);
  assert.ok(n >= 4 && n < 40, `${n} chunks`);
  // A whole response, in the middle of its prompt (seconds of work on two cores).
  const ac2 = new AbortController();
  const reason = new Error('stop');
  setTimeout(() => ac2.abort(reason), 100);
  const t = Date.now();
  await assert.rejects(model.createCompletion({ prompt: LONG, max_tokens: 100 }, { signal: ac2.signal }), (e) => {
    cancelled(e);
    assert.equal(e.cause, reason);
    return true;
  });
  assert.ok(Date.now() - t < 3000, `${Date.now() - t} ms`);
  await assert.rejects(model.createChatCompletion({ messages: HELLO }, { signal: AbortSignal.abort() }), cancelled);
  await assert.rejects(model.createChatCompletion({ messages: HELLO, stream: true }, { signal: AbortSignal.abort() }), cancelled);
  // A `signal` in the body is the request's signal (and not part of the body).
  await assert.rejects(model.createChatCompletion({ messages: HELLO, signal: AbortSignal.abort() }), cancelled);
  await eventually(() => model.metrics().cancelled >= before + 2, 'the cancelled count');
  // The model goes on working.
  const r = await model.createChatCompletion({ messages: HELLO, max_tokens: 4, temperature: 0 });
  assert.ok(r.usage.completion_tokens >= 1);
});

test('leaving a stream early stops the generation', async () => {
  const before = model.metrics().cancelled;
  let n = 0;
  for await (const _ of await model.createChatCompletion({ messages: STORY, max_tokens: 400, temperature: 0, stream: true })) {
    if (++n === 3) break;
  }
  await eventually(() => model.metrics().cancelled === before + 1, 'the cancelled count');
  // Also when iterating the promise directly.
  n = 0;
  for await (const _ of model.createChatCompletion({ messages: STORY, max_tokens: 400, temperature: 0, stream: true })) {
    if (++n === 3) break;
  }
  await eventually(() => model.metrics().cancelled === before + 2, 'the cancelled count');
});

test('the engine runs them batched, with the same text', async () => {
  const body = { messages: HELLO, max_tokens: 10, temperature: 0 };
  const alone = (await model.createChatCompletion(body)).choices[0].message.content;
  const engine = new Engine(model, { maxConcurrent: 4, contextSize: 1024 });
  try {
    const submitted = engine.stats().submitted;
    const r = await engine.createChatCompletion({ ...body, priority: 'high' });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.content, alone);
    const chunks = await collect(await engine.createChatCompletion({ ...body, stream: true, stream_options: { include_usage: true } }));
    assert.equal(text(chunks), alone);
    assert.deepEqual(counts(chunks.at(-1).usage), counts(r.usage));
    const c = await engine.createCompletion({ prompt: 'The capital of France is', max_tokens: 5, temperature: 0 });
    assert.equal(c.choices[0].text, await model.generate('The capital of France is', { maxTokens: 5, temperature: 0 }));
    const together = await Promise.all([1, 2, 3].map(() => engine.createChatCompletion(body)));
    for (const x of together) assert.equal(x.choices[0].message.content, alone);
    assert.equal(engine.stats().submitted, submitted + 6);
    const t = await engine.createChatCompletion({
      messages: [{ role: 'user', content: "What's the weather in Oslo?" }],
      tools: [WEATHER],
      tool_choice: 'required',
      temperature: 0,
    });
    assert.equal(t.choices[0].finish_reason, 'tool_calls');
    validate(WEATHER.function.parameters, JSON.parse(t.choices[0].message.tool_calls[0].function.arguments));
    // Leaving a stream, and a signal, cancel engine requests too.
    let n = 0;
    for await (const _ of await engine.createChatCompletion({ messages: STORY, max_tokens: 400, temperature: 0, stream: true })) {
      if (++n === 3) break;
    }
    await eventually(() => engine.stats().cancelled === 1, "the engine's cancelled count");
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(engine.createChatCompletion({ messages: STORY, max_tokens: 400, temperature: 0 }, { signal: ac.signal }), cancelled);
    // Errors: as from a model, and the engine's own.
    await assert.rejects(engine.createChatCompletion({ messages: [] }), invalid('at least one message'));
    await assert.rejects(engine.createChatCompletion({ messages: HELLO, n: 2, stream: true }), invalid('n must be 1'));
    await assert.rejects(engine.createChatCompletion({ messages: HELLO, max_tokens: 5000 }), (e) => e.code === 'WOOLLY_ERR_CONTEXT_OVERFLOW');
    // The body's deadline is the request's.
    await assert.rejects(
      engine.createChatCompletion({ messages: STORY, max_tokens: 400, deadline_ms: 1 }),
      (e) => e.code === 'WOOLLY_ERR_DEADLINE_EXCEEDED',
    );
  } finally {
    await engine.close();
  }
  await assert.rejects(engine.createChatCompletion(body), invalid('closed'));
});

test('bad requests reject with clear errors before anything runs', async () => {
  const cases = [
    [{ messages: [] }, 'messages must hold at least one message'],
    [{ messages: HELLO, n: 2 }, 'n must be 1'],
    [{ messages: HELLO, temperature: 5 }, 'temperature 5 is not within 0..2'],
    [{ messages: HELLO, tool_choice: 'required' }, 'no tools were given'],
    [{ messages: HELLO, top_logprobs: 3 }, 'top_logprobs needs logprobs'],
    [{ messages: HELLO, max_tokens: 0 }, 'max_tokens must be at least 1'],
    [{ messages: HELLO, priority: 'urgent' }, 'urgent'],
    [{ messages: 'not a list' }, 'the request body'],
    [{ messages: HELLO, temperature: NaN }, 'JSON cannot hold'],
    [{ messages: HELLO, seed: 2n ** 70n }, 'beyond what JSON numbers hold'],
  ];
  for (const [body, needle] of cases) {
    for (const stream of [false, true]) {
      await assert.rejects(model.createChatCompletion({ ...body, stream }), invalid(needle), JSON.stringify({ needle, stream }));
    }
  }
  await assert.rejects(model.createChatCompletion('hi'), invalid('must be an object'));
  await assert.rejects(model.createChatCompletion(HELLO), invalid('must be an object'));
  await assert.rejects(model.createChatCompletion({ messages: HELLO }, { signal: 1 }), invalid('AbortSignal'));
  await assert.rejects(model.createCompletion({ prompt: ['a', 'b'] }), invalid('one string'));
  for (const stream of [false, true]) {
    await assert.rejects(model.createChatCompletion({ messages: HELLO, max_tokens: 100000, stream }), (e) => {
      assert.equal(e.code, 'WOOLLY_ERR_CONTEXT_OVERFLOW');
      assert.match(e.message, /exceeds the context/);
      return true;
    });
  }
});
