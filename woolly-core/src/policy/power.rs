//! Power and heat: Woolly adapts its own behaviour to the power source and the temperature.
//!
//! A [`PowerProfile`] maps to Woolly's own knobs ([`PowerKnobs`]: worker threads, how long and
//! how large batches get, a pause between decode steps, and the KV precision preferred where a
//! caller leaves the choice open). `Adaptive` follows the power source (Linux
//! `/sys/class/power_supply`). A [`ThermalMonitor`] reads `/sys/class/thermal` and hwmon on a
//! background thread; above a threshold (80 °C by default) it halves Woolly's worker threads,
//! and restores them once the temperature is 5 °C below the threshold.
//!
//! The process-wide [`PowerManager`] ([`manager`]) holds the profile and the thermal cap;
//! sessions and engines consult it before each forward pass. Every sysfs root is injectable,
//! so tests drive battery and temperature through fake trees. Nothing here changes the system:
//! the only functions that do ([`set_cpu_governor`]) are explicit opt-ins that report a refusal
//! as [`Error::PermissionDenied`].
//!
//! Platform notes: Linux is implemented and tested. On macOS (QoS classes, memory-pressure
//! events) and Windows (power status, priority classes) the power source reads as unknown and
//! no thermal sensor is found, so `Adaptive` behaves as `Balanced`: untested here.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;

use crate::kernels::kv::KvPrecision;
use crate::platform::Hardware;
use crate::policy::{threads_for, Workload};
use crate::{Error, Result};

/// How Woolly trades speed for power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerProfile {
    /// Every physical core, the largest batches, no pauses.
    HighPerformance,
    /// Woolly's thread policy per phase, as without a profile (the default).
    #[default]
    Balanced,
    /// Half the cores, small batches gathered a little longer, a pause between decode steps:
    /// less heat and power for slower generation.
    PowerSaver,
    /// Balanced on mains power, PowerSaver on battery.
    Adaptive,
}

impl PowerProfile {
    /// The name front ends use.
    pub fn name(self) -> &'static str {
        match self {
            PowerProfile::HighPerformance => "high_performance",
            PowerProfile::Balanced => "balanced",
            PowerProfile::PowerSaver => "power_saver",
            PowerProfile::Adaptive => "adaptive",
        }
    }

    /// The profile called `name`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the choices.
    pub fn from_name(name: &str) -> Result<PowerProfile> {
        [
            PowerProfile::HighPerformance,
            PowerProfile::Balanced,
            PowerProfile::PowerSaver,
            PowerProfile::Adaptive,
        ]
        .into_iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "profile must be high_performance, balanced, power_saver or adaptive, not {name:?}"
            ))
        })
    }
}

/// Where the power comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum PowerSource {
    /// Mains power (or a desktop without a battery).
    Ac,
    /// On battery, with its charge in percent when known.
    Battery { percent: Option<u8> },
    /// No information (no power_supply class, another platform).
    Unknown,
}

/// Reads the power source from `root/sys/class/power_supply` (`/` for the real one): on
/// battery when a battery is discharging and no mains supply is online.
pub fn power_source(root: &Path) -> PowerSource {
    let dir = root.join("sys/class/power_supply");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return PowerSource::Unknown;
    };
    let read = |p: &Path, f: &str| {
        crate::platform::files::read_small(&p.join(f)).map(|s| s.trim().to_string())
    };
    let (mut mains_online, mut any, mut discharging, mut percent) = (false, false, false, None);
    for e in entries.flatten() {
        let p = e.path();
        any = true;
        match read(&p, "type").as_deref() {
            Some("Mains") | Some("USB") if read(&p, "online").as_deref() == Some("1") => {
                mains_online = true;
            }
            Some("Battery") if read(&p, "status").as_deref() == Some("Discharging") => {
                discharging = true;
                percent = read(&p, "capacity").and_then(|c| c.parse::<u8>().ok());
            }
            _ => {}
        }
    }
    match (any, discharging && !mains_online) {
        (false, _) => PowerSource::Unknown,
        (true, true) => PowerSource::Battery { percent },
        (true, false) => PowerSource::Ac,
    }
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}

/// Woolly's own knobs for one profile on one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PowerKnobs {
    /// The profile these come from (`Adaptive` resolved to what it follows).
    pub profile: PowerProfile,
    /// Most worker threads (the caller's included) a forward pass uses; 0: no limit beyond
    /// the thread policy.
    pub max_threads: usize,
    /// Most sequences an engine step batches.
    pub max_batch_size: usize,
    /// How long an idle engine waits to gather a batch (`batch_latency_ms` in JSON).
    #[serde(rename = "batch_latency_ms", serialize_with = "as_ms")]
    pub batch_latency: Duration,
    /// Pause after each decode step, for a lower duty cycle: less heat and power
    /// (`decode_pause_ms` in JSON).
    #[serde(rename = "decode_pause_ms", serialize_with = "as_ms")]
    pub decode_pause: Duration,
    /// The KV cache precision where the caller leaves the choice open (the only precision
    /// choice on CPU; f16 in every profile, as it halves memory traffic).
    pub kv_precision: KvPrecision,
}

impl PowerProfile {
    /// The knobs of this profile on `hw` with power from `source`.
    pub fn knobs(self, hw: &Hardware, source: PowerSource) -> PowerKnobs {
        let physical = hw.physical_cores.max(1);
        let base = PowerKnobs {
            profile: self,
            max_threads: 0,
            max_batch_size: 16,
            batch_latency: Duration::ZERO,
            decode_pause: Duration::ZERO,
            kv_precision: KvPrecision::F16,
        };
        match self {
            PowerProfile::HighPerformance => PowerKnobs {
                max_threads: threads_for(hw, Workload::PromptProcessing).max(physical),
                ..base
            },
            PowerProfile::Balanced => base,
            PowerProfile::PowerSaver => PowerKnobs {
                max_threads: physical.div_ceil(2),
                max_batch_size: 4,
                batch_latency: Duration::from_millis(10),
                decode_pause: match source {
                    PowerSource::Battery { percent: Some(p) } if p < 20 => {
                        Duration::from_millis(40)
                    }
                    _ => Duration::from_millis(15),
                },
                ..base
            },
            PowerProfile::Adaptive => match source {
                PowerSource::Battery { .. } => PowerKnobs {
                    profile: PowerProfile::PowerSaver,
                    ..PowerProfile::PowerSaver.knobs(hw, source)
                },
                _ => PowerKnobs {
                    profile: PowerProfile::Balanced,
                    ..base
                },
            },
        }
    }
}

/// The hottest sensor under `root` in °C: `sys/class/thermal/thermal_zone*/temp` and
/// `sys/class/hwmon/hwmon*/temp*_input` (both in millidegrees); `None` without sensors.
pub fn max_temperature(root: &Path) -> Option<f64> {
    let mut best: Option<f64> = None;
    let mut consider = |p: PathBuf| {
        // Regular files only, opened without blocking: a FIFO or device among the sensors
        // must not hang the monitor (and with it the thread that stops it).
        if let Some(t) =
            crate::platform::files::read_small(&p).and_then(|s| s.trim().parse::<f64>().ok())
        {
            let c = t / 1000.0;
            // Sensors that are absent or broken report nonsense; ignore it.
            if (-40.0..200.0).contains(&c) {
                best = Some(best.map_or(c, |b: f64| b.max(c)));
            }
        }
    };
    if let Ok(zones) = std::fs::read_dir(root.join("sys/class/thermal")) {
        for z in zones.flatten() {
            if z.file_name().to_string_lossy().starts_with("thermal_zone") {
                consider(z.path().join("temp"));
            }
        }
    }
    if let Ok(mons) = std::fs::read_dir(root.join("sys/class/hwmon")) {
        for m in mons.flatten() {
            if let Ok(files) = std::fs::read_dir(m.path()) {
                for f in files.flatten() {
                    let n = f.file_name().to_string_lossy().into_owned();
                    if n.starts_with("temp") && n.ends_with("_input") {
                        consider(f.path());
                    }
                }
            }
        }
    }
    best
}

/// How the thermal monitor watches.
#[derive(Debug, Clone)]
pub struct ThermalConfig {
    /// Where `sys/class/thermal` and `sys/class/hwmon` are (`/` for the real ones).
    pub root: PathBuf,
    /// Above this (°C) Woolly halves its worker threads.
    pub threshold_c: f64,
    /// They come back below `threshold_c - hysteresis_c`.
    pub hysteresis_c: f64,
    /// How often the sensors are read.
    pub interval: Duration,
}

impl Default for ThermalConfig {
    fn default() -> Self {
        ThermalConfig {
            root: PathBuf::from("/"),
            threshold_c: 80.0,
            hysteresis_c: 5.0,
            interval: Duration::from_secs(2),
        }
    }
}

/// The power and thermal state sessions and engines follow (see [`manager`]).
pub struct PowerManager {
    profile: Mutex<PowerProfile>,
    power_root: Mutex<PathBuf>,
    hardware: Hardware,
    throttled: AtomicBool,
    /// The hottest reading, in millidegrees (i64 bits; i64::MIN when none).
    temperature_mc: std::sync::atomic::AtomicI64,
    throttle_events: AtomicU64,
    /// The power source read last, and when (it is read at most once a second).
    source_cache: Mutex<Option<(std::time::Instant, PowerSource)>>,
    monitor: Mutex<Option<ThermalMonitor>>,
}

/// The process-wide power manager (Balanced, no thermal monitor until one is started).
pub fn manager() -> &'static PowerManager {
    static M: OnceLock<PowerManager> = OnceLock::new();
    M.get_or_init(|| PowerManager::new(Hardware::detect()))
}

/// A snapshot of the power state, for reports.
#[derive(Debug, Clone, Serialize)]
pub struct PowerState {
    pub profile: PowerProfile,
    pub source: PowerSource,
    pub knobs: PowerKnobs,
    pub throttled: bool,
    pub temperature_c: Option<f64>,
    pub throttle_events: u64,
    pub thermal_monitor: bool,
}

impl PowerManager {
    /// A manager for `hardware` (tests make their own; the library uses [`manager`]).
    pub fn new(hardware: Hardware) -> PowerManager {
        PowerManager {
            profile: Mutex::new(PowerProfile::Balanced),
            power_root: Mutex::new(PathBuf::from("/")),
            hardware,
            throttled: AtomicBool::new(false),
            temperature_mc: std::sync::atomic::AtomicI64::new(i64::MIN),
            throttle_events: AtomicU64::new(0),
            source_cache: Mutex::new(None),
            monitor: Mutex::new(None),
        }
    }

    /// Uses `profile` from now on.
    pub fn set_profile(&self, profile: PowerProfile) {
        *self.profile.lock().unwrap_or_else(|e| e.into_inner()) = profile;
        crate::log!(crate::log::Level::Info, "power profile: {}", profile.name());
    }

    /// The profile set.
    pub fn profile(&self) -> PowerProfile {
        *self.profile.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the power source under `root` instead of `/` (tests).
    pub fn set_power_root(&self, root: impl Into<PathBuf>) {
        *self.power_root.lock().unwrap_or_else(|e| e.into_inner()) = root.into();
        self.refresh();
    }

    /// Forgets the cached power source (it is read again at the next use).
    pub fn refresh(&self) {
        *self.source_cache.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The power source (read at most once a second).
    pub fn source(&self) -> PowerSource {
        let mut c = self.source_cache.lock().unwrap_or_else(|e| e.into_inner());
        match *c {
            Some((at, s)) if at.elapsed() < Duration::from_secs(1) => s,
            _ => {
                let s = power_source(&self.power_root.lock().unwrap_or_else(|e| e.into_inner()));
                *c = Some((std::time::Instant::now(), s));
                s
            }
        }
    }

    /// The knobs now (the profile, resolved against the power source).
    pub fn knobs(&self) -> PowerKnobs {
        let profile = self.profile();
        let source = if profile == PowerProfile::Adaptive || profile == PowerProfile::PowerSaver {
            self.source()
        } else {
            PowerSource::Unknown
        };
        profile.knobs(&self.hardware, source)
    }

    /// The threads a forward pass that wants `wanted` may use now: the profile's limit, halved
    /// (at least one) while the machine is too hot.
    pub fn threads(&self, wanted: usize) -> usize {
        let k = self.knobs();
        let mut n = if k.max_threads > 0 {
            wanted.min(k.max_threads)
        } else {
            wanted
        };
        if self.throttled.load(Ordering::Relaxed) {
            n = n.div_ceil(2);
        }
        let n = n.max(1);
        crate::metrics::set_worker_threads(n);
        n
    }

    /// Whether the thermal cap is on.
    pub fn is_throttled(&self) -> bool {
        self.throttled.load(Ordering::Relaxed)
    }

    /// Times the thermal cap came on.
    pub fn throttle_events(&self) -> u64 {
        self.throttle_events.load(Ordering::Relaxed)
    }

    /// Feeds one temperature reading (°C) through the threshold with hysteresis; returns
    /// whether the throttled state changed. The monitor calls this; so can a host that has
    /// its own sensors.
    pub fn observe_temperature(&self, celsius: f64, cfg: &ThermalConfig) -> bool {
        self.temperature_mc
            .store((celsius * 1000.0) as i64, Ordering::Relaxed);
        crate::metrics::set_cpu_temperature(celsius);
        let was = self.throttled.load(Ordering::Relaxed);
        let now = if was {
            celsius >= cfg.threshold_c - cfg.hysteresis_c
        } else {
            celsius > cfg.threshold_c
        };
        if now == was {
            return false;
        }
        self.throttled.store(now, Ordering::Relaxed);
        crate::metrics::record_throttle(now);
        if now {
            self.throttle_events.fetch_add(1, Ordering::Relaxed);
            crate::log!(
                crate::log::Level::Warn,
                "thermal: {celsius:.1} °C is above {:.0} °C; Woolly halves its worker threads",
                cfg.threshold_c
            );
        } else {
            crate::log!(
                crate::log::Level::Info,
                "thermal: {celsius:.1} °C is below {:.0} °C; worker threads restored",
                cfg.threshold_c - cfg.hysteresis_c
            );
        }
        true
    }

    /// Starts the thermal monitor (replacing a running one). Without any sensor under
    /// `cfg.root` it still runs, and never throttles.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a zero interval or a negative hysteresis;
    /// [`Error::Internal`] when the thread cannot start.
    pub fn start_thermal_monitor(&'static self, cfg: ThermalConfig) -> Result<()> {
        let target = self;
        if cfg.interval.is_zero()
            || cfg.hysteresis_c.is_nan()
            || cfg.hysteresis_c < 0.0
            || !cfg.threshold_c.is_finite()
        {
            return Err(Error::InvalidArgument(
                "the thermal interval must be positive and the hysteresis at least 0".into(),
            ));
        }
        self.stop_thermal_monitor();
        crate::panics::install();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("woolly-thermal".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    if let Some(t) = max_temperature(&cfg.root) {
                        target.observe_temperature(t, &cfg);
                    }
                    // Sleep in short slices so that stopping is prompt.
                    let mut left = cfg.interval;
                    while !left.is_zero() && !flag.load(Ordering::Relaxed) {
                        let d = left.min(Duration::from_millis(20));
                        std::thread::sleep(d);
                        left = left.saturating_sub(d);
                    }
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the thermal monitor: {e}")))?;
        *self.monitor.lock().unwrap_or_else(|e| e.into_inner()) = Some(ThermalMonitor {
            stop,
            thread: Some(thread),
        });
        Ok(())
    }

    /// Stops the thermal monitor, if one runs (the cap it set is lifted).
    pub fn stop_thermal_monitor(&self) {
        let m = self
            .monitor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(m);
        self.throttled.store(false, Ordering::Relaxed);
    }

    /// The state now.
    pub fn state(&self) -> PowerState {
        let t = self.temperature_mc.load(Ordering::Relaxed);
        PowerState {
            profile: self.profile(),
            source: self.source(),
            knobs: self.knobs(),
            throttled: self.is_throttled(),
            temperature_c: (t != i64::MIN).then(|| t as f64 / 1000.0),
            throttle_events: self.throttle_events(),
            thermal_monitor: self
                .monitor
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some(),
        }
    }
}

/// A running thermal monitor thread; stopped when dropped.
pub struct ThermalMonitor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long stopping waits for the monitor thread to notice (it checks every 20 ms between
/// reads). A thread still inside a slow sensor read after that is left to exit on its own: it
/// only touches the process-wide manager, and stops at its next check.
const STOP_WAIT: Duration = Duration::from_secs(1);

impl Drop for ThermalMonitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let start = std::time::Instant::now();
            while !t.is_finished() && start.elapsed() < STOP_WAIT {
                std::thread::sleep(Duration::from_millis(2));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// Explicit opt-in: sets the CPU frequency governor of every CPU under `root`
/// (`sys/devices/system/cpu/cpu*/cpufreq/scaling_governor`; `/` for the real ones). This changes
/// the system for every program: only a host application that asks for it calls this.
///
/// # Errors
/// [`Error::PermissionDenied`] when the system refuses (not root, read-only sysfs);
/// [`Error::Unsupported`] when there is no cpufreq; [`Error::InvalidArgument`] for a governor
/// name with odd characters.
pub fn set_cpu_governor(root: &Path, governor: &str) -> Result<usize> {
    if governor.is_empty()
        || !governor
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        return Err(Error::InvalidArgument(format!(
            "{governor:?} is not a governor name"
        )));
    }
    let cpus = root.join("sys/devices/system/cpu");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&cpus)
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("cpufreq/scaling_governor"))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        return Err(Error::Unsupported(format!(
            "no cpufreq governors under {}",
            cpus.display()
        )));
    }
    for f in &files {
        std::fs::write(f, governor).map_err(|e| {
            Error::PermissionDenied(format!(
                "cannot set the CPU governor in {}: {e} (this needs root)",
                f.display()
            ))
        })?;
    }
    crate::log!(
        crate::log::Level::Warn,
        "CPU governor set to {governor} on {} CPUs at the host application's request",
        files.len()
    );
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [
            PowerProfile::HighPerformance,
            PowerProfile::Balanced,
            PowerProfile::PowerSaver,
            PowerProfile::Adaptive,
        ] {
            assert_eq!(PowerProfile::from_name(p.name()).unwrap(), p);
        }
        assert!(PowerProfile::from_name("turbo").is_err());
    }
}
