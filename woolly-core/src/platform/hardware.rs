//! What this machine has: cores, caches, SIMD features, memory.
//!
//! Read once, cheaply, without changing anything: Linux sysfs topology and caches, `/proc/meminfo`,
//! CPUID on x86 (for caches when sysfs lacks them, and for features through the standard library's
//! run-time detection).

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

/// SIMD instruction sets the kernels can use, detected at run time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SimdFeatures {
    pub sse3: bool,
    pub ssse3: bool,
    pub avx: bool,
    pub avx2: bool,
    pub fma: bool,
    pub f16c: bool,
    pub avx512f: bool,
    pub avx512bw: bool,
    pub avx512vl: bool,
    pub avx512vnni: bool,
    pub avxvnni: bool,
    pub neon: bool,
    pub dotprod: bool,
}

impl SimdFeatures {
    /// The features of the CPU this runs on.
    pub fn detect() -> SimdFeatures {
        #[allow(unused_mut)]
        let mut f = SimdFeatures::default();
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            f.sse3 = std::is_x86_feature_detected!("sse3");
            f.ssse3 = std::is_x86_feature_detected!("ssse3");
            f.avx = std::is_x86_feature_detected!("avx");
            f.avx2 = std::is_x86_feature_detected!("avx2");
            f.fma = std::is_x86_feature_detected!("fma");
            f.f16c = std::is_x86_feature_detected!("f16c");
            f.avx512f = std::is_x86_feature_detected!("avx512f");
            f.avx512bw = std::is_x86_feature_detected!("avx512bw");
            f.avx512vl = std::is_x86_feature_detected!("avx512vl");
            f.avx512vnni = std::is_x86_feature_detected!("avx512vnni");
            f.avxvnni = std::is_x86_feature_detected!("avxvnni");
        }
        #[cfg(target_arch = "aarch64")]
        {
            f.neon = std::arch::is_aarch64_feature_detected!("neon");
            f.dotprod = std::arch::is_aarch64_feature_detected!("dotprod");
        }
        f
    }

    /// The best kernel family these features allow, by name.
    pub fn best_kernel(&self) -> &'static str {
        if self.avx512f && self.avx512bw && self.avx512vl && self.fma {
            "avx512"
        } else if self.avx2 && self.fma && self.f16c {
            "avx2"
        } else if self.neon {
            "neon"
        } else {
            "scalar"
        }
    }
}

/// One cache level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheInfo {
    pub level: u8,
    /// `Data`, `Instruction` or `Unified`.
    pub kind: String,
    pub size_bytes: u64,
    /// Logical CPUs sharing this cache.
    pub shared_by: usize,
}

/// The machine, as Woolly sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Hardware {
    pub arch: &'static str,
    pub cpu_name: Option<String>,
    /// Logical CPUs this process may run on.
    pub logical_cores: usize,
    /// Distinct physical cores among them.
    pub physical_cores: usize,
    /// Logical CPU ids, one per physical core (the first sibling of each), for thread affinity.
    pub physical_core_cpus: Vec<usize>,
    pub caches: Vec<CacheInfo>,
    pub simd: SimdFeatures,
    pub total_memory_bytes: Option<u64>,
    pub available_memory_bytes: Option<u64>,
}

impl Hardware {
    /// Detects the machine (reads sysfs and procfs under `/`).
    pub fn detect() -> Hardware {
        Self::detect_with_root(Path::new("/"))
    }

    /// Detects the machine with sysfs and procfs read under `root` (tests use a fake tree).
    pub fn detect_with_root(root: &Path) -> Hardware {
        let cpus = online_cpus(root);
        let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (physical, first_siblings) = physical_cores(root, &cpus);
        let mut caches = sysfs_caches(root);
        if caches.is_empty() {
            caches = cpuid_caches();
        }
        let (total, available) = meminfo(root);
        let physical = if physical == 0 {
            logical
        } else {
            physical.min(logical)
        };
        Hardware {
            arch: std::env::consts::ARCH,
            cpu_name: cpu_name(root),
            logical_cores: logical,
            physical_cores: physical,
            physical_core_cpus: first_siblings,
            caches,
            simd: SimdFeatures::detect(),
            total_memory_bytes: total,
            available_memory_bytes: available,
        }
    }

    /// Size of the largest data or unified cache at `level`, if known.
    pub fn cache_size(&self, level: u8) -> Option<u64> {
        self.caches
            .iter()
            .filter(|c| c.level == level && c.kind != "Instruction")
            .map(|c| c.size_bytes)
            .max()
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

fn read(root: &Path, p: &str) -> Option<String> {
    super::files::read_small(&root.join(p.trim_start_matches('/'))).map(|s| s.trim().to_string())
}

/// Parses a CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    if b >= a && b - a < 65536 {
                        out.extend(a..=b);
                    }
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    out.push(a);
                }
            }
        }
    }
    out
}

fn online_cpus(root: &Path) -> Vec<usize> {
    read(root, "sys/devices/system/cpu/online")
        .map(|s| parse_cpu_list(&s))
        .unwrap_or_default()
}

/// Physical cores (distinct package/core pairs) and the first logical CPU of each.
fn physical_cores(root: &Path, cpus: &[usize]) -> (usize, Vec<usize>) {
    let mut seen = BTreeSet::new();
    let mut firsts = Vec::new();
    for &cpu in cpus {
        let base = format!("sys/devices/system/cpu/cpu{cpu}/topology");
        let core = read(root, &format!("{base}/core_id"));
        let pkg = read(root, &format!("{base}/physical_package_id")).unwrap_or_default();
        if let Some(core) = core {
            if seen.insert((pkg, core)) {
                firsts.push(cpu);
            }
        }
    }
    (seen.len(), firsts)
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1024),
        'M' => (&s[..s.len() - 1], 1024 * 1024),
        'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

fn sysfs_caches(root: &Path) -> Vec<CacheInfo> {
    let mut out = Vec::new();
    for i in 0..8 {
        let base = format!("sys/devices/system/cpu/cpu0/cache/index{i}");
        let (Some(level), Some(kind), Some(size)) = (
            read(root, &format!("{base}/level")),
            read(root, &format!("{base}/type")),
            read(root, &format!("{base}/size")),
        ) else {
            continue;
        };
        let (Ok(level), Some(size_bytes)) = (level.parse(), parse_size(&size)) else {
            continue;
        };
        let shared_by = read(root, &format!("{base}/shared_cpu_list"))
            .map(|s| parse_cpu_list(&s).len())
            .unwrap_or(1)
            .max(1);
        out.push(CacheInfo {
            level,
            kind,
            size_bytes,
            shared_by,
        });
    }
    out
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn cpuid_caches() -> Vec<CacheInfo> {
    let cpuid = raw_cpuid::CpuId::new();
    let Some(params) = cpuid.get_cache_parameters() else {
        return Vec::new();
    };
    params
        .map(|c| CacheInfo {
            level: c.level(),
            kind: match c.cache_type() {
                raw_cpuid::CacheType::Data => "Data",
                raw_cpuid::CacheType::Instruction => "Instruction",
                _ => "Unified",
            }
            .to_string(),
            size_bytes: (c.associativity()
                * c.physical_line_partitions()
                * c.coherency_line_size()
                * c.sets()) as u64,
            shared_by: c.max_cores_for_cache(),
        })
        .collect()
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
fn cpuid_caches() -> Vec<CacheInfo> {
    Vec::new()
}

fn meminfo(root: &Path) -> (Option<u64>, Option<u64>) {
    let m = super::memory::MemoryInfo::detect_with_root(root);
    let known = |v: u64| (v > 0).then_some(v);
    (known(m.total_bytes), known(m.available_bytes))
}

fn cpu_name(root: &Path) -> Option<String> {
    let text = read(root, "proc/cpuinfo")?;
    text.lines()
        .find(|l| l.starts_with("model name") || l.starts_with("Model"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list(""), Vec::<usize>::new());
        assert_eq!(parse_cpu_list("5-2,x,7"), vec![7]);
    }

    #[test]
    fn fake_tree_with_smt() {
        let dir = std::env::temp_dir().join(format!("woolly-hw-{}", std::process::id()));
        let w = |p: &str, s: &str| {
            let f = dir.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, s).unwrap();
        };
        w("sys/devices/system/cpu/online", "0-3\n");
        // Two cores with two hyper-threads each: cpus 0,2 on core 0 and 1,3 on core 1.
        for (cpu, core) in [(0, 0), (1, 1), (2, 0), (3, 1)] {
            w(
                &format!("sys/devices/system/cpu/cpu{cpu}/topology/core_id"),
                &format!("{core}\n"),
            );
            w(
                &format!("sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id"),
                "0\n",
            );
        }
        for (i, level, kind, size, shared) in [
            (0, 1, "Data", "48K", "0,2"),
            (1, 1, "Instruction", "32K", "0,2"),
            (2, 2, "Unified", "1280K", "0,2"),
            (3, 3, "Unified", "12M", "0-3"),
        ] {
            let b = format!("sys/devices/system/cpu/cpu0/cache/index{i}");
            w(&format!("{b}/level"), &format!("{level}\n"));
            w(&format!("{b}/type"), &format!("{kind}\n"));
            w(&format!("{b}/size"), &format!("{size}\n"));
            w(&format!("{b}/shared_cpu_list"), &format!("{shared}\n"));
        }
        w(
            "proc/meminfo",
            "MemTotal:       16384000 kB\nMemFree: 1 kB\nMemAvailable:    8192000 kB\n",
        );
        w(
            "proc/cpuinfo",
            "processor\t: 0\nmodel name\t: Test CPU 9000\n",
        );
        let hw = Hardware::detect_with_root(&dir);
        assert_eq!(hw.physical_core_cpus, vec![0, 1]);
        assert_eq!(hw.physical_cores, 2.min(hw.logical_cores));
        assert_eq!(hw.cache_size(1), Some(48 * 1024));
        assert_eq!(hw.cache_size(2), Some(1280 * 1024));
        assert_eq!(hw.cache_size(3), Some(12 * 1024 * 1024));
        assert_eq!(hw.caches[3].shared_by, 4);
        assert_eq!(hw.total_memory_bytes, Some(16384000 * 1024));
        assert_eq!(hw.available_memory_bytes, Some(8192000 * 1024));
        assert_eq!(hw.cpu_name.as_deref(), Some("Test CPU 9000"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn this_machine() {
        let hw = Hardware::detect();
        assert!(hw.logical_cores >= 1);
        assert!(hw.physical_cores >= 1 && hw.physical_cores <= hw.logical_cores);
        let j = hw.to_json();
        assert!(j["simd"].is_object());
        #[cfg(target_arch = "x86_64")]
        assert!(hw.simd.sse3 || !hw.simd.avx2, "AVX2 implies SSE3");
    }
}
