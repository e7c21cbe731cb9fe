#!/usr/bin/env bash
# The Node package's whole check, as from a fresh clone: npm install bindings/node into a scratch
# project (which builds the addon from source with @napi-rs/cli and cargo), then node --test on
# bindings/node/test/*.test.js with that project's node_modules, so the tests use the installed
# package the way an application would.
#
# Environment: WOOLLY_NODE_TEST_DIR (scratch project; default build/node-test), WOOLLY_MODEL
# (model file; default ~/.cache/woolly/models/...), WOOLLY_REFERENCE_DIR (default
# <repo>/../shared/reference/gemma3-270m/greedy).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scratch="${WOOLLY_NODE_TEST_DIR:-$repo/build/node-test}"
start=$SECONDS

command -v node >/dev/null || { echo "test-node: node is not installed (Node.js 18 or newer)" >&2; exit 1; }
command -v npm >/dev/null || { echo "test-node: npm is not installed" >&2; exit 1; }
node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' \
  || { echo "test-node: Node.js $(node --version) is too old (need 18 or newer)" >&2; exit 1; }

rm -rf "$scratch"
mkdir -p "$scratch"
cat > "$scratch/package.json" <<'JSON'
{ "name": "woolly-node-test", "version": "0.0.0", "private": true }
JSON

echo "== npm install $repo/bindings/node (builds the native addon)"
(cd "$scratch" && npm install --no-audit --no-fund --foreground-scripts "$repo/bindings/node")

# The tests must get the installed package: check what 'woolly' resolves to from there.
(cd "$scratch" && node -e '
  const w = require("woolly");
  console.log(`woolly ${w.version} from ${require.resolve("woolly")}`);
')

echo "== node --test"
cd "$scratch"
# One test file at a time: the responsiveness test measures the event loop while the CPU is ours.
status=0
NODE_PATH="$scratch/node_modules" node --test --test-concurrency=1 --test-reporter=spec \
  "$repo"/bindings/node/test/*.test.js || status=$?
echo "test-node: done in $((SECONDS - start)) s"
exit $status
