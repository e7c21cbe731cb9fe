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

test('stream() pieces join to the text generate() returns', async () => {
  const ref = reference('capital');
  const pieces = [];
  const s = model.stream(ref.prompt, greedy(24));
  for await (const piece of s) {
    assert.equal(typeof piece, 'string');
    pieces.push(piece);
  }
  assert.ok(pieces.length > 5, `expected many pieces, got ${pieces.length}`);
  const text = await model.generate(ref.prompt, greedy(24));
  assert.equal(pieces.join(''), text);
  const r = await s.result;
  assert.equal(r.text, text);
  assertMatchesReference(r, ref);
});

test('chatStream() streams the chat reply', async () => {
  const messages = [{ role: 'user', content: 'Write a haiku about the sea.' }];
  let joined = '';
  for await (const piece of model.chatStream(messages, greedy(10))) joined += piece;
  assert.equal(joined, await model.chat(messages, greedy(10)));
});

test('leaving the loop early cancels the generation; the model stays usable', async () => {
  const ref = reference('story');
  const s = model.stream(ref.prompt, { maxTokens: 200, temperature: 0 });
  let n = 0;
  for await (const _ of s) {
    if (++n === 3) break;
  }
  await assert.rejects(s.result, { code: 'WOOLLY_ERR_CANCELLED' });
  assertMatchesReference(await model.complete(ref.prompt, greedy(ref.n)), ref);
});

test('stream() errors surface on iteration', async () => {
  await assert.rejects(async () => {
    for await (const _ of model.stream('x', { temperature: -1 }));
  }, { code: 'WOOLLY_ERR_INVALID_ARGUMENT' });
  await assert.rejects(async () => {
    for await (const _ of model.stream(42));
  }, { code: 'WOOLLY_ERR_INVALID_ARGUMENT' });
});
