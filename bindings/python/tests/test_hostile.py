"""The hostile corpus (tests/hostile, from tools/corpus): every file a clear WoollyError, never a
crash; the harmless oddities load and generate."""

import pathlib

import pytest

import woolly

CORPUS = pathlib.Path(__file__).resolve().parents[3] / "tests" / "hostile"


def cases():
    lines = (CORPUS / "manifest.tsv").read_text(encoding="utf-8").splitlines()
    return [l.split("\t") for l in lines if l and not l.startswith("#")]


def test_the_manifest_is_there():
    assert len(cases()) >= 40


@pytest.mark.parametrize("file,stage,status,message,what", cases(), ids=lambda v: str(v)[:40])
def test_hostile_file(file, stage, status, message, what):
    path = str(CORPUS / file)
    if stage == "load":
        with pytest.raises(woolly.WoollyError) as e:
            woolly.Model(path, preload="lazy")
        assert e.value.code == status, f"{what}: {e.value}"
        assert message in str(e.value), f"{what}: {e.value}"
        return
    model = woolly.Model(path, preload="lazy")
    messages = [{"role": "user", "content": "the cat"}]
    if stage == "chat":
        with pytest.raises(woolly.WoollyError) as e:
            model.apply_chat_template(messages)
        assert e.value.code == status and message in str(e.value), f"{what}: {e.value}"
        with pytest.raises(woolly.WoollyError) as e:
            model.chat(messages, max_tokens=2)
        assert e.value.code == status, f"{what}: {e.value}"
    else:
        model.apply_chat_template(messages)
    # Plain generation works whatever the template.
    out = model.generate("the cat", max_tokens=4, ignore_eos=True, temperature=0)
    assert isinstance(out, str)
