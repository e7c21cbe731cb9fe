'use strict';
// The hostile corpus (tests/hostile, from tools/corpus): every file rejects with a WoollyError
// carrying its status, never a crash; the harmless oddities load and generate.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Model, WoollyError } = require('woolly');

const corpus = path.resolve(__dirname, '..', '..', '..', 'tests', 'hostile');
const cases = fs
  .readFileSync(path.join(corpus, 'manifest.tsv'), 'utf8')
  .split('\n')
  .filter((l) => l && !l.startsWith('#'))
  .map((l) => l.split('\t'));

const is = (status, message, what) => (e) => {
  assert.ok(e instanceof WoollyError, `${what}: ${e}`);
  assert.equal(e.code, status, `${what}: ${e.message}`);
  assert.ok(e.message.includes(message), `${what}: ${e.message}`);
  return true;
};

test('the manifest is there', () => {
  assert.ok(cases.length >= 40, `${cases.length} cases`);
});

for (const [file, stage, status, message, what] of cases) {
  test(`${file} (${stage})`, async () => {
    const p = path.join(corpus, file);
    if (stage === 'load') {
      await assert.rejects(Model.load(p, { preload: 'lazy' }), is(status, message, what));
      return;
    }
    const model = await Model.load(p, { preload: 'lazy' });
    try {
      const messages = [{ role: 'user', content: 'the cat' }];
      if (stage === 'chat') {
        assert.throws(() => model.applyChatTemplate(messages), is(status, message, what));
        await assert.rejects(model.chat(messages, { maxTokens: 2 }), is(status, '', what));
      } else {
        model.applyChatTemplate(messages);
      }
      const out = await model.generate('the cat', { maxTokens: 4, ignoreEos: true, temperature: 0 });
      assert.equal(typeof out, 'string');
    } finally {
      model.close();
    }
  });
}
