#!/usr/bin/env bash
# The Python package as a user gets it: a wheel built by maturin, installed into a fresh virtual
# environment, tested there with pytest (the tests import the installed `woolly`, not the source).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
build="$root/build/python"
rm -rf "$build/wheels" "$build/venv"
mkdir -p "$build"

# The build tools, in their own environment (kept between runs).
if [ ! -x "$build/tools/bin/maturin" ]; then
  "$py" -m venv "$build/tools"
  "$build/tools/bin/pip" install -q --disable-pip-version-check "maturin>=1.7,<2"
fi
(cd "$root/bindings/python" && "$build/tools/bin/maturin" build --release --quiet -o "$build/wheels")

"$py" -m venv "$build/venv"
"$build/venv/bin/pip" install -q --disable-pip-version-check "$build"/wheels/woolly-*.whl "pytest>=7" "jsonschema>=4"
cd "$root/bindings/python/tests"
"$build/venv/bin/python" -c 'import woolly, sys; assert "site-packages" in woolly.__file__, woolly.__file__; print("testing", woolly.__file__)'
"$build/venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
