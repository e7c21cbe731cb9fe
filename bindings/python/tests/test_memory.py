"""Memory: budgets that refuse what does not fit, estimates, reports, preload strategies, the
KV cache's precision and a ModelCache that evicts idle models but never one in use."""

import gc

import pytest

import woolly
from conftest import tiny_model

SMALL_CONTEXT = 256  # tiny models with small sessions: a model is much bigger than a session


def parts(path, context_size=SMALL_CONTEXT):
    """(model bytes, session bytes) of `path` by the estimate."""
    est = woolly.estimate(path, context_size=context_size)
    model = est["weights_bytes"] + est["overhead_bytes"]
    session = est["kv_cache_bytes"] + est["scratch_bytes"]
    assert model > 0 and session > 0 and est["total_bytes"] == model + session
    return model, session


def tiny_load(cache, id, path):
    return cache.load(id, path, context_size=SMALL_CONTEXT, threads=2)


# -- errors, estimates, reports -------------------------------------------------------------


def test_the_new_error_classes_are_exported():
    for name, code, status, base in [
        ("InsufficientMemoryError", "WOOLLY_ERR_INSUFFICIENT_MEMORY", 13, MemoryError),
        ("BusyError", "WOOLLY_ERR_BUSY", 14, woolly.WoollyError),
        ("DeadlineExceededError", "WOOLLY_ERR_DEADLINE_EXCEEDED", 15, TimeoutError),
        ("OutOfDeviceMemoryError", "WOOLLY_ERR_OUT_OF_DEVICE_MEMORY", 16, MemoryError),
        ("DeviceError", "WOOLLY_ERR_DEVICE", 17, woolly.WoollyError),
    ]:
        cls = getattr(woolly, name)
        assert name in woolly.__all__
        assert issubclass(cls, woolly.WoollyError) and issubclass(cls, base)
        assert (cls.code, cls.status) == (code, status)


def test_a_budget_smaller_than_the_model_fails_with_the_figures():
    est = woolly.estimate()
    assert est["weights_bytes"] > 100 << 20  # the 253 MB default model
    for budget in (est["weights_bytes"] // 2, "100MB"):
        with pytest.raises(woolly.InsufficientMemoryError) as e:
            woolly.Model(memory_budget=budget)
        err = e.value
        assert isinstance(err, MemoryError) and isinstance(err, woolly.WoollyError)
        assert err.code == "WOOLLY_ERR_INSUFFICIENT_MEMORY" and err.status == 13
        assert isinstance(err.required, int) and isinstance(err.available, int)
        assert err.required > err.available
        assert err.required == est["total_bytes"]
        assert err.budgeted is True
        assert "MiB" in str(err) and "budget" in str(err)


def test_a_budget_that_fits_loads_and_is_reported():
    est = woolly.estimate()
    m = woolly.Model(memory_budget=est["total_bytes"])
    r = m.memory_report()
    assert r["budget_bytes"] == est["total_bytes"]
    assert r["estimate"] == est
    # The model and its pooled session are charged; within the budget.
    assert r["charged_bytes"] == est["weights_bytes"] + est["overhead_bytes"]
    assert r["charged_bytes"] < r["account_held_bytes"] <= est["total_bytes"]
    assert m.generate("Hello", max_tokens=2, temperature=0) is not None


def test_estimate_follows_the_context_and_checks_its_arguments(tmp_path):
    small = woolly.estimate(context_size=256)
    large = woolly.estimate(context_size=2048)
    for key in ("weights_bytes", "overhead_bytes", "kv_cache_bytes", "scratch_bytes",
                "context_size", "batch_size", "total_bytes"):
        assert isinstance(small[key], int), key
    assert (small["context_size"], large["context_size"]) == (256, 2048)
    assert large["kv_cache_bytes"] == 8 * small["kv_cache_bytes"]
    assert small["weights_bytes"] == large["weights_bytes"]
    with pytest.raises(woolly.WoollyIOError):
        woolly.estimate(tmp_path / "absent.gguf")
    with pytest.raises(TypeError):
        woolly.estimate(context_sise=256)
    with pytest.raises(woolly.InvalidArgumentError):
        woolly.estimate(context_size=-1)


def test_memory_report_has_its_keys():
    r = woolly.memory_report()
    for key in ("total_bytes", "available_bytes", "reserve_bytes", "pressure_threshold",
                "under_pressure", "budget_bytes", "headroom_bytes", "page_size",
                "huge_page_size", "process_rss_bytes", "process_peak_rss_bytes"):
        assert key in r, key
    assert r["process_rss_bytes"] > 0
    assert r["total_bytes"] >= r["available_bytes"] > 0
    assert r["budget_bytes"] is None and r["pressure_threshold"] == 0.85
    r = woolly.memory_report(memory_budget="1GB", memory_reserve=1 << 20, pressure_threshold=0.5)
    assert r["budget_bytes"] == 1 << 30 and r["reserve_bytes"] == 1 << 20
    assert r["pressure_threshold"] == 0.5
    assert r["headroom_bytes"] <= 1 << 30


def test_bad_memory_options():
    for kwargs in (
        {"memory_budget": "12 parsecs"},
        {"memory_budget": -1},
        {"memory_budget": 1.5},
        {"memory_budget": True},
        {"memory_reserve": "lots"},
        {"pressure_threshold": 1.5},
        {"pressure_threshold": 0},
        {"pressure_threshold": "high"},
    ):
        with pytest.raises(woolly.InvalidArgumentError):
            woolly.memory_report(**kwargs)
        with pytest.raises(woolly.InvalidArgumentError):
            woolly.Model(tiny_model(), **kwargs)
        with pytest.raises(woolly.InvalidArgumentError):
            woolly.ModelCache(**kwargs)


def test_model_memory_report(model):
    r = model.memory_report()
    for key in ("estimate", "charged_bytes", "account_held_bytes", "headroom_bytes",
                "budget_bytes", "reserve_bytes", "available_bytes", "under_pressure",
                "file_bytes", "file_resident_bytes", "repacked_bytes", "locked", "preload",
                "process_rss_bytes"):
        assert key in r, key
    assert r["process_rss_bytes"] > 0
    assert r["file_bytes"] == model.info["file_size"]
    assert r["locked"] is model.is_locked is False
    assert r["preload"] == model.preload_progress


# -- load options ---------------------------------------------------------------------------


@pytest.mark.parametrize("preload", ["lazy", "none", "sequential", "critical", "full", "full_blocking"])
def test_every_preload_strategy_loads(preload):
    path = tiny_model()
    m = woolly.Model(path, preload=preload, context_size=SMALL_CONTEXT, threads=2)
    m.wait_preloaded()
    p = m.preload_progress
    assert set(p) == {"done_bytes", "total_bytes", "finished"}
    assert p["finished"] is True
    # (The whole file, or for the full strategies what is still read from it after repacking.)
    assert 0 <= p["done_bytes"] <= p["total_bytes"] <= m.info["file_size"]
    if preload in ("sequential", "full", "full_blocking"):
        assert p["done_bytes"] == p["total_bytes"]
    assert m.generate("Hello", max_tokens=2, temperature=0) is not None


def test_the_default_model_preloads_in_the_background():
    m = woolly.Model(preload="full")
    m.wait_preloaded()
    p = m.preload_progress
    assert p["finished"] and p["done_bytes"] == p["total_bytes"] > 0
    assert m.memory_report()["file_resident_bytes"] > 0


def test_a_bad_preload_name():
    with pytest.raises(woolly.InvalidArgumentError, match="preload"):
        woolly.Model(tiny_model(), preload="eager")
    with pytest.raises(woolly.InvalidArgumentError):
        woolly.Model(tiny_model(), preload=True)


def test_mlock_is_a_request_not_a_requirement():
    m = woolly.Model(tiny_model(), mlock=True, context_size=SMALL_CONTEXT)
    assert isinstance(m.is_locked, bool)
    assert m.memory_report()["locked"] is m.is_locked
    assert m.generate("Hello", max_tokens=2, temperature=0) is not None


def test_an_f32_kv_cache_works_and_takes_more_memory():
    path = tiny_model()
    f16 = woolly.Model(path, context_size=SMALL_CONTEXT, threads=2)
    f32 = woolly.Model(path, context_size=SMALL_CONTEXT, threads=2, kv_precision="f32")
    session = lambda m: m.memory_report()["account_held_bytes"] - m.memory_report()["charged_bytes"]
    assert session(f32) > session(f16)
    a = f16.generate_details("Once upon a time", max_tokens=8, temperature=0)
    b = f32.generate_details("Once upon a time", max_tokens=8, temperature=0)
    assert len(b["generated_ids"]) >= 1
    assert a["prompt_ids"] == b["prompt_ids"]
    with pytest.raises(woolly.InvalidArgumentError, match="f16"):
        woolly.Model(path, kv_precision="f8")
    with pytest.raises(woolly.InvalidArgumentError):
        woolly.ModelCache().load("x", path, kv_precision="F32 ")


def test_load_aliases():
    path = tiny_model()
    assert isinstance(woolly.load(path, context_size=SMALL_CONTEXT), woolly.Model)
    assert isinstance(woolly.Model.load(path, context_size=SMALL_CONTEXT), woolly.Model)


# -- the model cache ------------------------------------------------------------------------


def test_a_cache_evicts_an_idle_model_once_its_object_is_dropped():
    path = tiny_model()
    model, session = parts(path)
    # Room for one model with its session, and half of another.
    cache = woolly.ModelCache(memory_budget=(model + session) * 3 // 2)
    a = tiny_load(cache, "a", path)
    assert isinstance(a, woolly.Model)
    assert cache.report()["models"][0]["in_use"] is True
    # "a" is in use: it stays, and "b" cannot fit.
    with pytest.raises(woolly.InsufficientMemoryError) as e:
        tiny_load(cache, "b", path)
    assert e.value.required > e.value.available
    assert e.value.budgeted is True
    assert cache.ids() == ["a"]
    assert a.generate("Hello", max_tokens=2, temperature=0) is not None

    del a
    gc.collect()
    assert cache.report()["models"][0]["in_use"] is False
    b = tiny_load(cache, "b", path)
    assert cache.ids() == ["b"]
    assert cache.report()["evictions"] == 1
    assert cache.get("a") is None
    assert b.generate("Hello", max_tokens=2, temperature=0) is not None


def test_a_cache_evicts_the_older_idle_model_and_keeps_the_one_in_use():
    path = tiny_model()
    model, session = parts(path)
    cache = woolly.ModelCache(memory_budget=(model + session) * 5 // 2)
    a = tiny_load(cache, "a", path)
    b = tiny_load(cache, "b", path)
    assert cache.ids() == ["b", "a"]  # most recently used first
    # Loading "b" again while its object lives hands out the same sessions: nothing new.
    held = cache.report()["held_bytes"]
    again = tiny_load(cache, "b", path)
    assert cache.report()["held_bytes"] == held
    del again

    # "a" is older but in use; "b" goes once dropped.
    assert cache.get("a") is not None  # "a" is now the most recently used
    del b
    gc.collect()
    c = tiny_load(cache, "c", path)
    assert sorted(cache.ids()) == ["a", "c"]
    assert cache.report()["evictions"] == 1
    assert a.generate("Hello", max_tokens=2, temperature=0) is not None

    # Both in use: "d" does not fit, and nothing is evicted.
    with pytest.raises(woolly.InsufficientMemoryError):
        tiny_load(cache, "d", path)
    assert sorted(cache.ids()) == ["a", "c"]

    # A pinned model stays even when idle.
    cache.pin("a")
    del a, c
    gc.collect()
    d = tiny_load(cache, "d", path)
    assert sorted(cache.ids()) == ["a", "d"]
    cache.pin("a", False)
    with pytest.raises(woolly.InvalidArgumentError):
        cache.pin("zzz")

    report = cache.report()
    for key in ("models", "evictions", "held_bytes", "headroom_bytes", "budget_bytes",
                "reserve_bytes", "available_bytes", "total_bytes", "under_pressure"):
        assert key in report, key
    assert {m["id"]: m["in_use"] for m in report["models"]} == {"a": False, "d": True}
    assert all(m["path"] == path for m in report["models"])
    assert report["held_bytes"] <= report["budget_bytes"]
    assert isinstance(cache.relieve_pressure(), list)
    del d


def test_cache_get_unload_swap_and_progress():
    path = tiny_model()
    other = tiny_model("tiny-qwen2-mixed.gguf")
    cache = woolly.ModelCache()
    chat = cache.load("chat", path, threads=2, context_size=SMALL_CONTEXT)
    got = cache.get("chat")
    assert isinstance(got, woolly.Model)
    assert got.info["path"] == chat.info["path"]
    assert got.generate("Hi", max_tokens=2, temperature=0) is not None
    assert cache.get("nothing") is None
    assert "chat" in cache and len(cache) == 1

    # With no Model object alive, get opens a session again (with the load's options).
    model, session = parts(path)
    held = cache.report()["held_bytes"]
    del got
    gc.collect()
    assert cache.report()["held_bytes"] == held  # chat is still alive
    del chat
    gc.collect()
    assert cache.report()["held_bytes"] == held - session
    chat = cache.get("chat")
    assert cache.report()["held_bytes"] == held
    assert chat.info["path"] == path
    assert chat.generate("Hi", max_tokens=2, temperature=0) is not None

    # The same id from another file swaps the model; the old object keeps working.
    swapped = cache.load("chat", other, threads=2, context_size=SMALL_CONTEXT)
    assert swapped.info["architecture"] == "qwen2"
    assert chat.info["architecture"] != "qwen2"
    assert chat.tokenize("hello")
    assert cache.get("chat").info["architecture"] == "qwen2"

    assert cache.unload("chat") is True
    assert cache.unload("chat") is False
    assert cache.get("chat") is None and cache.ids() == []

    seen = []
    with pytest.raises(woolly.CancelledError):
        cache.load("p", path, progress=lambda f: seen.append(f) or f < 0.2)
    assert seen and "p" not in cache
    with pytest.raises(woolly.InvalidArgumentError):
        cache.load("", path)
    with pytest.raises(woolly.WoollyIOError):
        cache.load("missing", path + ".absent")
    with pytest.raises(TypeError):
        cache.load("x", path, memory_budget="1GB")  # the cache's budget applies



def test_cache_get_raises_when_its_session_does_not_fit():
    path = tiny_model()
    model, session = parts(path)
    # Two models, one session, and a little more.
    cache = woolly.ModelCache(memory_budget=2 * model + session + session // 4)
    a = tiny_load(cache, "a", path)
    del a  # idle: "a" keeps its model but no session
    gc.collect()
    b = tiny_load(cache, "b", path)
    assert sorted(cache.ids()) == ["a", "b"]
    with pytest.raises(woolly.InsufficientMemoryError) as e:
        cache.get("a")
    assert e.value.required == session and e.value.required > e.value.available
    del b
    gc.collect()
    assert isinstance(cache.get("a"), woolly.Model)
