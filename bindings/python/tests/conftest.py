"""Fixtures: the default model (loaded once), llama.cpp's reference outputs, the tiny models."""

import json
import os
import pathlib

import pytest

import woolly

HERE = pathlib.Path(__file__).resolve().parent
REFERENCE = pathlib.Path(
    os.environ.get("WOOLLY_REFERENCE_DIR", HERE.parent.parent.parent.parent / "shared" / "reference")
)


TINY = REFERENCE / "tiny"


def tiny_model(name="tiny-llama-spm-q4_k_m.gguf"):
    """A tiny reference model (a few MB; real GGUF files of the supported architectures)."""
    path = TINY / name
    if not path.exists():
        pytest.skip(f"{path} is missing (set WOOLLY_REFERENCE_DIR or check out shared/ beside the repo)")
    return str(path)


def greedy_reference(name):
    """The reference case `name`, with `exact`: the tokens before the first near-tie."""
    ref = json.loads((REFERENCE / "gemma3-270m" / "greedy" / f"{name}.json").read_text())
    margins = ref["top2_margins"]
    exact = next((i for i, m in enumerate(margins) if m < 0.1), len(margins))
    ref["exact"] = min(exact, len(ref["generated_ids"]))
    return ref


@pytest.fixture(scope="session")
def model():
    return woolly.Model()


@pytest.fixture(scope="session")
def capital():
    return greedy_reference("capital")
