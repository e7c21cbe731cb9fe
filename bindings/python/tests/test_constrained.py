"""Constrained output and log probabilities on the default model: JSON schemas (validated with
the ``jsonschema`` package), GBNF grammars, regular expressions and choices through ``constraint=``
and its shorthands, in ``Model`` and ``Engine``; ``logprobs=`` in the results; bad constraints
raise InvalidArgumentError before anything is generated."""

import json
import math
import re

import jsonschema
import pytest

import woolly

PERSON = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "age", "city"],
    "properties": {
        "name": {"type": "string", "maxLength": 30},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "city": {"type": "string", "maxLength": 30},
    },
}

FRUITS = {"type": "array", "minItems": 2, "maxItems": 4, "items": {"type": "string", "maxLength": 16}}

PHONE = r"\(\d{3}\) \d{3}-\d{4}"


def chat(model, prompt, **options):
    options.setdefault("max_tokens", 200)
    return model.chat([{"role": "user", "content": prompt}], **options)


@pytest.mark.parametrize("schema,prompt", [(PERSON, "Describe a person who lives in Paris."), (FRUITS, "List some fruits.")])
@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 0.9, "seed": 11}])
def test_json_schema_output_validates(model, schema, prompt, sampling):
    for options in ({"json_schema": schema}, {"constraint": {"json_schema": schema}}):
        text = chat(model, prompt, **sampling, **options)
        jsonschema.validate(json.loads(text), schema)
    # The schema's JSON text works too, and gives the same greedy output.
    if sampling["temperature"] == 0:
        assert chat(model, prompt, json_schema=json.dumps(schema), temperature=0) == text


def test_json_object_regex_grammar_and_choices(model):
    assert isinstance(json.loads(chat(model, 'Answer in JSON with the key "answer": what is 2+2?', constraint="json_object", temperature=0)), dict)

    for options in ({"regex": PHONE}, {"constraint": {"regex": PHONE}}):
        text = chat(model, "Give a US phone number.", temperature=0, **options)
        assert re.fullmatch(PHONE, text), text

    gbnf = 'root ::= "Words: " word ("," " "? word){0,2} "."\nword ::= [a-z]{1,10}\n'
    text = chat(model, "Name some animals.", grammar=gbnf, seed=3)
    assert re.fullmatch(r"Words: [a-z]{1,10}(, ?[a-z]{1,10}){0,2}\.", text), text

    options = ["positive", "negative", "neutral"]
    for sampling in ({"temperature": 0}, {"temperature": 1.0, "seed": 5}):
        assert chat(model, "Sentiment of: I love this!", choices=options, **sampling) in options
        assert chat(model, "Sentiment of: I love this!", constraint={"choice": options}, **sampling) in options


def test_logprobs_in_the_result(model):
    out = model.generate_details("The capital of France is", max_tokens=6, temperature=0, logprobs=3)
    lps = out["logprobs"]
    assert len(lps) == len(out["generated_ids"]) == 6
    for lp, id in zip(lps, out["generated_ids"]):
        assert set(lp) == {"id", "token", "bytes", "logprob", "top_logprobs"}
        assert lp["id"] == id
        assert lp["logprob"] <= 0
        assert lp["token"] == bytes(lp["bytes"]).decode("utf-8", "replace")
        top = lp["top_logprobs"]
        assert len(top) == 3
        assert all(set(t) == {"id", "token", "bytes", "logprob"} for t in top)
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        # Greedy: the chosen token is the most likely one.
        assert top[0]["id"] == id and math.isclose(top[0]["logprob"], lp["logprob"])
    assert b"".join(bytes(lp["bytes"]) for lp in lps).decode() == out["text"]
    # 0 alternatives: the chosen token's figure alone; none asked: no key.
    zero = model.generate_details("The capital of France is", max_tokens=2, temperature=0, logprobs=0)
    assert [lp["top_logprobs"] for lp in zero["logprobs"]] == [[], []]
    assert "logprobs" not in model.generate_details("The capital of France is", max_tokens=2, temperature=0)


def test_engine_requests_are_constrained_with_logprobs(model):
    with woolly.Engine(model, context_size=512) as engine:
        phone = engine.submit(
            [{"role": "user", "content": "Give a US phone number."}], regex=PHONE, temperature=0, logprobs=2, max_tokens=40
        )
        person = engine.submit(
            [{"role": "user", "content": "Describe a person who lives in Paris."}], json_schema=PERSON, temperature=0, max_tokens=200
        )
        free = engine.submit("The capital of France is", max_tokens=8, temperature=0)
        r = phone.result()
        assert re.fullmatch(PHONE, r["text"]), r["text"]
        assert len(r["logprobs"]) == len(r["generated_ids"])
        assert all(len(lp["top_logprobs"]) == 2 for lp in r["logprobs"])
        # The same as the model's own greedy output.
        assert r["text"] == chat(model, "Give a US phone number.", temperature=0, regex=PHONE, max_tokens=40)
        jsonschema.validate(json.loads(person.result()["text"]), PERSON)
        assert "logprobs" not in free.result()


@pytest.mark.parametrize(
    "options,needle",
    [
        ({"json_schema": {"type": "array", "uniqueItems": True}}, "uniqueItems"),
        ({"json_schema": "{not json"}, "JSON"),
        ({"json_schema": 42}, "json_schema"),
        ({"grammar": 'root ::= ("a"\n'}, "GBNF"),
        ({"grammar": 'start ::= "a"\n'}, "root"),
        ({"regex": "(unclosed"}, "regular expression"),
        ({"choices": []}, "choice"),
        ({"choices": "yes"}, "choices"),
        ({"constraint": {"pattern": "x"}}, "constraint"),
        ({"constraint": "json"}, "constraint"),
        ({"constraint": 5}, "constraint"),
        ({"constraint": {"regex": 5}}, "constraint"),
        ({"regex": "a", "choices": ["a"]}, "at most one"),
        ({"logprobs": 21}, "20"),
        ({"logprobs": -1}, "logprobs"),
        ({"logprobs": True}, "logprobs"),
    ],
)
def test_bad_constraints_raise_before_generating(model, options, needle):
    with pytest.raises(woolly.InvalidArgumentError, match=re.escape(needle)):
        model.generate("x", max_tokens=4, **options)
    with woolly.Engine(model, context_size=256) as engine:
        with pytest.raises(woolly.InvalidArgumentError):
            engine.submit("x", max_tokens=4, **options)
    # The model is still usable.
    assert model.generate("x", max_tokens=1, temperature=0)
