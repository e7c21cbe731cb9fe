#!/usr/bin/env node
// Builds the native addon (woolly.node) from source: `napi build --release` from @napi-rs/cli,
// which runs cargo. This is the package's `install` script, so `npm install <path to
// bindings/node>` compiles Woolly on the machine it installs on.
//
// Environment: WOOLLY_NODE_DEBUG=1 builds without --release; CARGO_TARGET_DIR and the other
// cargo variables are honoured as usual.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');

function fail(message) {
  console.error(`\nwoolly: ${message}\n`);
  process.exit(1);
}

const cargo = process.env.CARGO || 'cargo';
const probe = spawnSync(cargo, ['--version'], { encoding: 'utf8' });
if (probe.error || probe.status !== 0) {
  fail(
    `cannot run \`${cargo}\` (${probe.error ? probe.error.code || probe.error.message : `exit ${probe.status}`}).\n` +
      'The woolly package compiles its native addon from Rust source when it is installed, so it needs\n' +
      'the Rust toolchain (cargo 1.89 or newer): install it from https://rustup.rs (or run `make deps`\n' +
      'in the Woolly repository), open a new shell so that cargo is on PATH, and run npm install again.',
  );
}

if (!fs.existsSync(path.join(root, '..', '..', 'woolly-core', 'Cargo.toml'))) {
  fail(
    `woolly-core was not found next to this package (${path.join(root, '..', '..', 'woolly-core')}).\n` +
      'Install the package from a Woolly checkout: npm install <woolly>/bindings/node (a folder link,\n' +
      'not a packed copy: the Rust crate builds against the repository\'s woolly-core).',
  );
}

// The CLI's package exports hide its files: find them from its package.json's `bin`.
function findCli() {
  try {
    const pkg = require.resolve('@napi-rs/cli/package.json', { paths: [root] });
    const bin = require(pkg).bin;
    return path.join(path.dirname(pkg), typeof bin === 'string' ? bin : bin.napi);
  } catch {
    return null;
  }
}

let cli = findCli();
if (!cli) {
  // `npm install <folder>` links the folder without installing the folder's own dependencies
  // first: fetch them into it (build tools only, no scripts), then look again.
  console.error('woolly: installing the build tools (@napi-rs/cli) into the package folder');
  const npmCli = process.env.npm_execpath;
  // package-lock.json pins the build tools' whole tree to versions known to install: a fresh
  // resolution of @napi-rs/cli's ranges can name a release the registry (or a mirror of it)
  // does not serve yet, as happened with @inquirer/checkbox.
  const locked = fs.existsSync(path.join(root, 'package-lock.json'));
  const npmArgs = locked
    ? ['ci', '--ignore-scripts', '--no-audit', '--no-fund']
    : ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--no-package-lock'];
  const r = npmCli && npmCli.endsWith('.js')
    ? spawnSync(process.execPath, [npmCli, ...npmArgs], { cwd: root, stdio: 'inherit' })
    : spawnSync('npm', npmArgs, { cwd: root, stdio: 'inherit' });
  if (r.error || r.status !== 0) {
    fail('cannot install @napi-rs/cli (a dependency of this package); run npm install in bindings/node.');
  }
  cli = findCli();
  if (!cli) fail('cannot find @napi-rs/cli after installing it; run npm install in bindings/node.');
}

const args = [cli, 'build', '--cwd', root, '--dts', 'native.d.ts'];
if (process.env.WOOLLY_NODE_DEBUG !== '1') args.push('--release');
console.error(`woolly: building the native addon (${process.env.WOOLLY_NODE_DEBUG === '1' ? 'debug' : 'release'}); the first build takes a few minutes`);
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (r.error) fail(`cannot run napi build: ${r.error.message}`);
if (r.status !== 0) fail(`napi build failed (exit ${r.status}); see the cargo output above.`);
if (!fs.existsSync(path.join(root, 'woolly.node'))) fail('napi build finished but woolly.node is missing.');
