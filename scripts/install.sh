#!/usr/bin/env bash
# make install PREFIX=...: the C library, its header and the CMake package.
set -euo pipefail
prefix=${1:?usage: install.sh PREFIX}
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}
lib="$root/target/release/libwoolly.so"
[ -f "$lib" ] || { echo "install: $lib is missing; run make build first" >&2; exit 1; }
mkdir -p "$prefix/lib/cmake/Woolly" "$prefix/include"
install -m 755 "$lib" "$prefix/lib/libwoolly.so.$version"
ln -sf "libwoolly.so.$version" "$prefix/lib/libwoolly.so.$major"
ln -sf "libwoolly.so.$major" "$prefix/lib/libwoolly.so"
install -m 644 "$root/target/release/libwoolly.a" "$prefix/lib/libwoolly.a"
install -m 644 "$root/include/woolly.h" "$prefix/include/woolly.h"
for f in WoollyConfig WoollyConfigVersion; do
  sed -e "s/@VERSION@/$version/g" -e "s/@MAJOR@/$major/g" -e "s/@MINOR@/$minor/g" \
    "$root/cmake/$f.cmake.in" > "$prefix/lib/cmake/Woolly/$f.cmake"
done
echo "installed Woolly $version into $prefix"
