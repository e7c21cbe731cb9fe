'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const woolly = require('woolly');

let model;
before(async () => {
  model = await woolly.Model.load();
});
after(() => model && model.close());

const hasKeys = (obj, keys) => {
  assert.equal(typeof obj, 'object');
  for (const k of keys) assert.ok(k in obj, `missing key ${k} in ${Object.keys(obj)}`);
};

test('hardware()', () => {
  const hw = woolly.hardware();
  hasKeys(hw, ['arch', 'logical_cores', 'physical_cores', 'caches', 'simd']);
  assert.ok(hw.logical_cores >= 1);
});

test('diagnostics()', () => {
  const d = woolly.diagnostics();
  hasKeys(d, ['woolly_version', 'build', 'hardware', 'kernels', 'thread_policy', 'process', 'default_model']);
  assert.equal(d.woolly_version, woolly.version);
  assert.equal(d.model, undefined);
  const dm = woolly.diagnostics(model);
  hasKeys(dm.model, ['path', 'architecture', 'n_layer', 'n_vocab', 'metrics']);
  assert.equal(dm.model.architecture, 'gemma3');
});

test('model.metrics() counts generations', async () => {
  const before = model.metrics();
  hasKeys(before, ['generations', 'failed', 'cancelled', 'prompt_tokens', 'generated_tokens', 'generation_tok_s']);
  await model.generate('Hello', { maxTokens: 4, temperature: 0, ignoreEos: true });
  const m = model.metrics();
  assert.equal(m.generations, before.generations + 1);
  assert.equal(m.generated_tokens, before.generated_tokens + 4);
});

test('model.info()', () => {
  const i = model.info();
  hasKeys(i, ['path', 'hparams', 'chatTemplate', 'loadMs', 'contextSize']);
  assert.equal(i.hparams.n_vocab, 262144);
  assert.equal(i.path, woolly.defaultModelPath() === null ? i.path : i.path);
  assert.equal(typeof woolly.version, 'string');
});
