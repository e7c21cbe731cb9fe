"""GPU options and the CUDA devices report: devices or why there are none (never an error),
loads with gpu_layers "auto" and 0, bad values refused as ValueError before any load, and
on_device_oom echoed with the placement."""

import pytest

import woolly

PROMPT = "The capital of France is"


def test_cuda_devices_lists_devices_or_says_why_not():
    d = woolly.cuda_devices()
    assert set(d) == {"available", "reason", "driver_version", "devices"}
    if d["available"]:
        assert d["reason"] is None and d["devices"]
        for i, dev in enumerate(d["devices"]):
            assert dev["index"] == i
            assert dev["name"] and 0 < dev["free_bytes"] <= dev["total_bytes"]
            major, minor = dev["compute_capability"].split(".")
            assert int(major) >= 3 and int(minor) >= 0
            assert dev["sm_count"] > 0 and dev["max_threads_per_block"] >= 64
            assert dev["warp_size"] == 32
    else:
        assert d["devices"] == []
        assert d["reason"] in ("no CUDA driver (libcuda not found)", "no CUDA device", "built without CUDA") or d[
            "reason"
        ].startswith("CUDA driver error"), d["reason"]
    # The same report in the diagnostics.
    assert woolly.diagnostics()["cuda"]["available"] == d["available"]


def test_auto_and_cpu_only_load_and_agree_without_a_gpu(model):
    cpu = woolly.Model(gpu_layers=0, split_mode="none", gpu_margin_bytes="2GiB")
    auto = woolly.Model(gpu_layers="auto", main_gpu=0, split_mode="layer")
    a = auto.generate(PROMPT, max_tokens=6, temperature=0, ignore_eos=True)
    c = cpu.generate(PROMPT, max_tokens=6, temperature=0, ignore_eos=True)
    assert a and c
    if not woolly.cuda_devices()["available"]:
        assert a == c == model.generate(PROMPT, max_tokens=6, temperature=0, ignore_eos=True)


@pytest.mark.parametrize(
    "options",
    [
        {"gpu_layers": -1},
        {"gpu_layers": "all"},
        {"gpu_layers": 1.5},
        {"gpu_layers": True},
        {"main_gpu": -1},
        {"main_gpu": "0"},
        {"split_mode": "row"},
        {"split_mode": 1},
        {"gpu_margin_bytes": -5},
        {"gpu_margin_bytes": "lots"},
        {"on_device_oom": "abort"},
        {"on_device_oom": "CPU"},
        {"on_device_oom": 0},
    ],
)
def test_bad_gpu_options_raise_value_error(options):
    with pytest.raises(ValueError) as e:
        woolly.estimate(**options)
    assert isinstance(e.value, woolly.InvalidArgumentError)
    assert next(iter(options)) in str(e.value)


def test_good_gpu_options_are_accepted():
    for options in [
        {"gpu_layers": "auto"},
        {"gpu_layers": 0},
        {"gpu_layers": 1000},
        {"main_gpu": None, "split_mode": "none"},
        {"gpu_margin_bytes": 0},
        {"gpu_margin_bytes": "512MB"},
        {"on_device_oom": "cpu"},
        {"on_device_oom": "error"},
    ]:
        assert woolly.estimate(**options)["total_bytes"] > 0


def test_on_device_oom_is_echoed_with_the_placement():
    assert woolly.Model(gpu_layers=0).info["placement"]["on_device_oom"] == "cpu"
    m = woolly.Model(gpu_layers=0, on_device_oom="error")
    assert m.info["placement"]["on_device_oom"] == "error"
    with pytest.raises(woolly.InvalidArgumentError) as e:
        woolly.Model(on_device_oom="abort")
    assert "on_device_oom must be cpu or error" in str(e.value)
