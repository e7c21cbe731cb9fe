//! Power and heat through fake sysfs trees: each profile's knobs, battery switching, thermal
//! throttling with hysteresis, the cap reaching the engine, and the opt-in governor call.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use woolly_core::engine::{Engine, EngineParams, Priority, Request};
use woolly_core::generate::{GenerateParams, SamplingParams};
use woolly_core::model::{Model, ModelParams};
use woolly_core::platform::Hardware;
use woolly_core::policy::power::{
    self, PowerKnobs, PowerManager, PowerProfile, PowerSource, ThermalConfig,
};
use woolly_core::testing;
use woolly_core::ErrorKind;

fn tree(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("power-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes a fake sensor file atomically (a new file renamed over the old), as sysfs reads are:
/// the monitor must never see it truncated and half-written.
fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &p).unwrap();
}

fn hw(physical: usize) -> Hardware {
    let mut h = Hardware::detect();
    h.physical_cores = physical;
    h.logical_cores = physical * 2;
    h
}

#[test]
fn each_profile_sets_threads_and_batching() {
    let h = hw(8);
    let k = |p: PowerProfile, s| -> PowerKnobs { p.knobs(&h, s) };
    let perf = k(PowerProfile::HighPerformance, PowerSource::Ac);
    let bal = k(PowerProfile::Balanced, PowerSource::Ac);
    let save = k(PowerProfile::PowerSaver, PowerSource::Ac);
    assert!(perf.max_threads >= 8 && perf.max_batch_size == 16 && perf.decode_pause.is_zero());
    assert_eq!(bal.max_threads, 0, "balanced keeps the thread policy");
    assert_eq!(save.max_threads, 4);
    assert!(save.max_batch_size < bal.max_batch_size);
    assert!(save.batch_latency > bal.batch_latency && !save.decode_pause.is_zero());
    // A nearly empty battery pauses longer.
    let low = k(
        PowerProfile::PowerSaver,
        PowerSource::Battery { percent: Some(10) },
    );
    assert!(low.decode_pause > save.decode_pause);
    // Adaptive follows the source.
    assert_eq!(
        k(PowerProfile::Adaptive, PowerSource::Ac).profile,
        PowerProfile::Balanced
    );
    assert_eq!(
        k(
            PowerProfile::Adaptive,
            PowerSource::Battery { percent: Some(50) }
        )
        .profile,
        PowerProfile::PowerSaver
    );
}

#[test]
fn the_power_source_switches_with_the_fake_tree() {
    let root = tree("battery");
    assert_eq!(power::power_source(&root), PowerSource::Unknown);
    write(&root, "sys/class/power_supply/AC/type", "Mains\n");
    write(&root, "sys/class/power_supply/AC/online", "1\n");
    write(&root, "sys/class/power_supply/BAT0/type", "Battery\n");
    write(&root, "sys/class/power_supply/BAT0/status", "Charging\n");
    write(&root, "sys/class/power_supply/BAT0/capacity", "64\n");
    assert_eq!(power::power_source(&root), PowerSource::Ac);
    let m = PowerManager::new(hw(4));
    m.set_power_root(&root);
    m.set_profile(PowerProfile::Adaptive);
    assert_eq!(m.knobs().profile, PowerProfile::Balanced);
    assert_eq!(m.threads(4), 4);
    // Unplugged.
    write(&root, "sys/class/power_supply/AC/online", "0\n");
    write(&root, "sys/class/power_supply/BAT0/status", "Discharging\n");
    m.refresh();
    assert_eq!(m.source(), PowerSource::Battery { percent: Some(64) });
    assert_eq!(m.knobs().profile, PowerProfile::PowerSaver);
    assert_eq!(m.threads(4), 2);
    let st = m.state();
    assert_eq!(st.profile, PowerProfile::Adaptive);
    assert_eq!(st.knobs.profile, PowerProfile::PowerSaver);
}

fn wait_for(cond: impl Fn() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn heat_throttles_with_hysteresis() {
    let root = tree("thermal");
    write(&root, "sys/class/thermal/thermal_zone0/temp", "55000\n");
    write(&root, "sys/class/hwmon/hwmon0/temp1_input", "70000\n");
    assert_eq!(power::max_temperature(&root), Some(70.0));
    let m: &'static PowerManager = Box::leak(Box::new(PowerManager::new(hw(4))));
    m.start_thermal_monitor(ThermalConfig {
        root: root.clone(),
        interval: Duration::from_millis(10),
        ..Default::default()
    })
    .unwrap();
    assert!(wait_for(|| m.state().temperature_c == Some(70.0)));
    assert!(!m.is_throttled());
    assert_eq!(m.threads(4), 4);
    // Hot: halved.
    write(&root, "sys/class/hwmon/hwmon0/temp1_input", "86000\n");
    assert!(wait_for(|| m.is_throttled()));
    assert_eq!(m.threads(4), 2);
    assert_eq!(m.threads(1), 1, "never below one thread");
    // Cooler, but not 5 degrees under the threshold: still throttled.
    write(&root, "sys/class/hwmon/hwmon0/temp1_input", "77000\n");
    assert!(wait_for(|| m.state().temperature_c == Some(77.0)));
    assert!(m.is_throttled());
    // Cool: restored.
    write(&root, "sys/class/hwmon/hwmon0/temp1_input", "74000\n");
    assert!(wait_for(|| !m.is_throttled()));
    assert_eq!(m.threads(4), 4);
    assert_eq!(m.throttle_events(), 1);
    m.stop_thermal_monitor();
    assert!(!m.state().thermal_monitor);
    assert!(m
        .start_thermal_monitor(ThermalConfig {
            interval: Duration::ZERO,
            ..Default::default()
        })
        .is_err());
}

#[test]
fn a_fifo_among_the_sensors_blocks_neither_reads_nor_stop() {
    let root = tree("thermal-fifo");
    write(&root, "sys/class/thermal/thermal_zone0/temp", "61000\n");
    let fifo = root.join("sys/class/hwmon/hwmon0/temp1_input");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&fifo);
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // A FIFO under the power-supply class too.
    let ps = root.join("sys/class/power_supply/BAT0");
    std::fs::create_dir_all(&ps).unwrap();
    let _ = std::fs::remove_file(ps.join("type"));
    assert!(std::process::Command::new("mkfifo")
        .arg(ps.join("type"))
        .status()
        .unwrap()
        .success());
    // Everything runs under a watchdog so that a regression fails instead of hanging.
    let (tx, rx) = std::sync::mpsc::channel();
    let r = root.clone();
    std::thread::spawn(move || {
        let t = power::max_temperature(&r);
        let src = power::power_source(&r);
        let m: &'static PowerManager = Box::leak(Box::new(PowerManager::new(hw(4))));
        m.start_thermal_monitor(ThermalConfig {
            root: r.clone(),
            interval: Duration::from_millis(10),
            ..Default::default()
        })
        .unwrap();
        let seen = wait_for(|| m.state().temperature_c == Some(61.0));
        m.stop_thermal_monitor();
        let _ = tx.send((t, src, seen, m.state().thermal_monitor));
    });
    let (t, src, seen, running) = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a FIFO sensor hung the thermal monitor");
    // The FIFO is skipped, the regular sensor still counts.
    assert_eq!(t, Some(61.0));
    assert_eq!(src, power::PowerSource::Ac);
    assert!(seen, "the monitor read the regular sensor");
    assert!(!running);
}

fn model() -> Arc<Model> {
    static M: OnceLock<Arc<Model>> = OnceLock::new();
    M.get_or_init(|| Model::load(Some(&testing::default_model()), &ModelParams::default()).unwrap())
        .clone()
}

#[test]
fn the_process_profile_reaches_the_engine() {
    // The process-wide manager: PowerSaver batches at most four sequences per step.
    let m = power::manager();
    m.set_profile(PowerProfile::PowerSaver);
    let e = Engine::new(
        model(),
        EngineParams {
            threads: 2,
            context_size: 256,
            ..Default::default()
        },
    )
    .unwrap();
    let greedy = GenerateParams {
        max_tokens: 6,
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
        ..Default::default()
    };
    let hs: Vec<_> = (0..8)
        .map(|_| {
            e.submit(Request::text("Hello there", greedy.clone()).with_priority(Priority::Low))
                .unwrap()
        })
        .collect();
    for h in hs {
        assert_eq!(h.wait().unwrap().generated_ids.len(), 6);
    }
    let s = e.stats();
    m.set_profile(PowerProfile::Balanced);
    assert!(s.mean_batch_size <= 4.0, "{s:?}");
    assert!(s.mean_batch_size > 1.0, "{s:?}");
}

#[test]
fn changing_the_governor_is_an_explicit_opt_in_that_reports_refusal() {
    let root = tree("governor");
    // No cpufreq at all.
    assert_eq!(
        power::set_cpu_governor(&root, "powersave")
            .unwrap_err()
            .kind(),
        ErrorKind::Unsupported
    );
    // A governor file Woolly may not write (a directory stands in for a refused write even
    // as root).
    std::fs::create_dir_all(root.join("sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"))
        .unwrap();
    let err = power::set_cpu_governor(&root, "powersave").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    // Writable (a fake tree): done, and only when asked.
    std::fs::remove_dir(root.join("sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")).unwrap();
    write(
        &root,
        "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
        "performance\n",
    );
    write(
        &root,
        "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor",
        "performance\n",
    );
    assert_eq!(power::set_cpu_governor(&root, "powersave").unwrap(), 2);
    assert_eq!(
        std::fs::read_to_string(root.join("sys/devices/system/cpu/cpu1/cpufreq/scaling_governor"))
            .unwrap(),
        "powersave"
    );
    assert_eq!(
        power::set_cpu_governor(&root, "../etc").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}
