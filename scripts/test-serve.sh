#!/usr/bin/env bash
# `woolly serve` tested as clients see it: the official `openai` package (from PyPI) and curl,
# against the release binary, in a virtual environment of its own (kept between runs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
venv="$root/build/serve-venv"
if [ ! -x "$venv/bin/pytest" ] || ! "$venv/bin/python" -c 'import openai, jsonschema' 2>/dev/null; then
  rm -rf "$venv"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "openai>=1.40,<4" "pytest>=7" "jsonschema>=4"
fi
export WOOLLY_BIN="$root/target/release/woolly"
cd "$root/tests/serve"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
