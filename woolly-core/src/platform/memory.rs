//! Memory figures: what the machine has (total, available, page sizes), read from `/proc/meminfo`
//! (Linux), `sysctl` (macOS) or the Windows API behind `cfg`, and advice about Woolly's own
//! buffers. The policy that decides what Woolly may use of it sits above, in `policy::memory`.

use std::path::Path;

use serde::Serialize;

/// The machine's memory at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryInfo {
    /// Physical memory.
    pub total_bytes: u64,
    /// Memory the system can give to programs without swapping (Linux `MemAvailable`: free
    /// memory plus reclaimable caches).
    pub available_bytes: u64,
    /// The base page size.
    pub page_size: u64,
    /// The size of a transparent or explicit huge page, when the system has them.
    pub huge_page_size: Option<u64>,
}

impl MemoryInfo {
    /// The figures now.
    pub fn detect() -> MemoryInfo {
        MemoryInfo::detect_with_root(Path::new("/"))
    }

    /// The figures from `root/proc/meminfo` (tests pass a fake tree), or from `sysconf` when
    /// that file is missing.
    pub fn detect_with_root(root: &Path) -> MemoryInfo {
        let page_size = page_size();
        let text = super::files::read_small(&root.join("proc/meminfo")).unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .map(|kb| kb * 1024)
        };
        let (sys_total, sys_avail) = sysconf_memory(page_size);
        let total_bytes = field("MemTotal:").or(sys_total).unwrap_or(0);
        let available_bytes = field("MemAvailable:")
            .or_else(|| Some(field("MemFree:")? + field("Cached:").unwrap_or(0)))
            .or(sys_avail)
            .unwrap_or(0)
            .min(total_bytes);
        let huge_page_size = field("Hugepagesize:")
            .filter(|&h| h > 0)
            .or_else(large_page_size);
        MemoryInfo {
            total_bytes,
            available_bytes,
            page_size,
            huge_page_size,
        }
    }

    /// The fraction of memory in use (0 to 1).
    pub fn used_fraction(&self) -> f64 {
        if self.total_bytes == 0 {
            return 0.0;
        }
        1.0 - self.available_bytes as f64 / self.total_bytes as f64
    }
}

/// The base page size of this system.
pub fn page_size() -> u64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 {
            return p as u64;
        }
    }
    4096
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn sysconf_memory(page: u64) -> (Option<u64>, Option<u64>) {
    // SAFETY: sysconf has no preconditions.
    let (total, avail) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_AVPHYS_PAGES),
        )
    };
    let bytes = |n: libc::c_long| (n > 0).then(|| n as u64 * page);
    (bytes(total), bytes(avail))
}

/// macOS: total from `sysconf`, available from the kernel's `kern.memorystatus_level` (the
/// percentage of memory free for programs), which also drives its memory-pressure
/// notifications. Compiled behind `cfg`; untested here (Linux is the tested platform).
#[cfg(target_vendor = "apple")]
fn sysconf_memory(page: u64) -> (Option<u64>, Option<u64>) {
    // SAFETY: sysconf has no preconditions.
    let total = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    let total = (total > 0).then(|| total as u64 * page);
    let mut level: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>();
    // SAFETY: a NUL-terminated name, and an int-sized output buffer with its length.
    let rc = unsafe {
        libc::sysctlbyname(
            c"kern.memorystatus_level".as_ptr(),
            &mut level as *mut libc::c_int as *mut libc::c_void,
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    let avail = match (total, rc == 0 && (0..=100).contains(&level)) {
        (Some(t), true) => Some(t / 100 * level as u64),
        (t, _) => t,
    };
    (total, avail)
}

/// Windows: `GlobalMemoryStatusEx`. Compiled behind `cfg`; untested here.
#[cfg(windows)]
fn sysconf_memory(_page: u64) -> (Option<u64>, Option<u64>) {
    #[repr(C)]
    struct MemoryStatusEx {
        length: u32,
        memory_load: u32,
        total_phys: u64,
        avail_phys: u64,
        total_page_file: u64,
        avail_page_file: u64,
        total_virtual: u64,
        avail_virtual: u64,
        avail_extended_virtual: u64,
    }
    #[link(name = "kernel32")]
    extern "system" {
        fn GlobalMemoryStatusEx(status: *mut MemoryStatusEx) -> i32;
    }
    let mut s = MemoryStatusEx {
        length: std::mem::size_of::<MemoryStatusEx>() as u32,
        memory_load: 0,
        total_phys: 0,
        avail_phys: 0,
        total_page_file: 0,
        avail_page_file: 0,
        total_virtual: 0,
        avail_virtual: 0,
        avail_extended_virtual: 0,
    };
    // SAFETY: `s` is a MEMORYSTATUSEX with its length set, as the API requires.
    if unsafe { GlobalMemoryStatusEx(&mut s) } == 0 {
        return (None, None);
    }
    (Some(s.total_phys), Some(s.avail_phys))
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    windows
)))]
fn sysconf_memory(page: u64) -> (Option<u64>, Option<u64>) {
    // Untested here: other Unixes have _SC_PHYS_PAGES but no portable "available" figure, so
    // the whole of it counts as available.
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no preconditions.
        let total = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
        let total = (total > 0).then(|| total as u64 * page);
        (total, total)
    }
    #[cfg(not(unix))]
    {
        let _ = page;
        (None, None)
    }
}

/// The large-page size of the system where it is not in `/proc/meminfo`: Windows'
/// `GetLargePageMinimum` (compiled behind `cfg`; untested here). Woolly only reports it: using
/// large pages on Windows needs a privilege the user grants, never something Woolly changes.
#[cfg(windows)]
fn large_page_size() -> Option<u64> {
    #[link(name = "kernel32")]
    extern "system" {
        fn GetLargePageMinimum() -> usize;
    }
    // SAFETY: no arguments, no preconditions.
    let n = unsafe { GetLargePageMinimum() };
    (n > 0).then_some(n as u64)
}

#[cfg(not(windows))]
fn large_page_size() -> Option<u64> {
    None
}

/// Asks for transparent huge pages on an anonymous buffer Woolly owns (KV cache, scratch):
/// `madvise(MADV_HUGEPAGE)` over the 2 MiB-aligned part of it. Only advice about Woolly's own
/// memory; it has an effect when the system's THP mode is `madvise` or `always`, and none
/// (silently) otherwise.
pub fn advise_huge_pages<T>(buf: &mut [T]) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        const HUGE: usize = 2 << 20;
        let start = buf.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(buf);
        let lo = start.div_ceil(HUGE) * HUGE;
        let hi = end / HUGE * HUGE;
        if hi > lo {
            // SAFETY: the range lies inside `buf`, which this process owns; MADV_HUGEPAGE does
            // not change its contents.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = buf;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_machine_has_figures() {
        let info = MemoryInfo::detect();
        assert!(info.total_bytes > 0 && info.available_bytes <= info.total_bytes);
        assert!(info.page_size >= 4096);
        #[cfg(target_os = "linux")]
        {
            let text = std::fs::read_to_string("/proc/meminfo").unwrap();
            let kb: u64 = text
                .lines()
                .next()
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(info.total_bytes, kb * 1024);
        }
    }

    #[test]
    fn huge_page_advice_on_a_large_buffer_keeps_contents() {
        let mut v = vec![7u8; 5 << 20];
        advise_huge_pages(&mut v);
        assert!(v.iter().all(|&x| x == 7));
        advise_huge_pages(&mut [0u8; 16]);
    }
}
