'use strict';
// Drives the native parts of the Node package for `make leaks` (run under valgrind): every call
// into the addon, on the synthetic model, a few rounds, then the hostile corpus.

const fs = require('node:fs');
const path = require('node:path');
const woolly = require('woolly');

const root = path.resolve(__dirname, '..', '..');
const MODEL = path.join(root, 'tests', 'hostile', 'synthetic-llama.gguf');
const ROUNDS = Number(process.argv[2] || 3);

async function oneRound() {
  const m = await woolly.Model.load(MODEL, { preload: 'lazy' });
  const ids = m.tokenize('the cat sat on the mat');
  if (m.detokenize(ids).trim() !== 'the cat sat on the mat') throw new Error('round trip');
  m.applyChatTemplate([{ role: 'user', content: 'hi' }]);
  await m.generate('the cat', { maxTokens: 4, ignoreEos: true, temperature: 0 });
  let i = 0;
  for await (const _ of m.stream('the cat', { maxTokens: 16, ignoreEos: true })) {
    if (++i === 3) break; // an abandoned stream
  }
  await m.chat([{ role: 'user', content: 'hi' }], { maxTokens: 2 });
  const ac = new AbortController();
  const p = m.generate('the cat', { maxTokens: 64, ignoreEos: true, signal: ac.signal });
  ac.abort();
  await p.catch(() => {});
  m.info();
  m.metrics();
  m.memoryReport();
  try {
    m.detokenize([1e9]);
  } catch (e) {
    if (!(e instanceof woolly.WoollyError)) throw e;
  }
  const e = new woolly.Engine(m, { contextSize: 64 });
  const reqs = [0, 1, 2, 3].map(() => e.generate('the cat', { maxTokens: 8, ignoreEos: true }));
  await Promise.all(reqs);
  // Closing answers the pending request (with a cancellation).
  const pending = e.generate('the cat', { maxTokens: 48, ignoreEos: true }).catch(() => 'cancelled');
  await e.close();
  await pending;
  const cache = new woolly.ModelCache();
  const c = await cache.load('s', MODEL, { preload: 'lazy' });
  cache.pin('s', true);
  cache.pin('s', false);
  c.close();
  cache.unload('s');
  m.close();
  woolly.metricsPrometheus();
  woolly.memoryReport();
}

async function hostile() {
  const corpus = path.join(root, 'tests', 'hostile');
  for (const line of fs.readFileSync(path.join(corpus, 'manifest.tsv'), 'utf8').split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const file = line.split('\t')[0];
    let m;
    try {
      m = await woolly.Model.load(path.join(corpus, file), { preload: 'lazy' });
    } catch (e) {
      if (!(e instanceof woolly.WoollyError)) throw e;
      continue;
    }
    await m.chat([{ role: 'user', content: 'hi' }], { maxTokens: 1 }).catch(() => {});
    m.close();
  }
}

(async () => {
  for (let r = 0; r < ROUNDS; r++) await oneRound();
  await hostile();
  console.log('driver.js: done');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
