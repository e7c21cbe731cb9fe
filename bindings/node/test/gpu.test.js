'use strict';
// GPU options and the CUDA devices report: devices or why there are none, loads with
// gpuLayers 'auto' and 0, bad values refused before any load, and onDeviceOom echoed with the
// placement.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const woolly = require('woolly');

test('cudaDevices() lists devices or says why not', () => {
  const d = woolly.cudaDevices();
  assert.deepEqual(Object.keys(d).sort(), ['available', 'devices', 'driver_version', 'reason']);
  if (d.available) {
    assert.equal(d.reason, null);
    for (const dev of d.devices) {
      assert.ok(dev.name && dev.free_bytes > 0 && dev.free_bytes <= dev.total_bytes);
      assert.match(dev.compute_capability, /^\d+\.\d+$/);
      assert.equal(dev.warp_size, 32);
    }
  } else {
    assert.deepEqual(d.devices, []);
    assert.ok(typeof d.reason === 'string' && d.reason.length > 5, d.reason);
  }
  assert.equal(woolly.diagnostics().cuda.available, d.available);
});

test("gpuLayers 'auto' and 0 load, and agree without a GPU", async () => {
  const opts = { maxTokens: 6, temperature: 0, ignoreEos: true };
  const auto = await woolly.Model.load(undefined, { gpuLayers: 'auto', splitMode: 'layer' });
  const cpu = await woolly.Model.load(undefined, { gpuLayers: 0, splitMode: 'none', gpuMarginBytes: '2GiB' });
  try {
    const a = await auto.generate('The capital of France is', opts);
    const c = await cpu.generate('The capital of France is', opts);
    if (!woolly.cudaDevices().available) assert.deepEqual(a, c);
  } finally {
    auto.close();
    cpu.close();
  }
});

test('bad GPU options are refused', async () => {
  for (const bad of [
    { gpuLayers: -1 },
    { gpuLayers: 'all' },
    { gpuLayers: 1.5 },
    { mainGpu: -1 },
    { splitMode: 'row' },
    { gpuMarginBytes: -5 },
    { onDeviceOom: 'abort' },
    { onDeviceOom: 0 },
  ]) {
    await assert.rejects(woolly.Model.load(undefined, bad), (e) => e.code === 'WOOLLY_ERR_INVALID_ARGUMENT', JSON.stringify(bad));
  }
});

test('onDeviceOom is echoed with the placement', async () => {
  const d = await woolly.Model.load(undefined, { gpuLayers: 0 });
  const e = await woolly.Model.load(undefined, { gpuLayers: 0, onDeviceOom: 'error' });
  try {
    assert.equal(d.info().placement.on_device_oom, 'cpu');
    assert.equal(e.info().placement.on_device_oom, 'error');
  } finally {
    d.close();
    e.close();
  }
});
