'use strict';
// AbortSignal cancels loads and generations, also in the middle of a long prompt. A cancelled
// operation rejects with an Error whose code is WOOLLY_ERR_CANCELLED and whose name is
// 'AbortError' (the signal's reason is its `cause`).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Model } = require('woolly');
const { assertMatchesReference, greedy, reference } = require('./helpers');

let model;
before(async () => {
  model = await Model.load();
});
after(() => model && model.close());

const cancelled = (e) => {
  assert.ok(e instanceof Error);
  assert.equal(e.code, 'WOOLLY_ERR_CANCELLED');
  assert.equal(e.name, 'AbortError');
  return true;
};

async function stillGreedy() {
  const ref = reference('capital');
  assertMatchesReference(await model.complete(ref.prompt, greedy(ref.n)), ref);
}

test('abort mid-generation (stream)', async () => {
  const ac = new AbortController();
  const pieces = [];
  await assert.rejects(async () => {
    for await (const piece of model.stream('Once upon a time', { maxTokens: 400, signal: ac.signal })) {
      pieces.push(piece);
      if (pieces.length === 4) ac.abort(new Error('user pressed stop'));
    }
  }, cancelled);
  assert.ok(pieces.length >= 4 && pieces.length < 40, `${pieces.length} pieces`);
  await stillGreedy();
});

test('abort mid-generation (generate) keeps the reason as cause', async () => {
  const ac = new AbortController();
  const reason = new Error('stop');
  setTimeout(() => ac.abort(reason), 150);
  const t = Date.now();
  await assert.rejects(model.generate('Once upon a time', { maxTokens: 2000, ignoreEos: true, signal: ac.signal }), (e) => {
    cancelled(e);
    assert.equal(e.cause, reason);
    return true;
  });
  assert.ok(Date.now() - t < 3000);
  await stillGreedy();
});

test('abort in the middle of a long prompt', async () => {
  const long = reference('long_inventory').prompt.repeat(4); // ~3300 tokens: seconds of prompt work
  const ac = new AbortController();
  const t = Date.now();
  setTimeout(() => ac.abort(), 100);
  await assert.rejects(model.generate(long, { maxTokens: 8, signal: ac.signal }), cancelled);
  const ms = Date.now() - t;
  assert.ok(ms < 1500, `cancellation took ${ms} ms`);
  await stillGreedy();
});

test('an already-aborted signal rejects at once', async () => {
  await assert.rejects(model.generate('hi', { signal: AbortSignal.abort() }), cancelled);
  await assert.rejects(Model.load(undefined, { signal: AbortSignal.abort() }), cancelled);
});

test('a load can be aborted, or cancelled by the progress callback', async () => {
  const ac = new AbortController();
  await assert.rejects(
    Model.load(undefined, {
      signal: ac.signal,
      progress: (p) => {
        if (p > 0) ac.abort();
      },
    }),
    cancelled,
  );
  await assert.rejects(Model.load(undefined, { progress: (p) => p < 0.25 }), { code: 'WOOLLY_ERR_CANCELLED' });
  const seen = [];
  const m = await Model.load(undefined, { progress: (p) => seen.push(p) });
  assert.ok(seen.length >= 2 && seen.at(-1) === 1, `progress ${seen}`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1]);
  m.close();
});

test('an abort after completion is harmless', async () => {
  const ac = new AbortController();
  const text = await model.generate('Hello', { maxTokens: 3, signal: ac.signal });
  ac.abort();
  assert.equal(typeof text, 'string');
  await stillGreedy();
});
