'use strict';
// Power and heat through the process-wide manager: profiles round-trip through powerState(),
// adaptive follows a fake battery, a fake thermal tree drives throttling with hysteresis, and the
// opt-in governor call reports refusal. Every test that changes the profile sets it back.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const woolly = require('woolly');

function tree(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'woolly-power-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function write(root, rel, text) {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
}

async function waitFor(cond, timeoutMs = 60000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return cond();
}

test('profiles round-trip through powerState()', (t) => {
  t.after(() => woolly.setPowerProfile('balanced'));
  assert.deepEqual([...woolly.POWER_PROFILES], ['balanced', 'high_performance', 'power_saver', 'adaptive']);
  for (const name of woolly.POWER_PROFILES) {
    woolly.setPowerProfile(name);
    assert.equal(woolly.powerState().profile, name);
  }
  woolly.setPowerProfile('power_saver');
  const k = woolly.powerState().knobs;
  assert.equal(k.profile, 'power_saver');
  assert.equal(k.max_batch_size, 4);
  assert.ok(k.max_threads >= 1);
  woolly.setPowerProfile('balanced');
  const s = woolly.powerState();
  assert.equal(s.knobs.max_threads, 0);
  assert.deepEqual(Object.keys(s).sort(), [
    'knobs',
    'profile',
    'source',
    'temperature_c',
    'thermal_monitor',
    'throttle_events',
    'throttled',
  ]);
  assert.throws(() => woolly.setPowerProfile('turbo'), { code: 'WOOLLY_ERR_INVALID_ARGUMENT' });
  assert.equal(woolly.powerState().profile, 'balanced');
});

test('adaptive follows a fake battery', (t) => {
  const root = tree(t);
  t.after(() => {
    woolly._setPowerRoot();
    woolly.setPowerProfile('balanced');
  });
  write(root, 'sys/class/power_supply/AC/type', 'Mains\n');
  write(root, 'sys/class/power_supply/AC/online', '1\n');
  write(root, 'sys/class/power_supply/BAT0/type', 'Battery\n');
  write(root, 'sys/class/power_supply/BAT0/status', 'Charging\n');
  write(root, 'sys/class/power_supply/BAT0/capacity', '64\n');
  woolly._setPowerRoot(root);
  woolly.setPowerProfile('adaptive');
  let s = woolly.powerState();
  assert.deepEqual(s.source, { kind: 'ac' });
  assert.equal(s.knobs.profile, 'balanced');
  write(root, 'sys/class/power_supply/AC/online', '0\n');
  write(root, 'sys/class/power_supply/BAT0/status', 'Discharging\n');
  woolly._setPowerRoot(root); // forgets the cached source
  s = woolly.powerState();
  assert.deepEqual(s.source, { kind: 'battery', percent: 64 });
  assert.equal(s.profile, 'adaptive');
  assert.equal(s.knobs.profile, 'power_saver');
});

test('a fake thermal tree throttles with hysteresis', async (t) => {
  const root = tree(t);
  t.after(() => woolly.stopThermalMonitor());
  const temp = path.join(root, 'sys/class/thermal/thermal_zone0/temp');
  write(root, 'sys/class/thermal/thermal_zone0/temp', '60000\n');
  const events = woolly.powerState().throttle_events;
  woolly.startThermalMonitor({ thresholdC: 80, intervalMs: 10, sysfsRoot: root });
  assert.ok(await waitFor(() => woolly.powerState().temperature_c === 60));
  assert.equal(woolly.powerState().thermal_monitor, true);
  assert.equal(woolly.powerState().throttled, false);
  fs.writeFileSync(temp, '85000\n');
  assert.ok(await waitFor(() => woolly.powerState().throttled), 'throttled at 85 °C');
  fs.writeFileSync(temp, '77000\n');
  assert.ok(await waitFor(() => woolly.powerState().temperature_c === 77));
  assert.equal(woolly.powerState().throttled, true, 'still throttled at 77 °C (hysteresis)');
  fs.writeFileSync(temp, '70000\n');
  assert.ok(await waitFor(() => !woolly.powerState().throttled), 'restored at 70 °C');
  assert.equal(woolly.powerState().throttle_events, events + 1);
  woolly.stopThermalMonitor();
  const s = woolly.powerState();
  assert.equal(s.thermal_monitor, false);
  assert.equal(s.throttled, false);
});

test('thermal monitor options are checked', () => {
  for (const bad of [{ intervalMs: 0 }, { intervalMs: -1 }, { thresholdC: -5 }, { thresholdC: NaN }, { sysfsRoot: 3 }, { interval: 10 }]) {
    assert.throws(() => woolly.startThermalMonitor(bad), { code: 'WOOLLY_ERR_INVALID_ARGUMENT' }, JSON.stringify(bad));
  }
  assert.equal(woolly.powerState().thermal_monitor, false);
});

test('setCpuGovernor: unsupported without cpufreq, refused, or done on a fake tree', (t) => {
  const root = tree(t);
  assert.throws(() => woolly.setCpuGovernor('powersave', root), { code: 'WOOLLY_ERR_UNSUPPORTED' });
  // A directory stands in for a governor file the system refuses to write (even as root).
  const gov = path.join(root, 'sys/devices/system/cpu/cpu0/cpufreq/scaling_governor');
  fs.mkdirSync(gov, { recursive: true });
  assert.throws(() => woolly.setCpuGovernor('powersave', root), { code: 'WOOLLY_ERR_PERMISSION_DENIED' });
  fs.rmdirSync(gov);
  write(root, 'sys/devices/system/cpu/cpu0/cpufreq/scaling_governor', 'performance\n');
  write(root, 'sys/devices/system/cpu/cpu1/cpufreq/scaling_governor', 'performance\n');
  assert.equal(woolly.setCpuGovernor('powersave', root), 2);
  assert.equal(fs.readFileSync(path.join(root, 'sys/devices/system/cpu/cpu1/cpufreq/scaling_governor'), 'utf8'), 'powersave');
  assert.throws(() => woolly.setCpuGovernor('../etc', root), { code: 'WOOLLY_ERR_INVALID_ARGUMENT' });
  assert.throws(() => woolly.setCpuGovernor(42), { code: 'WOOLLY_ERR_INVALID_ARGUMENT' });
});
