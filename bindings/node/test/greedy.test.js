'use strict';
// Greedy output against llama.cpp's reference, through every way of generating.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { Model } = require('woolly');
const { assertMatchesReference, greedy, reference, referenceNames } = require('./helpers');

let model;
before(async () => {
  model = await Model.load();
});
after(() => model && model.close());


for (const name of referenceNames()) {
  test(`greedy ${name} equals the reference`, async () => {
    const ref = reference(name);
    assert.deepEqual(model.tokenize(ref.prompt), ref.prompt_ids, `${name}: prompt tokenization`);
    const r = await model.complete(ref.prompt, greedy(ref.n));
    assert.deepEqual(r.promptIds, ref.prompt_ids);
    assertMatchesReference(r, ref);
    assert.equal(r.text, model.detokenize(r.generatedIds));
  });
}

test('generate() resolves to the text of the greedy tokens', async () => {
  const ref = reference('capital');
  const text = await model.generate(ref.prompt, greedy(ref.n));
  assert.equal(typeof text, 'string');
  assert.equal(text, model.detokenize(ref.want));
});

test('chat() applies the template: same as the reference prompt', async () => {
  const ref = reference('chat_haiku');
  const messages = [{ role: 'user', content: 'Write a haiku about the sea.' }];
  assert.equal(model.applyChatTemplate(messages), ref.prompt);
  const text = await model.chat(messages, greedy(ref.n));
  assert.equal(text, model.detokenize(ref.want));
});

test('a seed makes sampling repeatable; the default samples', async () => {
  const prompt = 'Once upon a time';
  const a = await model.generate(prompt, { seed: 42, maxTokens: 12 });
  const b = await model.generate(prompt, { seed: 42, maxTokens: 12 });
  assert.equal(a, b);
  assert.ok(a.length > 0);
});

test('stop strings end the text before them', async () => {
  const ref = reference('capital');
  const r = await model.complete(ref.prompt, { temperature: 0, maxTokens: 30, stop: ['France'] });
  assert.equal(r.stopReason, 'stop_string');
  assert.equal(r.text, ' the capital of the country of ');
});

test('tokenize/detokenize round-trip', () => {
  const ids = model.tokenize('Hello, world!', { addSpecial: false });
  assert.ok(ids.length > 0 && ids.every(Number.isInteger));
  assert.equal(model.detokenize(ids), 'Hello, world!');
  assert.equal(model.tokenize('Hello, world!')[0], 2, 'BOS first by default');
});
