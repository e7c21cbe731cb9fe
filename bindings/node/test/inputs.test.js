'use strict';
// Inputs that must not hang or mislead: a FIFO as the model (explicit, WOOLLY_MODEL, the cache)
// or among the thermal sensors, no HOME, a memory budget of 0 (no budget), thread counts above
// the CPUs (capped), and detokenized text holding a NUL byte. Each test has a timeout, so a hang
// fails instead of blocking the suite.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const woolly = require('woolly');
const { Model } = woolly;

const SYNTHETIC = path.resolve(__dirname, '../../../tests/hostile/synthetic-llama.gguf');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'woolly-node-inputs-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const opts = { timeout: 120_000 };

function mkfifo(p) {
  execFileSync('mkfifo', [p]);
}

function withEnv(vars, f) {
  const saved = {};
  for (const [k, v] of Object.entries(vars)) {
    saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  const restore = () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  return Promise.resolve().then(f).finally(restore);
}

async function refusedAsFifo(p, fifo) {
  const isFifo = (e) => {
    assert.equal(e.code, 'WOOLLY_ERR_IO', e.message);
    assert.ok(e.message.includes('FIFO') && e.message.includes(fifo), e.message);
    return true;
  };
  await assert.rejects(p === null ? Model.load() : Model.load(p), isFifo);
  await assert.rejects(p === null ? woolly.estimate() : woolly.estimate(p), isFifo);
}

test('a FIFO as the model is refused: explicit, WOOLLY_MODEL, the cache', opts, async () => {
  const fifo = path.join(dir, 'model.gguf');
  mkfifo(fifo);
  await withEnv({ WOOLLY_MODEL: undefined }, () => refusedAsFifo(fifo, fifo));
  await withEnv({ WOOLLY_MODEL: fifo }, () => refusedAsFifo(null, fifo));
  const models = path.join(dir, 'cache', 'woolly', 'models');
  fs.mkdirSync(models, { recursive: true });
  const cached = path.join(models, 'gemma-3-270m-q4_k_m.gguf');
  mkfifo(cached);
  await withEnv({ WOOLLY_MODEL: undefined, XDG_CACHE_HOME: path.join(dir, 'cache') }, () =>
    refusedAsFifo(null, cached),
  );
});

test('without HOME the error says where it looked', opts, async () => {
  await withEnv({ WOOLLY_MODEL: undefined, XDG_CACHE_HOME: undefined, HOME: undefined }, async () => {
    await assert.rejects(Model.load(), (e) => {
      assert.equal(e.code, 'WOOLLY_ERR_MODEL_NOT_FOUND', e.message);
      for (const part of ['WOOLLY_MODEL', 'XDG_CACHE_HOME', 'HOME', 'make model']) {
        assert.ok(e.message.includes(part), `${part}: ${e.message}`);
      }
      return true;
    });
  });
});

test('a memory budget of 0 means none', opts, async () => {
  const m = await Model.load(SYNTHETIC, { memoryBudget: 0 });
  try {
    await m.generate('the cat', { maxTokens: 2, temperature: 0, ignoreEos: true });
    assert.equal(m.memoryReport().budget_bytes, null);
  } finally {
    m.close();
  }
});

test('threads above the CPUs are capped', opts, async () => {
  const cpus = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  const m = await Model.load(SYNTHETIC, { threads: 1024 });
  try {
    const r = await m.complete('the cat', { maxTokens: 4, temperature: 0, ignoreEos: true });
    assert.equal(r.generatedIds.length, 4);
    const workers = woolly.metrics().metrics.woolly_worker_threads.series[0].value;
    assert.ok(workers >= 1 && workers <= cpus, `${workers} workers on ${cpus} CPUs`);
  } finally {
    m.close();
  }
  await assert.rejects(async () => Model.load(SYNTHETIC, { threads: 1025 }), { code: 'WOOLLY_ERR_INVALID_ARGUMENT' });
});

test('threadPolicy takes the names C, Python and JSON use', opts, async () => {
  let want = null;
  for (const threadPolicy of ['auto', 'interactive', 'background']) {
    const m = await Model.load(SYNTHETIC, { threadPolicy });
    try {
      const r = await m.complete('the cat', { maxTokens: 4, temperature: 0, ignoreEos: true });
      if (want === null) want = r.generatedIds;
      assert.deepEqual(r.generatedIds, want, threadPolicy);
    } finally {
      m.close();
    }
  }
  await assert.rejects(async () => Model.load(SYNTHETIC, { threadPolicy: 'Interactive' }), (e) => {
    assert.equal(e.code, 'WOOLLY_ERR_INVALID_ARGUMENT');
    assert.ok(e.message.includes('auto, interactive, background'), e.message);
    return true;
  });
  await assert.rejects(async () => Model.load(SYNTHETIC, { threadPolicy: 'auto', interactive: true }), (e) => {
    assert.equal(e.code, 'WOOLLY_ERR_INVALID_ARGUMENT');
    assert.ok(e.message.includes('threadPolicy'), e.message);
    return true;
  });
});

test('the NUL byte token detokenizes to a NUL', opts, async () => {
  const m = await Model.load(SYNTHETIC);
  try {
    assert.equal(m.detokenize([3]), '\u0000'); // <0x00>
    assert.equal(m.detokenize([3, 3]), '\u0000\u0000');
  } finally {
    m.close();
  }
});

test('a FIFO among the thermal sensors blocks nothing', opts, async () => {
  const zone = path.join(dir, 'sys', 'class', 'thermal', 'thermal_zone0');
  fs.mkdirSync(zone, { recursive: true });
  fs.writeFileSync(path.join(zone, 'temp'), '61000\n');
  const hwmon = path.join(dir, 'sys', 'class', 'hwmon', 'hwmon0');
  fs.mkdirSync(hwmon, { recursive: true });
  mkfifo(path.join(hwmon, 'temp1_input'));
  woolly.startThermalMonitor({ thresholdC: 80, intervalMs: 10, sysfsRoot: dir });
  try {
    let seen = false;
    for (let i = 0; i < 500 && !seen; i++) {
      seen = woolly.powerState().temperature_c === 61;
      if (!seen) await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(seen, JSON.stringify(woolly.powerState()));
  } finally {
    woolly.stopThermalMonitor();
  }
  assert.equal(woolly.powerState().thermal_monitor, false);
});

test('a panic on the JavaScript thread is an error and prints nothing', opts, () => {
  // A bug inside Woolly on the caller's own thread: without catch_unwind it would abort the
  // process. In a child process, so that its whole stderr can be read.
  const { spawnSync } = require('node:child_process');
  const code = `
    const w = require('woolly');
    try { w._panic('boom on the caller'); } catch (e) { console.log(e.code, e.message); }
    console.log('alive', w.version);`;
  const out = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(out.status, 0, out.stderr);
  const lines = out.stdout.split('\n');
  assert.equal(lines[0], 'WOOLLY_ERR_INTERNAL internal error: boom on the caller', out.stdout);
  assert.match(lines[1], /^alive /);
  assert.doesNotMatch(out.stderr, /panicked|boom/, out.stderr);
});
