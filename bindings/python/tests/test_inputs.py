"""Inputs that must not hang or mislead: a FIFO as the model (explicit, WOOLLY_MODEL, the cache)
or among the thermal sensors, no HOME, a memory budget of 0 (no budget), thread counts above the
CPUs (capped), and detokenized text holding a NUL byte. A faulthandler watchdog turns a hang into
a failure."""

import faulthandler
import os
import pathlib

import pytest

import woolly

SYNTHETIC = str(pathlib.Path(__file__).resolve().parents[3] / "tests" / "hostile" / "synthetic-llama.gguf")


@pytest.fixture(autouse=True)
def watchdog():
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def refused_as_fifo(path, fifo):
    for call in (lambda: woolly.Model(path), lambda: woolly.estimate(path)):
        with pytest.raises(woolly.WoollyIOError) as e:
            call()
        assert e.value.code == "WOOLLY_ERR_IO"
        assert "FIFO" in str(e.value) and str(fifo) in str(e.value), str(e.value)


def test_a_fifo_as_the_model_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("WOOLLY_MODEL", raising=False)
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    refused_as_fifo(str(fifo), fifo)
    monkeypatch.setenv("WOOLLY_MODEL", str(fifo))
    refused_as_fifo(None, fifo)
    monkeypatch.delenv("WOOLLY_MODEL")
    models = tmp_path / "cache" / "woolly" / "models"
    models.mkdir(parents=True)
    cached = models / "gemma-3-270m-q4_k_m.gguf"
    os.mkfifo(cached)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    refused_as_fifo(None, cached)


def test_without_home_the_error_says_where_it_looked(monkeypatch):
    for var in ("WOOLLY_MODEL", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(woolly.ModelNotFoundError) as e:
        woolly.Model()
    for part in ("WOOLLY_MODEL", "XDG_CACHE_HOME", "HOME", "make model"):
        assert part in str(e.value), str(e.value)


def test_a_memory_budget_of_zero_means_none():
    m = woolly.Model(SYNTHETIC, memory_budget=0)
    assert m.generate("the cat", max_tokens=2, temperature=0, ignore_eos=True) is not None
    assert m.memory_report()["budget_bytes"] is None


def worker_threads():
    series = woolly.metrics()["metrics"]["woolly_worker_threads"]["series"]
    return series[0]["value"]


def test_threads_above_the_cpus_are_capped():
    cpus = len(os.sched_getaffinity(0))
    m = woolly.Model(SYNTHETIC, threads=1024)
    d = m.generate_details("the cat", max_tokens=4, temperature=0, ignore_eos=True)
    assert len(d["generated_ids"]) == 4
    assert 1 <= worker_threads() <= cpus
    with pytest.raises(woolly.InvalidArgumentError):
        woolly.Model(SYNTHETIC, threads=1025)


def test_the_nul_byte_token_detokenizes_to_a_nul():
    m = woolly.Model(SYNTHETIC)
    assert m.detokenize([3]) == "\x00"  # <0x00>
    assert m.detokenize([3, 3]) == "\x00\x00"


def test_a_fifo_among_the_sensors_blocks_nothing(tmp_path):
    zone = tmp_path / "sys" / "class" / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("61000\n")
    hwmon = tmp_path / "sys" / "class" / "hwmon" / "hwmon0"
    hwmon.mkdir(parents=True)
    os.mkfifo(hwmon / "temp1_input")
    woolly.start_thermal_monitor(80.0, 0.01, tmp_path)
    try:
        import time

        for _ in range(500):
            if woolly.power_state()["temperature_c"] == 61.0:
                break
            time.sleep(0.01)
        assert woolly.power_state()["temperature_c"] == 61.0
    finally:
        woolly.stop_thermal_monitor()
    assert woolly.power_state()["thermal_monitor"] is False


def test_a_panic_on_the_callers_thread_is_an_exception_and_prints_nothing():
    # A bug inside Woolly on the caller's own thread: an exception for the caller, and nothing on
    # the host's stderr (the panic's message goes to Woolly's log). In a child process, so that
    # its stderr can be read whole.
    import subprocess
    import sys

    code = (
        "import woolly, woolly._woolly as native\n"
        "try:\n"
        "    native._panic('boom on the caller')\n"
        "except BaseException as e:\n"
        "    print(type(e).__name__, e)\n"
        "print(woolly.__version__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "PanicException boom on the caller", out.stdout
    assert "panicked" not in out.stderr and "boom" not in out.stderr, out.stderr
