'use strict';
// Every failure rejects (or throws) an Error whose `code` is the C API's status name.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const woolly = require('woolly');
const { Model, WoollyError } = woolly;

const code = (c) => (e) => {
  assert.ok(e instanceof Error, 'an Error');
  assert.ok(e instanceof WoollyError, 'a WoollyError');
  assert.equal(e.code, c, `${e.code}: ${e.message}`);
  assert.ok(e.message.length > 0);
  return true;
};

let model;
let dir;
before(async () => {
  model = await Model.load();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'woolly-node-'));
});
after(() => {
  if (model) model.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('missing file: WOOLLY_ERR_IO', async () => {
  const missing = path.join(dir, 'nope.gguf');
  await assert.rejects(Model.load(missing), (e) => code('WOOLLY_ERR_IO')(e) && e.message.includes(missing));
});

test('a directory: WOOLLY_ERR_IO', async () => {
  await assert.rejects(Model.load(dir), code('WOOLLY_ERR_IO'));
});

test('corrupt files: WOOLLY_ERR_INVALID_MODEL', async () => {
  const garbage = path.join(dir, 'garbage.gguf');
  fs.writeFileSync(garbage, Buffer.from('this is not a model, just some text that goes on for a while\n'.repeat(100)));
  await assert.rejects(Model.load(garbage), code('WOOLLY_ERR_INVALID_MODEL'));
  // A real model cut short.
  const truncated = path.join(dir, 'truncated.gguf');
  const fd = fs.openSync(model.info().path, 'r');
  const head = Buffer.alloc(1 << 20);
  fs.readSync(fd, head, 0, head.length, 0);
  fs.closeSync(fd);
  fs.writeFileSync(truncated, head);
  await assert.rejects(Model.load(truncated), code('WOOLLY_ERR_INVALID_MODEL'));
});

test('bad load arguments', async () => {
  await assert.rejects(Model.load(42), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  await assert.rejects(Model.load(''), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  await assert.rejects(Model.load(undefined, { threads: -1 }), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  await assert.rejects(Model.load(undefined, { progress: 'yes' }), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  await assert.rejects(Model.load(undefined, { contextLength: 10 }), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  await assert.rejects(Model.load(undefined, { signal: {} }), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => new Model({}), code('WOOLLY_ERR_INVALID_ARGUMENT'));
});

test('a throwing progress callback fails the load with its error', async () => {
  const boom = new Error('boom');
  await assert.rejects(Model.load(undefined, { progress: () => { throw boom; } }), (e) => e === boom);
});

test('bad generation options name the option', async () => {
  const cases = [
    [{ temperature: -1 }, 'temperature'],
    [{ temperature: NaN }, 'temperature'],
    [{ temperature: '0.5' }, 'temperature'],
    [{ topP: 0 }, 'topP'],
    [{ topP: 1.5 }, 'topP'],
    [{ minP: 2 }, 'minP'],
    [{ topK: -3 }, 'topK'],
    [{ topK: 2.5 }, 'topK'],
    [{ maxTokens: 1.5 }, 'maxTokens'],
    [{ maxTokens: -1 }, 'maxTokens'],
    [{ seed: -1 }, 'seed'],
    [{ seed: 1.5 }, 'seed'],
    [{ stop: [1] }, 'stop'],
    [{ repetitionPenalty: 0 }, 'repetitionPenalty'],
    [{ max_tokens: 5 }, 'maxTokens'],
    [{ signal: 'abort' }, 'signal'],
  ];
  for (const [options, name] of cases) {
    await assert.rejects(model.generate('Hello', options), (e) => {
      code('WOOLLY_ERR_INVALID_ARGUMENT')(e);
      assert.ok(e.message.includes(name), `${JSON.stringify(options)}: ${e.message}`);
      return true;
    });
  }
  await assert.rejects(model.generate('Hello', 'fast'), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  await assert.rejects(model.generate(null), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  await assert.rejects(model.chat([]), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  await assert.rejects(model.chat([{ role: 'user' }]), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  await assert.rejects(model.chat([{ role: ' ', content: 'hi' }]), code('WOOLLY_ERR_INVALID_ARGUMENT'));
});

test('context overflow: WOOLLY_ERR_CONTEXT_OVERFLOW', async () => {
  const small = await Model.load(undefined, { contextSize: 64 });
  await assert.rejects(small.generate('Hello', { maxTokens: 100 }), code('WOOLLY_ERR_CONTEXT_OVERFLOW'));
  small.close();
});

test('tokenizer arguments', () => {
  assert.throws(() => model.tokenize(5), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => model.detokenize('abc'), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => model.detokenize([1.5]), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => model.detokenize([-1]), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  assert.throws(() => model.detokenize([10_000_000]), code('WOOLLY_ERR_INVALID_ARGUMENT'));
});

test('a closed model refuses work', async () => {
  const m = await Model.load();
  m.close();
  assert.equal(m.closed, true);
  assert.throws(() => m.tokenize('x'), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  await assert.rejects(m.generate('x'), code('WOOLLY_ERR_INVALID_ARGUMENT'));
  assert.equal(woolly.codes.IO, 'WOOLLY_ERR_IO');
});
