#!/usr/bin/env bash
# make leaks: the native parts of the Python and Node packages under valgrind. A driver
# (tests/leaks/driver.py, driver.js) calls into each extension a few rounds on the synthetic
# model and loads the hostile corpus; the Python suite's hostile tests run there too. Fails on a
# definite leak, or an invalid read/write or use of uninitialised memory, whose stack passes
# through Woolly's code (the interpreters' own are reported, not counted).
# Needs the installed packages of make test-python and make test-node.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/leaks"
mkdir -p "$out"
command -v valgrind >/dev/null || { echo "leaks: valgrind is not installed" >&2; exit 1; }
py="$root/build/python/venv/bin/python"
node_modules="${WOOLLY_NODE_TEST_DIR:-$root/build/node-test}/node_modules"
[ -x "$py" ] || { echo "leaks: run make test-python first (it installs the package into build/python/venv)" >&2; exit 1; }
[ -d "$node_modules/woolly" ] || { echo "leaks: run make test-node first (it installs the package into build/node-test)" >&2; exit 1; }

vg=(valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite
    --num-callers=40 --track-origins=no)
status=0

echo "== leaks: Python driver under valgrind"
PYTHONMALLOC=malloc "${vg[@]}" --log-file="$out/python-driver.log" "$py" "$root/tests/leaks/driver.py" 2
python3 "$root/scripts/valgrind_ours.py" "$out/python-driver.log" || status=1

echo "== leaks: Python hostile tests under valgrind"
(cd "$root/bindings/python/tests" && PYTHONMALLOC=malloc "${vg[@]}" --log-file="$out/python-pytest.log" \
  "$py" -m pytest -q -p no:cacheprovider test_hostile.py)
python3 "$root/scripts/valgrind_ours.py" "$out/python-pytest.log" || status=1

echo "== leaks: Node driver under valgrind"
NODE_PATH="$node_modules" "${vg[@]}" --log-file="$out/node-driver.log" \
  node --jitless "$root/tests/leaks/driver.js" 2
python3 "$root/scripts/valgrind_ours.py" "$out/node-driver.log" || status=1

[ $status -eq 0 ] && echo "make leaks: no leak or memory error of Woolly's own (logs in build/leaks)"
exit $status
