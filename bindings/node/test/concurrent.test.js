'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Model } = require('woolly');
const { assertMatchesReference, greedy, reference } = require('./helpers');

let model;
before(async () => {
  model = await Model.load();
});
after(() => model && model.close());

test('two concurrent generations both equal the reference', async () => {
  const a = reference('capital');
  const b = reference('count');
  const [ra, rb] = await Promise.all([
    model.complete(a.prompt, greedy(a.n)),
    model.complete(b.prompt, greedy(b.n)),
  ]);
  assertMatchesReference(ra, a);
  assertMatchesReference(rb, b);
});

test('the same prompt twice at once gives the same tokens', async () => {
  const ref = reference('code_fib');
  const [x, y] = await Promise.all([
    model.complete(ref.prompt, greedy(ref.n)),
    model.complete(ref.prompt, greedy(ref.n)),
  ]);
  assertMatchesReference(x, ref);
  assertMatchesReference(y, ref);
});

test('a stream, a generation and a cancelled one at once', async () => {
  const a = reference('capital');
  const b = reference('story');
  const ac = new AbortController();
  const doomed = assert.rejects(
    model.generate('Once upon a time', { maxTokens: 500, ignoreEos: true, signal: ac.signal }),
    { code: 'WOOLLY_ERR_CANCELLED' },
  );
  setTimeout(() => ac.abort(), 100);
  const streamed = (async () => {
    let s = '';
    for await (const p of model.stream(a.prompt, greedy(a.n))) s += p;
    return s;
  })();
  const [text, rb] = await Promise.all([streamed, model.complete(b.prompt, greedy(b.n))]);
  await doomed;
  assert.equal(text, model.detokenize(a.want));
  assertMatchesReference(rb, b);
});
