"""Every error path: a WoollyError subclass with the C status code and a useful message."""

import os

import pytest

import woolly


def test_missing_file(tmp_path):
    path = tmp_path / "nope" / "model.gguf"
    with pytest.raises(woolly.WoollyIOError) as e:
        woolly.Model(path)
    assert e.value.code == "WOOLLY_ERR_IO" and e.value.status == 3
    assert isinstance(e.value, OSError) and isinstance(e.value, woolly.WoollyError)
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    "content",
    [b"", b"GGUF", b"NOPE" + b"\0" * 60, b"GGUF\x03\0\0\0" + b"\xff" * 16 + b" garbage"],
)
def test_corrupt_files(tmp_path, content):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(woolly.InvalidModelError) as e:
        woolly.Model(str(path))
    assert e.value.code == "WOOLLY_ERR_INVALID_MODEL"


def test_missing_default_model(tmp_path, monkeypatch):
    monkeypatch.setenv("WOOLLY_MODEL", str(tmp_path / "absent.gguf"))
    with pytest.raises(woolly.WoollyError) as e:
        woolly.Model()
    assert e.value.code in ("WOOLLY_ERR_MODEL_NOT_FOUND", "WOOLLY_ERR_IO")


def test_bad_load_options():
    with pytest.raises(woolly.InvalidArgumentError):
        woolly.Model(preload="eager")
    with pytest.raises(woolly.InvalidArgumentError, match="auto, interactive or background"):
        woolly.Model(thread_policy="fast")
    with pytest.raises(woolly.InvalidArgumentError):
        woolly.Model(threads=-1)
    with pytest.raises(woolly.InvalidArgumentError):
        woolly.Model(threads=100000)
    with pytest.raises(woolly.InvalidArgumentError):
        woolly.Model(progress=42)
    with pytest.raises(ValueError):  # InvalidArgumentError is a ValueError too
        woolly.Model(context_size=-5)


def test_progress_can_cancel_and_its_exceptions_propagate():
    seen = []
    with pytest.raises(woolly.CancelledError):
        woolly.Model(progress=lambda f: seen.append(f) or f < 0.2)
    assert seen and seen[0] == 0.0

    def boom(f):
        raise RuntimeError("from the callback")

    with pytest.raises(RuntimeError, match="from the callback"):
        woolly.Model(progress=boom)
    fractions = []
    m = woolly.Model(progress=lambda f: fractions.append(f) or True)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert m.generate("Hi", max_tokens=1, temperature=0) is not None


def test_bad_generation_arguments(model):
    with pytest.raises(woolly.InvalidArgumentError, match="temperature"):
        model.generate("x", temperature=-1)
    with pytest.raises(woolly.InvalidArgumentError, match="max_tokens"):
        model.generate("x", max_tokens="ten")
    with pytest.raises(woolly.InvalidArgumentError, match="top_p"):
        model.generate("x", top_p=2.0)
    with pytest.raises(woolly.InvalidArgumentError):
        model.generate(42)
    with pytest.raises(TypeError):
        model.generate("x", max_token=3)  # a misspelt option is not silently ignored
    with pytest.raises(woolly.InvalidArgumentError):
        model.chat([{"role": "user"}])
    with pytest.raises(woolly.InvalidArgumentError):
        model.chat([])
    with pytest.raises(woolly.InvalidArgumentError):
        model.detokenize([2, -1])
    with pytest.raises(woolly.InvalidArgumentError):
        model.detokenize([10**9])


def test_invalid_utf8(model):
    with pytest.raises(woolly.InvalidUtf8Error) as e:
        model.tokenize("bad \udc80 text")
    assert e.value.code == "WOOLLY_ERR_INVALID_UTF8" and isinstance(e.value, UnicodeError)
    with pytest.raises(woolly.InvalidUtf8Error):
        model.generate("\ud800")


def test_context_overflow():
    small = woolly.Model(context_size=16)
    with pytest.raises(woolly.ContextOverflowError) as e:
        small.generate("The capital of France is", max_tokens=64)
    assert e.value.code == "WOOLLY_ERR_CONTEXT_OVERFLOW"
    assert "16" in str(e.value)
    assert small.generate("The capital of France is", max_tokens=4, temperature=0)
