#!/usr/bin/env bash
# What `make test-arm` needs to build Woolly's tests for AArch64 and run them under qemu-user:
# the Rust target, a cross linker, and qemu. Installs what is missing where it can (rustup;
# apt-get as root), and otherwise says what to install.
set -euo pipefail
rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu \
  || rustup target add aarch64-unknown-linux-gnu
need=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user-static)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps-arm: installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null; }
  else
    echo "deps-arm: install ${need[*]} (Debian/Ubuntu package names)" >&2
    exit 1
  fi
fi
