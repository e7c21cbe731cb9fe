'use strict';
// Shared by the tests: the reference outputs and the greedy comparison. The tests require
// 'woolly' the way an application does (scripts/test-node.sh makes the installed package
// resolvable), never ../index.js.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const referenceDir =
  process.env.WOOLLY_REFERENCE_DIR ||
  path.join(repoRoot, '..', 'shared', 'reference', 'gemma3-270m', 'greedy');

/** The tiny reference models (a few MB each), beside the greedy references. */
const tinyDir = path.resolve(referenceDir, '..', '..', 'tiny');

function tinyModel(name = 'tiny-llama-spm-q4_k_m.gguf') {
  const file = path.join(tinyDir, name);
  if (!fs.existsSync(file)) {
    throw new Error(`tiny model ${file} is missing (set WOOLLY_REFERENCE_DIR or check out shared/ beside the repo)`);
  }
  return file;
}

/** Greedy steps whose top-2 margin is below this may legitimately differ from llama.cpp. */
const NEAR_TIE = 0.1;

function reference(name) {
  const file = path.join(referenceDir, `${name}.json`);
  if (!fs.existsSync(file)) {
    throw new Error(`reference ${file} is missing (set WOOLLY_REFERENCE_DIR or check out shared/ beside the repo)`);
  }
  const r = JSON.parse(fs.readFileSync(file, 'utf8'));
  const tie = r.top2_margins.findIndex((m) => m < NEAR_TIE);
  const n = Math.min(tie < 0 ? r.top2_margins.length : tie, r.generated_ids.length);
  return { ...r, name, n, want: r.generated_ids.slice(0, n) };
}

function referenceNames() {
  return fs
    .readdirSync(referenceDir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .sort();
}

/** Asserts that a greedy result's ids equal the reference up to its first near-tie. */
function assertMatchesReference(result, ref) {
  assert.ok(
    result.generatedIds.length >= ref.n,
    `${ref.name}: stopped after ${result.generatedIds.length} tokens (${result.stopReason}), expected at least ${ref.n}`,
  );
  assert.deepEqual(
    result.generatedIds.slice(0, ref.n),
    ref.want,
    `${ref.name}: greedy tokens differ from llama.cpp before the first near-tie (step ${ref.n})`,
  );
}

const greedy = (maxTokens) => ({ temperature: 0, maxTokens });

/** Records the largest gap between the ticks of a 1 ms interval until stop() is called. */
function watchEventLoop() {
  let last = process.hrtime.bigint();
  let maxGap = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const now = process.hrtime.bigint();
    maxGap = Math.max(maxGap, Number(now - last) / 1e6);
    last = now;
    ticks++;
  }, 1);
  return {
    stop() {
      clearInterval(timer);
      const now = process.hrtime.bigint();
      maxGap = Math.max(maxGap, Number(now - last) / 1e6);
      return { maxGapMs: maxGap, ticks };
    },
  };
}

module.exports = {
  assertMatchesReference,
  greedy,
  reference,
  referenceNames,
  referenceDir,
  repoRoot,
  tinyDir,
  tinyModel,
  watchEventLoop,
};
