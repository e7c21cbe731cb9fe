'use strict';
// Process-wide metrics (Prometheus text and JSON) after a generation on the default model, and the
// doctor, which runs off the event loop.

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const os = require('node:os');
const woolly = require('woolly');
const { tinyModel, watchEventLoop } = require('./helpers');

// A sample line of the text format 0.0.4: name, optional labels, value (+Inf, NaN included).
const SAMPLE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [-+0-9.eEinfINa]+$/;
const TYPE = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/;

let model;
before(async () => {
  model = await woolly.Model.load();
});
after(() => model && model.close());

test('metricsPrometheus() after a generation', async () => {
  await model.generate('Hello', { maxTokens: 4, temperature: 0, ignoreEos: true });
  const text = woolly.metricsPrometheus();
  assert.ok(text.endsWith('\n'));
  const lines = text.split('\n').slice(0, -1);
  const types = new Map();
  for (const line of lines.filter((l) => l.startsWith('# TYPE'))) {
    const m = TYPE.exec(line);
    assert.ok(m, line);
    types.set(m[1], m[2]);
  }
  assert.equal(types.get('woolly_generated_tokens_total'), 'counter');
  assert.equal(types.get('woolly_time_to_first_token_seconds'), 'histogram');
  const samples = lines.filter((l) => !l.startsWith('#'));
  assert.ok(samples.length > 0);
  for (const line of samples) {
    assert.match(line, SAMPLE);
    const name = /^[a-zA-Z0-9_:]+/.exec(line)[0];
    assert.ok(types.has(name) || types.has(name.replace(/_(bucket|sum|count)$/, '')), `${line}: no # TYPE line`);
  }
  const generated = samples.filter((l) => l.startsWith('woolly_generated_tokens_total{model='));
  assert.ok(generated.length > 0);
  assert.ok(Math.max(...generated.map((l) => Number(l.split(' ').pop()))) >= 4);
  assert.match(woolly.PROMETHEUS_CONTENT_TYPE, /^text\/plain; version=0\.0\.4/);
});

test('metrics() has the keys the core gives', async () => {
  await model.generate('Hello', { maxTokens: 2, temperature: 0, ignoreEos: true });
  const m = woolly.metrics();
  assert.deepEqual(Object.keys(m).sort(), ['gpu', 'metrics', 'models', 'time_unix_ms']);
  assert.ok(m.time_unix_ms > 1.6e12);
  const fam = m.metrics.woolly_generated_tokens_total;
  assert.equal(fam.type, 'counter');
  assert.ok(fam.series.every((s) => 'labels' in s && 'value' in s));
  const mine = model.metrics();
  const ours = m.models.find((x) => x.generated_tokens === mine.generated_tokens);
  assert.ok(ours, JSON.stringify(m.models));
  assert.deepEqual(Object.keys(ours).sort(), [...Object.keys(mine), 'model'].sort());
  assert.ok(m.gpu === null || 'available' in m.gpu);
});

test('doctor({ measure: false }) has its five keys and the logical cores', async () => {
  const heard = [];
  const r = await woolly.doctor({ measure: false, onProgress: (f, msg) => heard.push([f, msg]) });
  assert.deepEqual(Object.keys(r).sort(), ['cpu', 'gpu', 'inference', 'memory', 'recommendations']);
  const parallelism = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  assert.ok(r.cpu.logical_cores >= 1 && r.cpu.logical_cores <= parallelism, `${r.cpu.logical_cores} vs ${parallelism}`);
  assert.equal(r.cpu.online_processors, os.cpus().length);
  assert.ok('skipped' in r.inference);
  assert.ok(heard.length >= 2 && heard[0][0] === 0 && heard.at(-1)[0] === 1);
  assert.ok(heard.every(([, msg]) => typeof msg === 'string'));
});

test('doctor() options are checked and a throwing onProgress rejects', async () => {
  await assert.rejects(woolly.doctor({ measure: 'yes' }), { code: 'WOOLLY_ERR_INVALID_ARGUMENT' });
  await assert.rejects(woolly.doctor({ on_progress: () => {} }), { code: 'WOOLLY_ERR_INVALID_ARGUMENT' });
  await assert.rejects(
    woolly.doctor({
      measure: false,
      onProgress: () => {
        throw new Error('stop');
      },
    }),
    /stop/,
  );
});

test('doctor() measures off the event loop (a 1 ms interval keeps ticking)', async () => {
  // A tiny model keeps the measurement short; the point is that the JS thread stays free.
  await new Promise((r) => setTimeout(r, 20));
  const w = watchEventLoop();
  const fractions = [];
  const r = await woolly.doctor({ model: tinyModel(), onProgress: (f) => fractions.push(f) });
  const loop = w.stop();
  console.log(`doctor: max gap ${loop.maxGapMs.toFixed(1)} ms over ${loop.ticks} ticks; ${r.inference.elapsed_ms?.toFixed(0)} ms`);
  assert.equal(r.inference.error, undefined, JSON.stringify(r.inference));
  const measured = r.inference.batches.filter((b) => 'tok_s' in b);
  assert.ok(measured.length > 0);
  assert.ok(measured.every((b) => b.tok_s > 0), JSON.stringify(r.inference.batches));
  assert.ok(fractions.length > 3 && fractions.at(-1) === 1);
  assert.ok(loop.ticks > 10, `the interval ran ${loop.ticks} times`);
  // Far above scheduling noise with the measuring threads on both cores, far below a blocked loop.
  assert.ok(loop.maxGapMs < 250, `event loop stalled ${loop.maxGapMs.toFixed(1)} ms`);
});
