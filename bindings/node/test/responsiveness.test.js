'use strict';
// Loading and generating never block the event loop: a 1 ms interval keeps ticking. The gap bound
// is far above scheduling noise on a loaded two-core machine (the worker threads compete with the
// JS thread for the cores) and far below the work itself (the 831-token prompt alone takes
// seconds there), so it fails only when native work runs on the JS thread.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { Model } = require('woolly');
const { reference, watchEventLoop } = require('./helpers');

const MAX_GAP_MS = 250;

test('a 1 ms setInterval never stalls more than 250 ms during load and generation', async () => {
  // Let the test runner's start-up settle before measuring.
  await new Promise((r) => setTimeout(r, 50));
  const w = watchEventLoop();
  const model = await Model.load(undefined, { progress: () => {} });
  const load = w.stop();

  const w2 = watchEventLoop();
  await model.generate(reference('long_inventory').prompt, { maxTokens: 32, temperature: 0 });
  let pieces = 0;
  for await (const _ of model.stream('Once upon a time', { maxTokens: 48 })) pieces++;
  await Promise.all([
    model.generate('The capital of France is', { maxTokens: 24 }),
    model.generate('1, 2, 3, 4, 5,', { maxTokens: 24 }),
  ]);
  const gen = w2.stop();
  model.close();

  console.log(`load: max gap ${load.maxGapMs.toFixed(1)} ms over ${load.ticks} ticks; generation: max gap ${gen.maxGapMs.toFixed(1)} ms over ${gen.ticks} ticks, ${pieces} pieces`);
  assert.ok(load.ticks > 10, `the interval ran ${load.ticks} times during the load`);
  assert.ok(gen.ticks > 100, `the interval ran ${gen.ticks} times during generation`);
  assert.ok(load.maxGapMs < MAX_GAP_MS, `event loop stalled ${load.maxGapMs.toFixed(1)} ms during load`);
  assert.ok(gen.maxGapMs < MAX_GAP_MS, `event loop stalled ${gen.maxGapMs.toFixed(1)} ms during generation`);
});
