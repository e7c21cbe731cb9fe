#!/usr/bin/env python3
"""Generates the quantization fixtures in woolly-core/tests/fixtures/quants/.

The oracle is gguf-py (the `gguf` package from llama.cpp's repository), version 0.19.0:
`gguf.quants.dequantize` for every weight type, `gguf.quants.quantize` for Q8_0, F16 and BF16
activations, and `gguf.GGUFReader` for the tensors of the tiny reference models. gguf-py has no
Q8_1 or Q8_K quantizer, so for those two this script carries a NumPy transcription of GGML's
`quantize_row_q8_1_ref` / `quantize_row_q8_K_ref` (marked "numpy-ref" in the manifest).

To rerun (the output is deterministic: fixed seed, no timestamps):

    python3 -m venv /tmp/qvenv
    /tmp/qvenv/bin/pip install gguf==0.19.0 numpy
    /tmp/qvenv/bin/python scripts/gen_quant_fixtures.py

Run it from the repository root (or anywhere: paths are relative to this file). The tiny models
are read from ../shared/reference/tiny/ beside the repository; the model part is skipped with a
warning when they are missing. Then run `cargo test -p woolly-core --test quants`.

Files written (all little-endian):
  manifest.json          what each file holds (read by woolly-core/tests/quants.rs)
  deq_<TYPE>.bin         random raw blocks of <TYPE>
  deq_<TYPE>.f32         gguf-py's dequantization of them
  act_input.f32          activation rows fed to quantize_row
  act_<TYPE>.bin         the expected quantized activations (F32's are act_input.f32 itself)
  model_<TYPE>.f32       gguf-py's dequantization of the first rows of one tensor of <TYPE>
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES

SEED = 20261124
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "woolly-core" / "tests" / "fixtures" / "quants"
TINY = ROOT.parent / "shared" / "reference" / "tiny"

# Byte offsets of the f16 scale fields (d, m, dmin) in each block, overwritten with sane values.
SCALE_FIELDS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}

# Elements per dequantization case.
DEQ_ELEMENTS = {
    T.F32: 512,
    T.F16: 1024,
    T.BF16: 1024,
    T.Q4_0: 1024,
    T.Q4_1: 1024,
    T.Q5_0: 1024,
    T.Q5_1: 1024,
    T.Q8_0: 1024,
    T.Q2_K: 2048,
    T.Q3_K: 2048,
    T.Q4_K: 2048,
    T.Q5_K: 2048,
    T.Q6_K: 2048,
}


def sane_f16(rng: np.random.Generator, count: int) -> np.ndarray:
    """Finite f16 scales: random sign, magnitude 1e-5 .. 3 (so some are f16 subnormals), a few 0."""
    mag = 10.0 ** rng.uniform(-5.0, 0.5, count)
    sign = np.where(rng.random(count) < 0.5, -1.0, 1.0)
    v = (sign * mag).astype(np.float16)
    v[rng.random(count) < 0.03] = 0
    return v


def random_bits16(rng: np.random.Generator, count: int, exp_mask: int) -> np.ndarray:
    """Random 16-bit patterns whose exponent is not all ones (no Inf/NaN)."""
    bits = rng.integers(0, 1 << 16, count, dtype=np.uint32).astype(np.uint16)
    bad = (bits & exp_mask) == exp_mask
    bits[bad] &= np.uint16(0xBFFF)  # clear the exponent's top bit
    assert not np.any((bits & exp_mask) == exp_mask)
    return bits


def dequant_case(rng: np.random.Generator, qtype: T) -> bytes:
    n = DEQ_ELEMENTS[qtype]
    if qtype == T.F32:
        v = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n)).astype(np.float32)
        v[:4] = [0.0, -0.0, 1e-40, -3.4e38]  # zeros, a subnormal, a huge value
        return v.tobytes()
    if qtype == T.F16:
        return random_bits16(rng, n, 0x7C00).tobytes()
    if qtype == T.BF16:
        return random_bits16(rng, n, 0x7F80).tobytes()
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    nb = n // block_size
    raw = rng.integers(0, 256, (nb, type_size), dtype=np.uint16).astype(np.uint8)
    for off in SCALE_FIELDS[qtype]:
        raw[:, off : off + 2] = sane_f16(rng, nb).view(np.uint8).reshape(nb, 2)
    return raw.tobytes()


def dequantize(raw: bytes, qtype: T, n: int) -> np.ndarray:
    """gguf-py's dequantization of one row of n elements."""
    data = np.frombuffer(raw, dtype=np.uint8).reshape(1, -1).copy()
    out = gguf.quants.dequantize(data, qtype)
    out = np.asarray(out, dtype=np.float32).reshape(-1)
    assert out.size == n, (qtype, out.size, n)
    assert np.all(np.isfinite(out)), qtype
    return out


# ------------------------------------------------------------------------------------------------
# Activations
# ------------------------------------------------------------------------------------------------


def activation_input(rng: np.random.Generator) -> np.ndarray:
    """1280 values: five Q8_K blocks, forty Q8_0 blocks, with edge cases placed on purpose."""
    x = np.zeros(1280, dtype=np.float32)
    # Q8_K block 0 (elements 0..256), Q8_0 blocks 0..8:
    #   Q8_0 block 0 all zeros;
    #   Q8_0 block 1 has amax 127 (so d = 1, id = 1) and exact halves: round-half-away-from-zero
    #   for Q8_0/Q8_1; 127 is also the Q8_K block's max, so iscale = -1 and halves round to even;
    x[32:64] = rng.integers(-126, 126, 32) + 0.5
    x[32] = 127.0
    x[33:38] = [0.5, -0.5, 1.5, -2.5, 2.5]
    #   Q8_0 block 2 tiny (d is an f16 subnormal);
    x[64:96] = rng.standard_normal(32) * 1e-6
    #   Q8_0 block 3 whose largest magnitude is negative;
    x[96:128] = rng.standard_normal(32)
    x[100] = -9.0
    #   the rest ordinary.
    x[128:256] = rng.standard_normal(128) * 5.0
    # Q8_K block 1: two elements of equal magnitude and opposite sign; the first (-50) sets the
    # sign of the scale.
    x[256:512] = rng.standard_normal(256) * 3.0
    x[300] = -50.0
    x[400] = 50.0
    # Q8_K blocks 2 and 3: small and large ranges.
    x[512:768] = rng.standard_normal(256) * 1e-3
    x[768:1024] = rng.standard_normal(256) * 100.0
    # Q8_K block 4 (1024..1280): all zeros.
    return x.astype(np.float32)


def q8_1_ref(x: np.ndarray) -> bytes:
    """quantize_row_q8_1_ref: as Q8_0, plus s = f16(sum(q) * d) with the f32 d."""
    blocks = x.reshape(-1, 32)
    q8_0 = np.asarray(gguf.quants.quantize(blocks, T.Q8_0)).reshape(-1, 34)
    d32 = (np.abs(blocks).max(axis=1) / np.float32(127)).astype(np.float32)
    qs = q8_0[:, 2:].view(np.int8).astype(np.int32)
    s = (qs.sum(axis=1).astype(np.float32) * d32).astype(np.float32).astype(np.float16)
    out = np.concatenate([q8_0[:, :2], s.view(np.uint8).reshape(-1, 2), q8_0[:, 2:]], axis=1)
    return out.astype(np.uint8).tobytes()


def q8_k_ref(x: np.ndarray) -> bytes:
    """quantize_row_q8_K_ref, element by element in float32."""
    out = bytearray()
    for b in x.reshape(-1, 256):
        amax, mx = np.float32(0), np.float32(0)
        for v in b:  # the first element with the largest |x| wins
            if abs(v) > amax:
                amax, mx = abs(v), v
        if amax == 0:
            out += bytes(292)
            continue
        iscale = np.float32(np.float32(-127.0) / mx)
        prod = (iscale * b).astype(np.float32)
        q = np.minimum(127, np.rint(prod).astype(np.int32)).astype(np.int8)  # rint: half to even
        bsums = q.astype(np.int32).reshape(16, 16).sum(axis=1).astype(np.int16)
        d = np.float32(np.float32(1.0) / iscale)
        out += np.array([d], dtype="<f4").tobytes() + q.tobytes() + bsums.astype("<i2").tobytes()
    return bytes(out)


def quantize_cases(x: np.ndarray) -> list[tuple[T, bytes, str]]:
    cases = []
    q8_0 = np.asarray(gguf.quants.quantize(x.reshape(1, -1), T.Q8_0)).astype(np.uint8)
    cases.append((T.Q8_0, q8_0.tobytes(), "gguf"))
    cases.append((T.Q8_1, q8_1_ref(x), "numpy-ref"))
    cases.append((T.Q8_K, q8_k_ref(x), "numpy-ref"))
    f16 = np.asarray(gguf.quants.quantize(x, T.F16)).astype(np.float16)
    cases.append((T.F16, f16.tobytes(), "gguf"))
    bf16 = np.asarray(gguf.quants.quantize(x.reshape(1, -1), T.BF16)).astype(np.uint8)
    cases.append((T.BF16, bf16.tobytes(), "gguf"))
    cases.append((T.F32, x.tobytes(), "identity"))
    return cases


# ------------------------------------------------------------------------------------------------
# Tiny models
# ------------------------------------------------------------------------------------------------


def model_cases() -> list[dict]:
    if not TINY.is_dir():
        print(f"warning: {TINY} is missing, no model fixtures written", file=sys.stderr)
        return []
    seen: set[T] = set()
    cases = []
    for path in sorted(TINY.glob("*.gguf")):
        reader = gguf.GGUFReader(str(path))
        for t in reader.tensors:
            qtype = T(t.tensor_type)
            if qtype in seen:
                continue
            seen.add(qtype)
            ne0 = int(t.shape[0])
            total = int(np.prod([int(s) for s in t.shape]))
            rows = min(2, total // ne0)
            block_size, type_size = GGML_QUANT_SIZES[qtype]
            row_bytes = ne0 // block_size * type_size
            raw = np.asarray(t.data).reshape(-1).view(np.uint8)[: rows * row_bytes]
            want = gguf.quants.dequantize(raw.reshape(rows, row_bytes).copy(), qtype)
            want = np.asarray(want, dtype=np.float32).reshape(-1)
            assert want.size == rows * ne0
            name = f"model_{qtype.name}.f32"
            (OUT / name).write_bytes(want.astype("<f4").tobytes())
            cases.append(
                {
                    "model": path.name,
                    "tensor": t.name,
                    "type": qtype.name,
                    "row_elements": ne0,
                    "rows": rows,
                    "expected": name,
                }
            )
    return cases


def main() -> None:
    rng = np.random.default_rng(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*"):
        old.unlink()

    manifest: dict = {
        "generator": "scripts/gen_quant_fixtures.py",
        "gguf_version": getattr(gguf, "__version__", None) or _gguf_version(),
        "seed": SEED,
        "dequantize": [],
        "quantize": [],
        "models": [],
    }

    for qtype, n in DEQ_ELEMENTS.items():
        raw = dequant_case(rng, qtype)
        want = dequantize(raw, qtype, n)
        (OUT / f"deq_{qtype.name}.bin").write_bytes(raw)
        (OUT / f"deq_{qtype.name}.f32").write_bytes(want.astype("<f4").tobytes())
        manifest["dequantize"].append(
            {
                "type": qtype.name,
                "elements": n,
                "src": f"deq_{qtype.name}.bin",
                "expected": f"deq_{qtype.name}.f32",
            }
        )

    x = activation_input(rng)
    (OUT / "act_input.f32").write_bytes(x.astype("<f4").tobytes())
    for qtype, data, oracle in quantize_cases(x):
        name = "act_input.f32" if qtype == T.F32 else f"act_{qtype.name}.bin"
        block_size, type_size = GGML_QUANT_SIZES[qtype]
        if qtype == T.Q8_1:
            # gguf-py 0.19.0 still lists Q8_1 as 40 bytes (the old f32 d and s); GGML's block_q8_1
            # has been 2 f16 + 32 i8 = 36 bytes since 2024.
            type_size = 36
        assert len(data) == x.size // block_size * type_size, qtype
        (OUT / name).write_bytes(data)
        manifest["quantize"].append(
            {
                "type": qtype.name,
                "elements": int(x.size),
                "input": "act_input.f32",
                "expected": name,
                "oracle": oracle,
            }
        )

    manifest["models"] = model_cases()
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total} bytes, to {OUT}")


def _gguf_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("gguf")
    except Exception:
        return None


if __name__ == "__main__":
    main()
