'use strict';
// Memory: budgets that reject what does not fit (with the figures), estimates, reports, preload
// strategies, the KV cache's precision, and a ModelCache that evicts idle models but never one in
// use (a Model object holds its model until close(), so these tests do not depend on the GC).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const woolly = require('woolly');
const { Model, ModelCache, WoollyError, codes } = woolly;
const { tinyModel } = require('./helpers');

const SMALL_CONTEXT = 256; // tiny models with small sessions: a model is much bigger than a session
const tinyOptions = { contextSize: SMALL_CONTEXT, threads: 2 };

const code = (c) => (e) => {
  assert.ok(e instanceof WoollyError, `a WoollyError: ${e}`);
  assert.equal(e.code, c, `${e.code}: ${e.message}`);
  return true;
};

const insufficient = (e) => {
  code(codes.INSUFFICIENT_MEMORY)(e);
  assert.equal(typeof e.required, 'number');
  assert.equal(typeof e.available, 'number');
  assert.ok(e.required > e.available, `required ${e.required} > available ${e.available}`);
  assert.equal(e.budgeted, true);
  assert.match(e.message, /MiB/);
  return true;
};

/** [model bytes, session bytes] of `file` by the estimate. */
async function parts(file) {
  const est = await woolly.estimate(file, { contextSize: SMALL_CONTEXT });
  const model = est.weights_bytes + est.overhead_bytes;
  const session = est.kv_cache_bytes + est.scratch_bytes;
  assert.ok(model > 0 && session > 0);
  assert.equal(est.total_bytes, model + session);
  return [model, session];
}

// ---- budgets, estimates, reports --------------------------------------------------------------

test('a budget smaller than the model rejects with WOOLLY_ERR_INSUFFICIENT_MEMORY and the figures', async () => {
  const est = await woolly.estimate();
  assert.ok(est.weights_bytes > 100 * 2 ** 20, 'the 253 MB default model');
  for (const memoryBudget of [Math.floor(est.weights_bytes / 2), '100MB', BigInt(100 * 2 ** 20)]) {
    await assert.rejects(Model.load({ memoryBudget }), (e) => insufficient(e) && e.required === est.total_bytes);
  }
});

test('a budget that fits loads, and the model reports it', async () => {
  const est = await woolly.estimate();
  const m = await Model.load(undefined, { memoryBudget: est.total_bytes });
  try {
    const r = m.memoryReport();
    assert.equal(r.budget_bytes, est.total_bytes);
    assert.deepEqual(r.estimate, est);
    assert.equal(r.charged_bytes, est.weights_bytes + est.overhead_bytes);
    assert.ok(r.charged_bytes < r.account_held_bytes && r.account_held_bytes <= est.total_bytes);
    assert.equal(typeof (await m.generate('Hello', { maxTokens: 2, temperature: 0 })), 'string');
  } finally {
    m.close();
  }
});

test('estimate() follows the context and checks its arguments', async () => {
  const small = await woolly.estimate({ contextSize: 256 });
  const large = await woolly.estimate(undefined, { contextSize: 2048 });
  for (const k of ['weights_bytes', 'overhead_bytes', 'kv_cache_bytes', 'scratch_bytes', 'context_size', 'batch_size', 'total_bytes']) {
    assert.equal(typeof small[k], 'number', k);
  }
  assert.equal(small.context_size, 256);
  assert.equal(large.context_size, 2048);
  assert.equal(large.kv_cache_bytes, 8 * small.kv_cache_bytes);
  assert.equal(small.weights_bytes, large.weights_bytes);
  const tiny = await woolly.estimate(tinyModel(), { contextSize: 256 });
  assert.ok(tiny.total_bytes < small.total_bytes);
  await assert.rejects(woolly.estimate('/nonexistent/model.gguf'), code(codes.IO));
  await assert.rejects(woolly.estimate({ contextSise: 1 }), code(codes.INVALID_ARGUMENT));
  await assert.rejects(woolly.estimate({ progress: () => true }), code(codes.INVALID_ARGUMENT));
  await assert.rejects(woolly.estimate({ preload: 'eager' }), code(codes.INVALID_ARGUMENT));
});

test('memoryReport() has its keys and this process', () => {
  const r = woolly.memoryReport();
  for (const k of ['total_bytes', 'available_bytes', 'reserve_bytes', 'pressure_threshold', 'under_pressure',
    'budget_bytes', 'headroom_bytes', 'page_size', 'huge_page_size', 'process_rss_bytes', 'process_peak_rss_bytes']) {
    assert.ok(k in r, `missing ${k}`);
  }
  assert.ok(r.process_rss_bytes > 0);
  assert.ok(r.total_bytes >= r.available_bytes && r.available_bytes > 0);
  assert.equal(r.budget_bytes, null);
  assert.equal(r.pressure_threshold, 0.85);
  const b = woolly.memoryReport({ memoryBudget: '1GB', memoryReserve: 2 ** 20, pressureThreshold: 0.5 });
  assert.equal(b.budget_bytes, 2 ** 30);
  assert.equal(b.reserve_bytes, 2 ** 20);
  assert.equal(b.pressure_threshold, 0.5);
  assert.ok(b.headroom_bytes <= 2 ** 30);
});

test('bad memory options are WOOLLY_ERR_INVALID_ARGUMENT', async () => {
  const bad = [
    { memoryBudget: '12 parsecs' },
    { memoryBudget: -1 },
    { memoryBudget: 1.5 },
    { memoryBudget: true },
    { memoryReserve: 'lots' },
    { pressureThreshold: 1.5 },
    { pressureThreshold: 0 },
    { pressureThreshold: 'high' },
    { memory_budget: 1 },
  ];
  for (const o of bad) {
    assert.throws(() => woolly.memoryReport(o), code(codes.INVALID_ARGUMENT), JSON.stringify(o));
    assert.throws(() => new ModelCache(o), code(codes.INVALID_ARGUMENT), JSON.stringify(o));
    await assert.rejects(Model.load(tinyModel(), o), code(codes.INVALID_ARGUMENT), JSON.stringify(o));
  }
});

test('model.memoryReport() has its keys', async () => {
  const m = await Model.load(tinyModel(), tinyOptions);
  try {
    const r = m.memoryReport();
    for (const k of ['estimate', 'charged_bytes', 'account_held_bytes', 'headroom_bytes', 'budget_bytes', 'reserve_bytes',
      'available_bytes', 'under_pressure', 'file_bytes', 'file_resident_bytes', 'repacked_bytes', 'locked', 'preload',
      'process_rss_bytes']) {
      assert.ok(k in r, `missing ${k}`);
    }
    assert.ok(r.process_rss_bytes > 0);
    assert.equal(r.file_bytes, m.info().file_size);
    assert.equal(r.locked, false);
    assert.equal(m.isLocked, false);
    assert.deepEqual(r.preload, m.preloadProgress());
  } finally {
    m.close();
  }
  assert.throws(() => m.memoryReport(), code(codes.INVALID_ARGUMENT));
  assert.throws(() => m.isLocked, code(codes.INVALID_ARGUMENT));
});

// ---- load options ------------------------------------------------------------------------------

test('every preload strategy loads (and the booleans still do)', async () => {
  for (const preload of ['lazy', 'none', 'sequential', 'critical', 'full', 'full_blocking', true, false]) {
    const m = await Model.load(tinyModel(), { ...tinyOptions, preload });
    try {
      await m.waitPreloaded();
      const p = m.preloadProgress();
      assert.deepEqual(Object.keys(p).sort(), ['done_bytes', 'finished', 'total_bytes']);
      assert.equal(p.finished, true, String(preload));
      // (The whole file, or for the full strategies what is still read from it after repacking.)
      assert.ok(p.done_bytes >= 0 && p.done_bytes <= p.total_bytes && p.total_bytes <= m.info().file_size);
      if (['sequential', 'full', 'full_blocking', true].includes(preload)) {
        assert.equal(p.done_bytes, p.total_bytes, String(preload));
      }
      assert.equal(typeof (await m.generate('Hello', { maxTokens: 2, temperature: 0 })), 'string');
    } finally {
      m.close();
    }
  }
  await assert.rejects(Model.load(tinyModel(), { preload: 'eager' }), code(codes.INVALID_ARGUMENT));
  await assert.rejects(Model.load(tinyModel(), { preload: 1 }), code(codes.INVALID_ARGUMENT));
});

test('the default model preloads in the background', async () => {
  const m = await Model.load({ preload: 'full' });
  try {
    await m.waitPreloaded();
    const p = m.preloadProgress();
    assert.ok(p.finished && p.done_bytes === p.total_bytes && p.total_bytes > 0, JSON.stringify(p));
    assert.ok(m.memoryReport().file_resident_bytes > 0);
  } finally {
    m.close();
  }
});

test('mlock is a request, not a requirement', async () => {
  const m = await Model.load(tinyModel(), { ...tinyOptions, mlock: true });
  try {
    assert.equal(typeof m.isLocked, 'boolean');
    assert.equal(m.memoryReport().locked, m.isLocked);
    assert.equal(typeof (await m.generate('Hello', { maxTokens: 2, temperature: 0 })), 'string');
  } finally {
    m.close();
  }
});

test("kvPrecision 'f32' works and takes more memory; a bad name is rejected", async () => {
  const f16 = await Model.load(tinyModel(), tinyOptions);
  const f32 = await Model.load(tinyModel(), { ...tinyOptions, kvPrecision: 'f32' });
  try {
    const session = (m) => m.memoryReport().account_held_bytes - m.memoryReport().charged_bytes;
    assert.ok(session(f32) > session(f16), `${session(f32)} > ${session(f16)}`);
    const a = await f16.complete('Once upon a time', { maxTokens: 8, temperature: 0 });
    const b = await f32.complete('Once upon a time', { maxTokens: 8, temperature: 0 });
    assert.deepEqual(a.promptIds, b.promptIds);
    assert.ok(b.generatedIds.length >= 1);
  } finally {
    f16.close();
    f32.close();
  }
  await assert.rejects(Model.load(tinyModel(), { kvPrecision: 'f8' }), code(codes.INVALID_ARGUMENT));
  await assert.rejects(new ModelCache().load('x', tinyModel(), { kvPrecision: 'F32' }), code(codes.INVALID_ARGUMENT));
});

// ---- the model cache ---------------------------------------------------------------------------

test('a cache keeps the model in use and evicts it once closed', async () => {
  const file = tinyModel();
  const [model, session] = await parts(file);
  // Room for one model with its session, and half of another.
  const cache = new ModelCache({ memoryBudget: Math.floor(((model + session) * 3) / 2) });
  const a = await cache.load('a', file, tinyOptions);
  assert.ok(a instanceof Model);
  assert.equal(cache.report().models[0].in_use, true);
  await assert.rejects(cache.load('b', file, tinyOptions), insufficient);
  assert.deepEqual(cache.ids(), ['a']);
  assert.equal(typeof (await a.generate('Hello', { maxTokens: 2, temperature: 0 })), 'string');

  a.close();
  assert.equal(cache.report().models[0].in_use, false);
  const b = await cache.load('b', file, tinyOptions);
  assert.deepEqual(cache.ids(), ['b']);
  assert.equal(cache.report().evictions, 1);
  assert.equal(cache.get('a'), null);
  assert.equal(typeof (await b.generate('Hello', { maxTokens: 2, temperature: 0 })), 'string');
  b.close();
});

test('a cache evicts the older idle model and keeps the one in use', async () => {
  const file = tinyModel();
  const [model, session] = await parts(file);
  const cache = new ModelCache({ memoryBudget: Math.floor(((model + session) * 5) / 2) });
  const a = await cache.load('a', file, tinyOptions);
  const b = await cache.load('b', file, tinyOptions);
  assert.deepEqual(cache.ids(), ['b', 'a']); // most recently used first
  // Loading "b" again while it is open shares its sessions: nothing new is charged.
  const held = cache.report().held_bytes;
  const again = await cache.load('b', file, tinyOptions);
  assert.equal(cache.report().held_bytes, held);
  again.close();
  assert.equal(cache.report().models.find((m) => m.id === 'b').in_use, true, 'b is still open');

  const a2 = cache.get('a'); // "a" is now the most recently used, and open twice
  assert.ok(a2 instanceof Model);
  assert.equal(cache.report().held_bytes, held, 'get shares the open sessions');
  b.close();
  const c = await cache.load('c', file, tinyOptions);
  assert.deepEqual([...cache.ids()].sort(), ['a', 'c']);
  assert.equal(cache.report().evictions, 1);
  assert.equal(typeof (await a.generate('Hello', { maxTokens: 2, temperature: 0 })), 'string');

  // Both in use: "d" does not fit and nothing is evicted.
  await assert.rejects(cache.load('d', file, tinyOptions), insufficient);
  assert.deepEqual([...cache.ids()].sort(), ['a', 'c']);

  // A pinned model stays even when idle.
  cache.pin('a');
  a.close();
  a2.close();
  c.close();
  const d = await cache.load('d', file, tinyOptions);
  assert.deepEqual([...cache.ids()].sort(), ['a', 'd']);
  cache.pin('a', false);
  assert.throws(() => cache.pin('zzz'), code(codes.INVALID_ARGUMENT));
  assert.throws(() => cache.pin('a', 'yes'), code(codes.INVALID_ARGUMENT));

  const r = cache.report();
  for (const k of ['models', 'evictions', 'held_bytes', 'headroom_bytes', 'budget_bytes', 'reserve_bytes',
    'available_bytes', 'total_bytes', 'under_pressure']) {
    assert.ok(k in r, `missing ${k}`);
  }
  assert.deepEqual(Object.fromEntries(r.models.map((m) => [m.id, m.in_use])), { a: false, d: true });
  assert.ok(r.models.every((m) => m.path === file));
  assert.ok(r.held_bytes <= r.budget_bytes);
  assert.ok(Array.isArray(cache.relievePressure()));
  d.close();
});

test('cache get, unload, swap, cancel and argument checks', async () => {
  const file = tinyModel();
  const other = tinyModel('tiny-qwen2-mixed.gguf');
  const cache = new ModelCache();
  const chat = await cache.load('chat', file, tinyOptions);
  const got = cache.get('chat');
  assert.ok(got instanceof Model);
  assert.equal(got.info().path, chat.info().path);
  assert.equal(typeof (await got.generate('Hi', { maxTokens: 2, temperature: 0 })), 'string');
  assert.equal(cache.get('nothing'), null);

  // With no Model object open, get opens a session again (with the load's options).
  const [, session] = await parts(file);
  const held = cache.report().held_bytes;
  got.close();
  assert.equal(cache.report().held_bytes, held, 'chat is still open');
  chat.close();
  assert.equal(cache.report().held_bytes, held - session);
  const reopened = cache.get('chat');
  assert.equal(cache.report().held_bytes, held);
  assert.equal(reopened.info().contextSize, SMALL_CONTEXT);
  assert.equal(typeof (await reopened.generate('Hi', { maxTokens: 2, temperature: 0 })), 'string');
  reopened.close();

  // The same id from another file swaps the model; the old object keeps working.
  const old = await cache.load('chat', file, tinyOptions);
  const swapped = await cache.load('chat', other, tinyOptions);
  assert.equal(swapped.info().architecture, 'qwen2');
  assert.notEqual(old.info().architecture, 'qwen2');
  assert.ok(old.tokenize('hello').length > 0);
  const now = cache.get('chat');
  assert.equal(now.info().architecture, 'qwen2');

  assert.equal(cache.unload('chat'), true);
  assert.equal(cache.unload('chat'), false);
  assert.equal(cache.get('chat'), null);
  assert.deepEqual(cache.ids(), []);
  for (const m of [old, swapped, now]) m.close();

  // (The default model: progress events arrive asynchronously, and a tiny model's load could
  // finish before the first one is seen.)
  const seen = [];
  await assert.rejects(
    cache.load('p', { progress: (f) => { seen.push(f); return false; } }),
    code(codes.CANCELLED),
  );
  assert.ok(seen.length > 0);
  assert.deepEqual(cache.ids(), []);
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(cache.load('q', file, { signal: ac.signal }), (e) => e.name === 'AbortError');

  const dflt = await cache.load('default', { contextSize: SMALL_CONTEXT });
  assert.equal(dflt.info().architecture, 'gemma3');
  dflt.close();

  await assert.rejects(cache.load('', file), code(codes.INVALID_ARGUMENT));
  await assert.rejects(cache.load(5, file), code(codes.INVALID_ARGUMENT));
  await assert.rejects(cache.load('missing', `${file}.absent`), code(codes.IO));
  // The cache's budget applies to its models: a per-load one is refused, not ignored.
  await assert.rejects(cache.load('x', file, { memoryBudget: '1GB' }), code(codes.INVALID_ARGUMENT));
  assert.throws(() => cache.get(null), code(codes.INVALID_ARGUMENT));
});

test('cache.get() throws WOOLLY_ERR_INSUFFICIENT_MEMORY (with the figures) when its session does not fit', async () => {
  const file = tinyModel();
  const [model, session] = await parts(file);
  // Two models, one session, and a little more.
  const cache = new ModelCache({ memoryBudget: 2 * model + session + Math.floor(session / 4) });
  const a = await cache.load('a', file, tinyOptions);
  a.close(); // idle: "a" keeps its model but no session
  const b = await cache.load('b', file, tinyOptions);
  assert.deepEqual([...cache.ids()].sort(), ['a', 'b']);
  assert.throws(() => cache.get('a'), (e) => insufficient(e) && e.required === session);
  b.close();
  const again = cache.get('a');
  assert.ok(again instanceof Model);
  again.close();
});
