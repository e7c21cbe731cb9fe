"""Fixtures: the default model (loaded once) and llama.cpp's reference outputs."""

import json
import os
import pathlib

import pytest

import woolly

HERE = pathlib.Path(__file__).resolve().parent
REFERENCE = pathlib.Path(
    os.environ.get("WOOLLY_REFERENCE_DIR", HERE.parent.parent.parent.parent / "shared" / "reference")
)


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
