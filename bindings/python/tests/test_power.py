"""Power and heat through the process-wide manager: profiles round-trip through power_state,
adaptive follows a fake battery, a fake thermal tree drives throttling with hysteresis, and the
opt-in governor call reports refusal. Every test that changes the profile sets it back to
balanced."""

import os
import time

import pytest

import woolly


@pytest.fixture
def balanced():
    yield
    woolly.set_power_profile("balanced")


def wait_for(cond, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def write(root, rel, text):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def test_profiles_round_trip(balanced):
    assert woolly.POWER_PROFILES == ("balanced", "high_performance", "power_saver", "adaptive")
    for name in woolly.POWER_PROFILES:
        woolly.set_power_profile(name)
        assert woolly.power_state()["profile"] == name
    woolly.set_power_profile("power_saver")
    k = woolly.power_state()["knobs"]
    assert k["profile"] == "power_saver"
    assert k["max_threads"] >= 1 and k["max_batch_size"] == 4
    assert k["decode_pause_ms"] > 0
    woolly.set_power_profile("high_performance")
    k = woolly.power_state()["knobs"]
    assert k["max_batch_size"] == 16 and k["max_threads"] >= 1
    woolly.set_power_profile("balanced")
    s = woolly.power_state()
    assert s["knobs"]["max_threads"] == 0, "balanced keeps the thread policy"
    assert set(s) == {
        "profile",
        "source",
        "knobs",
        "throttled",
        "temperature_c",
        "throttle_events",
        "thermal_monitor",
    }


def test_bad_profile_names(balanced):
    with pytest.raises(woolly.InvalidArgumentError) as e:
        woolly.set_power_profile("turbo")
    assert "power_saver" in str(e.value)
    with pytest.raises(woolly.InvalidArgumentError):
        woolly.set_power_profile(3)
    assert woolly.power_state()["profile"] == "balanced"


def test_adaptive_follows_a_fake_battery(tmp_path, balanced):
    write(tmp_path, "sys/class/power_supply/AC/type", "Mains\n")
    write(tmp_path, "sys/class/power_supply/AC/online", "1\n")
    write(tmp_path, "sys/class/power_supply/BAT0/type", "Battery\n")
    write(tmp_path, "sys/class/power_supply/BAT0/status", "Charging\n")
    write(tmp_path, "sys/class/power_supply/BAT0/capacity", "64\n")
    woolly._set_power_root(tmp_path)
    try:
        woolly.set_power_profile("adaptive")
        s = woolly.power_state()
        assert s["source"] == {"kind": "ac"}
        assert (s["profile"], s["knobs"]["profile"]) == ("adaptive", "balanced")
        # Unplugged (setting the root again forgets the cached source).
        write(tmp_path, "sys/class/power_supply/AC/online", "0\n")
        write(tmp_path, "sys/class/power_supply/BAT0/status", "Discharging\n")
        woolly._set_power_root(tmp_path)
        s = woolly.power_state()
        assert s["source"] == {"kind": "battery", "percent": 64}
        assert (s["profile"], s["knobs"]["profile"]) == ("adaptive", "power_saver")
    finally:
        woolly._set_power_root(None)


def test_heat_throttles_with_hysteresis(tmp_path):
    write(tmp_path, "sys/class/thermal/thermal_zone0/temp", "60000\n")
    temp = tmp_path / "sys/class/thermal/thermal_zone0/temp"
    events = woolly.power_state()["throttle_events"]
    woolly.start_thermal_monitor(threshold_c=80.0, interval_s=0.01, sysfs_root=tmp_path)
    try:
        assert wait_for(lambda: woolly.power_state()["temperature_c"] == 60.0)
        s = woolly.power_state()
        assert s["thermal_monitor"] and not s["throttled"]
        # Hot: throttled.
        temp.write_text("85000\n")
        assert wait_for(lambda: woolly.power_state()["throttled"]), woolly.power_state()
        # Cooler, but not 5 degrees under the threshold: still throttled.
        temp.write_text("77000\n")
        assert wait_for(lambda: woolly.power_state()["temperature_c"] == 77.0)
        assert woolly.power_state()["throttled"]
        # Cool: restored.
        temp.write_text("70000\n")
        assert wait_for(lambda: not woolly.power_state()["throttled"]), woolly.power_state()
        assert woolly.power_state()["throttle_events"] == events + 1
        text = woolly.metrics_prometheus()
        assert "# TYPE woolly_thermal_throttle_events_total counter" in text
        assert "woolly_thermal_throttled 0" in text
    finally:
        woolly.stop_thermal_monitor()
    s = woolly.power_state()
    assert not s["thermal_monitor"] and not s["throttled"]
    woolly.stop_thermal_monitor()  # twice: nothing


def test_thermal_monitor_arguments():
    for bad in (dict(interval_s=0), dict(interval_s=-1.0), dict(threshold_c=-5), dict(threshold_c=float("nan"))):
        with pytest.raises(woolly.InvalidArgumentError):
            woolly.start_thermal_monitor(**bad)
    with pytest.raises(woolly.InvalidArgumentError):
        woolly.start_thermal_monitor(interval_s="fast")
    assert not woolly.power_state()["thermal_monitor"]


def test_governor_without_cpufreq_is_unsupported(tmp_path):
    with pytest.raises(woolly.UnsupportedError) as e:
        woolly.set_cpu_governor("powersave", sysfs_root=tmp_path)
    assert e.value.code == "WOOLLY_ERR_UNSUPPORTED"


def test_governor_refusal_and_fake_tree(tmp_path):
    # A directory stands in for a governor file the system refuses to write (even as root).
    gov = tmp_path / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
    gov.mkdir(parents=True)
    with pytest.raises(woolly.PermissionDeniedError) as e:
        woolly.set_cpu_governor("powersave", sysfs_root=tmp_path)
    assert e.value.code == "WOOLLY_ERR_PERMISSION_DENIED" and isinstance(e.value, PermissionError)
    gov.rmdir()
    write(tmp_path, "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor", "performance\n")
    write(tmp_path, "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor", "performance\n")
    assert woolly.set_cpu_governor("powersave", sysfs_root=tmp_path) == 2
    assert (tmp_path / "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor").read_text() == "powersave"
    with pytest.raises(woolly.InvalidArgumentError):
        woolly.set_cpu_governor("../etc", sysfs_root=tmp_path)
