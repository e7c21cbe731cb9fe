//! Memory policy: what Woolly may use of the machine's memory, and when it is under pressure.
//!
//! Desktop memory belongs to the user's other programs too. Woolly keeps a *reserve* for them
//! (tiered by total RAM, see [`default_reserve`]), treats the machine as *under pressure* once a
//! fraction of it is in use (85% by default), and lets the host application override every
//! figure, including a hard *budget* for everything Woolly holds. Nothing here changes the
//! system: the figures come from [`crate::platform::memory`], and only Woolly's own behaviour
//! adapts to them.

use serde::Serialize;

use crate::platform::memory::MemoryInfo;
use crate::platform::process;

/// Used fraction of total memory from which the machine counts as under pressure.
pub const DEFAULT_PRESSURE_THRESHOLD: f64 = 0.85;

const GIB: u64 = 1 << 30;

/// Memory left to the operating system and the user's other programs, by total RAM: 25% up to
/// 8 GiB, 20% up to 16 GiB, 1/6 (about 17%) up to 32 GiB, 12.5% above.
pub fn default_reserve(total: u64) -> u64 {
    match total {
        t if t <= 8 * GIB => t / 4,
        t if t <= 16 * GIB => t / 5,
        t if t <= 32 * GIB => t / 6,
        t => t / 8,
    }
}

/// What Woolly may use: every figure the host application can override.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MemoryPolicy {
    /// A hard limit on the memory of everything Woolly holds (models, KV caches, scratch), in
    /// bytes. `None` or `Some(0)`: no limit beyond what the system has (0 means "no budget" in
    /// every front end, as in the C API; see [`MemoryPolicy::budget`]).
    pub budget_bytes: Option<u64>,
    /// Memory left to the system and other programs (`None`: [`default_reserve`]).
    pub reserve_bytes: Option<u64>,
    /// Used fraction from which the machine counts as under pressure (`None`: 0.85).
    pub pressure_threshold: Option<f64>,
    /// Take these as the machine's total and available memory instead of measuring them.
    pub total_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
}

impl MemoryPolicy {
    /// A policy with a hard budget and everything else measured.
    pub fn with_budget(bytes: u64) -> MemoryPolicy {
        MemoryPolicy {
            budget_bytes: Some(bytes),
            ..MemoryPolicy::default()
        }
    }

    /// Checks the figures a caller set.
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] for a threshold outside (0, 1] or an available figure
    /// above the total.
    pub fn validate(&self) -> crate::Result<()> {
        if let Some(t) = self.pressure_threshold {
            if !(t > 0.0 && t <= 1.0) {
                return Err(crate::Error::InvalidArgument(format!(
                    "pressure_threshold {t} must be in (0, 1]"
                )));
            }
        }
        if let (Some(t), Some(a)) = (self.total_bytes, self.available_bytes) {
            if a > t {
                return Err(crate::Error::InvalidArgument(format!(
                    "available memory {a} exceeds total memory {t}"
                )));
            }
        }
        Ok(())
    }

    /// The budget in force: `budget_bytes`, with 0 meaning none.
    pub fn budget(&self) -> Option<u64> {
        self.budget_bytes.filter(|&b| b != 0)
    }

    /// The figures now: measured ones with this policy's overrides applied.
    pub fn resolve(&self) -> MemoryBudget {
        self.resolve_with(MemoryInfo::detect())
    }

    /// The figures for `info` with this policy's overrides applied.
    pub fn resolve_with(&self, info: MemoryInfo) -> MemoryBudget {
        let total = self.total_bytes.unwrap_or(info.total_bytes);
        let available = self
            .available_bytes
            .unwrap_or(info.available_bytes)
            .min(total);
        MemoryBudget {
            total_bytes: total,
            available_bytes: available,
            reserve_bytes: self.reserve_bytes.unwrap_or_else(|| default_reserve(total)),
            pressure_threshold: self
                .pressure_threshold
                .unwrap_or(DEFAULT_PRESSURE_THRESHOLD),
            budget_bytes: self.budget(),
        }
    }
}

/// A [`MemoryPolicy`] resolved against the machine's figures at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryBudget {
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub reserve_bytes: u64,
    pub pressure_threshold: f64,
    pub budget_bytes: Option<u64>,
}

impl MemoryBudget {
    /// Bytes Woolly may still take when it already holds `in_use`: what the system has beyond
    /// the reserve, and no more than what is left of the budget.
    pub fn headroom(&self, in_use: u64) -> u64 {
        let system = self.available_bytes.saturating_sub(self.reserve_bytes);
        match self.budget_bytes {
            Some(b) => system.min(b.saturating_sub(in_use)),
            None => system,
        }
    }

    /// Whether the machine uses at least the pressure threshold of its memory.
    pub fn under_pressure(&self) -> bool {
        self.total_bytes > 0
            && 1.0 - self.available_bytes as f64 / self.total_bytes as f64
                >= self.pressure_threshold
    }

    /// Bytes that would have to be freed for the machine to drop below the pressure threshold.
    pub fn pressure_excess(&self) -> u64 {
        let allowed_used = (self.total_bytes as f64 * self.pressure_threshold) as u64;
        let used = self.total_bytes.saturating_sub(self.available_bytes);
        used.saturating_sub(allowed_used)
    }
}

/// Memory charged to one owner of a [`MemoryPolicy`]: a model loaded on its own, or every
/// model of a `model::ModelCache`. Loads and sessions charge what they estimate they
/// hold and release it when dropped; a charge that would exceed the headroom fails.
#[derive(Debug, Default)]
pub struct MemoryAccount {
    policy: MemoryPolicy,
    held: std::sync::atomic::AtomicU64,
}

impl MemoryAccount {
    /// An account with nothing charged.
    pub fn new(policy: MemoryPolicy) -> MemoryAccount {
        MemoryAccount {
            policy,
            held: Default::default(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &MemoryPolicy {
        &self.policy
    }

    /// Bytes charged now.
    pub fn held(&self) -> u64 {
        self.held.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The policy resolved now.
    pub fn budget(&self) -> MemoryBudget {
        self.policy.resolve()
    }

    /// Bytes that may still be charged.
    pub fn headroom(&self) -> u64 {
        self.budget().headroom(self.held())
    }

    /// Charges `bytes` for `what` when they fit the headroom.
    ///
    /// # Errors
    /// [`crate::Error::InsufficientMemory`] with the figures when they do not.
    pub fn charge(&self, what: &str, bytes: u64) -> crate::Result<()> {
        let b = self.budget();
        let available = b.headroom(self.held());
        if bytes > available {
            let system = b.available_bytes.saturating_sub(b.reserve_bytes);
            return Err(crate::Error::InsufficientMemory {
                what: what.to_string(),
                required: bytes,
                available,
                budgeted: available < system,
            });
        }
        self.held
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Returns a charge.
    pub fn release(&self, bytes: u64) {
        let _ = self.held.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |h| Some(h.saturating_sub(bytes)),
        );
    }
}

/// Parses a size such as `512MB`, `1.5GiB`, `800k` or `1048576` (bytes). Decimal and binary
/// suffixes both mean powers of 1024, as memory sizes usually do.
///
/// # Errors
/// [`crate::Error::InvalidArgument`] for anything else.
pub fn parse_size(text: &str) -> crate::Result<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        crate::Error::InvalidArgument(format!(
            "{text:?} is not a size (try 512MB, 2GB or a byte count)"
        ))
    };
    let value: f64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// The memory picture as JSON: the machine, the policy's figures and this process.
pub fn report(policy: &MemoryPolicy) -> serde_json::Value {
    let info = MemoryInfo::detect();
    let b = policy.resolve_with(info);
    serde_json::json!({
        "total_bytes": b.total_bytes,
        "available_bytes": b.available_bytes,
        "reserve_bytes": b.reserve_bytes,
        "pressure_threshold": b.pressure_threshold,
        "under_pressure": b.under_pressure(),
        "budget_bytes": b.budget_bytes,
        "headroom_bytes": b.headroom(0),
        "page_size": info.page_size,
        "huge_page_size": info.huge_page_size,
        "process_rss_bytes": process::rss_bytes(),
        "process_peak_rss_bytes": process::peak_rss_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_tiers() {
        assert_eq!(default_reserve(4 * GIB), GIB);
        assert_eq!(default_reserve(8 * GIB), 2 * GIB);
        assert_eq!(default_reserve(16 * GIB), 16 * GIB / 5);
        assert_eq!(default_reserve(24 * GIB), 4 * GIB);
        assert_eq!(default_reserve(64 * GIB), 8 * GIB);
    }

    #[test]
    fn overrides_and_budget() {
        let p = MemoryPolicy {
            budget_bytes: Some(1000),
            reserve_bytes: Some(100),
            pressure_threshold: Some(0.5),
            total_bytes: Some(10_000),
            available_bytes: Some(6_000),
        };
        p.validate().unwrap();
        let b = p.resolve();
        assert_eq!(b.headroom(0), 1000);
        assert_eq!(b.headroom(700), 300);
        assert_eq!(b.headroom(5000), 0);
        // A budget of 0 is no budget (as the C API's 0), not a budget of nothing.
        let none = MemoryPolicy {
            budget_bytes: Some(0),
            ..p
        };
        assert_eq!(none.budget(), None);
        let b = none.resolve();
        assert_eq!(b.budget_bytes, None);
        assert_eq!(b.headroom(0), 6_000 - 100);
        assert!(!b.under_pressure());
        let b = MemoryPolicy {
            budget_bytes: None,
            ..p
        }
        .resolve();
        assert_eq!(b.headroom(123), 5900);
        assert!(MemoryPolicy {
            pressure_threshold: Some(1.5),
            ..p
        }
        .validate()
        .is_err());
        assert!(MemoryPolicy {
            available_bytes: Some(20_000),
            ..p
        }
        .validate()
        .is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("800k").unwrap(), 800 << 10);
        assert_eq!(parse_size(" 4096 ").unwrap(), 4096);
        for bad in ["", "MB", "12 parsecs", "-5MB", "1e999", "nan"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn meminfo_from_a_fake_tree() {
        let dir = std::env::temp_dir().join(format!("woolly-meminfo-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        std::fs::write(
            dir.join("proc/meminfo"),
            "MemTotal:       8000000 kB\nMemFree:  100 kB\nMemAvailable:   1000000 kB\nHugepagesize:       2048 kB\n",
        )
        .unwrap();
        let info = MemoryInfo::detect_with_root(&dir);
        assert_eq!(info.total_bytes, 8_000_000 * 1024);
        assert_eq!(info.available_bytes, 1_000_000 * 1024);
        assert_eq!(info.huge_page_size, Some(2 << 20));
        let b = MemoryPolicy::default().resolve_with(info);
        assert_eq!(b.reserve_bytes, info.total_bytes / 4);
        // 87.5% in use: above the default threshold.
        assert!(b.under_pressure());
        assert!(b.pressure_excess() > 0);
        // Less available than the reserve: no headroom at all.
        assert_eq!(b.headroom(0), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
