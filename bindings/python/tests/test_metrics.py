"""Process-wide metrics (Prometheus text and the JSON snapshot) after a generation on the default
model, and the doctor."""

import os
import re
import time

import pytest

import woolly

# A sample line of the text format 0.0.4: name, optional labels, value (+Inf, NaN included).
SAMPLE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? [-+0-9.eEinfINa]+$")
TYPE = re.compile(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$")


def test_prometheus_after_a_generation(model):
    model.generate("Hello", max_tokens=4, temperature=0, ignore_eos=True)
    text = woolly.metrics_prometheus()
    assert text.endswith("\n")
    lines = text.splitlines()
    types = {}
    for line in lines:
        if line.startswith("# TYPE"):
            m = TYPE.match(line)
            assert m, line
            types[m.group(1)] = m.group(2)
    assert types["woolly_generated_tokens_total"] == "counter"
    assert types["woolly_time_to_first_token_seconds"] == "histogram"
    samples = [l for l in lines if not l.startswith("#")]
    assert samples
    for line in samples:
        assert SAMPLE.match(line), line
        name = re.match(r"[a-zA-Z0-9_:]+", line).group(0)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or family in types, f"{line}: no # TYPE line"
    generated = [l for l in samples if l.startswith("woolly_generated_tokens_total{model=")]
    assert generated and max(float(l.rsplit(" ", 1)[1]) for l in generated) >= 4
    assert woolly.PROMETHEUS_CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_metrics_dict_has_the_cores_keys(model):
    model.generate("Hello", max_tokens=2, temperature=0, ignore_eos=True)
    m = woolly.metrics()
    assert set(m) == {"time_unix_ms", "metrics", "models", "gpu"}
    assert m["time_unix_ms"] > 1.6e12
    fam = m["metrics"]["woolly_generated_tokens_total"]
    assert fam["type"] == "counter" and fam["help"]
    assert all("labels" in s and "value" in s for s in fam["series"])
    ttft = m["metrics"]["woolly_time_to_first_token_seconds"]
    assert ttft["type"] == "histogram" and {"count", "sum", "buckets"} <= set(ttft["series"][0])
    mine = model.metrics()
    ours = [x for x in m["models"] if x["generated_tokens"] == mine["generated_tokens"]]
    assert ours, m["models"]
    assert set(mine) | {"model"} == set(ours[0])
    assert m["gpu"] is None or "available" in m["gpu"]


def test_doctor_without_measuring():
    heard = []
    r = woolly.doctor(measure=False, progress=lambda f, msg: heard.append((f, msg)))
    assert set(r) == {"cpu", "memory", "gpu", "inference", "recommendations"}
    cpu = r["cpu"]
    # Woolly's logical count is the CPUs this process may use (affinity, quotas).
    assert 1 <= cpu["logical_cores"] <= os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        assert cpu["logical_cores"] <= len(os.sched_getaffinity(0))
    assert cpu["online_processors"] == os.cpu_count()
    assert r["memory"]["total_bytes"] > 0
    assert "skipped" in r["inference"]
    assert r["recommendations"]["threads"]["value"] >= 1
    assert heard and heard[0][0] == 0.0 and heard[-1][0] == 1.0
    assert all(isinstance(msg, str) for _, msg in heard)


def test_doctor_progress_exception_propagates():
    class Stop(Exception):
        pass

    def progress(f, msg):
        raise Stop(msg)

    with pytest.raises(Stop):
        woolly.doctor(measure=False, progress=progress)
    with pytest.raises(woolly.InvalidArgumentError):
        woolly.doctor(measure=False, progress=42)


def test_doctor_measures_the_default_model():
    t0 = time.monotonic()
    fractions = []
    r = woolly.doctor(progress=lambda f, msg: fractions.append(f))
    elapsed = time.monotonic() - t0
    inf = r["inference"]
    assert "error" not in inf, inf
    assert inf["threads"] and all(t["tok_s"] > 0 for t in inf["threads"])
    measured = [b for b in inf["batches"] if "tok_s" in b]
    assert [b["batch_size"] for b in measured][:1] == [1]
    assert all(b["tok_s"] > 0 for b in measured), inf["batches"]
    assert r["recommendations"]["batch_size"]["value"] in [b["batch_size"] for b in measured]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    print(f"doctor: {elapsed:.1f} s, batches {[(b['batch_size'], round(b.get('tok_s', 0), 1)) for b in inf['batches']]}")
