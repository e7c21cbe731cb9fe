//! How many threads each kind of work gets.
//!
//! The policy starts from the hardware ([`Hardware`]): SMT siblings share a core's vector units,
//! so compute-bound work gets one thread per physical core; token generation is bound by memory
//! bandwidth, which a few cores saturate, so it is capped; interactive work leaves a core to the
//! application's UI; background batch work runs at a lower priority. The figures behind the
//! defaults are in BENCHMARKS.md; every choice can be overridden by the caller.

use serde::Serialize;

use crate::platform::process::available_cpus;
use crate::platform::Hardware;
use crate::{Error, Result};

/// How a session spreads its work over threads, spelled the same in C
/// (`WOOLLY_THREADS_AUTO`…), Python (`thread_policy="auto"`), Node (`threadPolicy: 'auto'`) and
/// JSON. The thread counts themselves always come from this module, never from a front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadPolicy {
    /// One thread per physical core for the prompt, capped for generation.
    #[default]
    Auto,
    /// Inside an application with a UI: leave a core to it (never fewer than one thread).
    Interactive,
    /// Background work: the worker threads run at a lower priority (nice 10).
    Background,
}

impl ThreadPolicy {
    /// Every policy, in the order of their C numbers (1, 2, 3).
    pub const ALL: [ThreadPolicy; 3] = [
        ThreadPolicy::Auto,
        ThreadPolicy::Interactive,
        ThreadPolicy::Background,
    ];

    /// The policy's name (as serialized): `auto`, `interactive` or `background`.
    pub fn name(self) -> &'static str {
        match self {
            ThreadPolicy::Auto => "auto",
            ThreadPolicy::Interactive => "interactive",
            ThreadPolicy::Background => "background",
        }
    }

    /// The policy called `name`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the accepted names.
    pub fn from_name(name: &str) -> Result<ThreadPolicy> {
        ThreadPolicy::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "thread policy must be auto, interactive or background, not {name:?}"
                ))
            })
    }

    /// `(interactive, background)`: the flags this policy sets.
    pub fn flags(self) -> (bool, bool) {
        (
            self == ThreadPolicy::Interactive,
            self == ThreadPolicy::Background,
        )
    }
}

/// Kinds of work, each with its own thread count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Prompt processing: large matrix products, compute-bound.
    PromptProcessing,
    /// Generating tokens one at a time: matrix-vector products, bound by memory bandwidth.
    TokenGeneration,
    /// Many requests batched together, in the background.
    BatchInference,
    /// Generation inside an application with a UI: leaves a core free, never fewer than one
    /// worker.
    Interactive,
}

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 4] = [
        Workload::PromptProcessing,
        Workload::TokenGeneration,
        Workload::BatchInference,
        Workload::Interactive,
    ];
}

/// Token generation stops gaining beyond this many threads on desktop memory systems (two to
/// four channels): more threads only add synchronisation.
pub const GENERATION_THREAD_CAP: usize = 8;

/// Nice value of the worker threads of background batch work.
pub const BACKGROUND_NICE: i32 = 10;

/// The most threads a caller may ask for; more is refused as absurd.
pub const MAX_REQUESTED_THREADS: usize = 1024;

/// The threads to run for an explicit request of `requested` (1 to
/// [`MAX_REQUESTED_THREADS`]): at most the CPUs available to the process, because more threads
/// than CPUs only make the workers wait for each other (on 2 cores, 16 threads made generation
/// ten times slower). A capped request is logged as a warning; the count returned is what
/// sessions and engines report.
pub fn cap_threads(requested: usize) -> usize {
    let available = available_cpus();
    if requested > available {
        crate::log!(
            crate::log::Level::Warn,
            "{requested} threads requested, but this process may use only {available} CPUs: \
             capped at {available} threads"
        );
        available
    } else {
        requested.max(1)
    }
}

/// The thread count for `workload` on `hw`.
pub fn threads_for(hw: &Hardware, workload: Workload) -> usize {
    let physical = hw.physical_cores.max(1);
    match workload {
        Workload::PromptProcessing | Workload::BatchInference => physical,
        Workload::TokenGeneration => physical.min(GENERATION_THREAD_CAP),
        Workload::Interactive => {
            // One core for the UI on small machines, two on large ones.
            let spare = if physical >= 8 { 2 } else { 1 };
            physical
                .saturating_sub(spare)
                .clamp(1, GENERATION_THREAD_CAP)
        }
    }
}

/// The logical CPUs to pin `threads` workers to: one per physical core, in order (the first
/// sibling of each), or `None` when there are more threads than physical cores or the topology
/// is unknown.
pub fn spread_cpus(hw: &Hardware, threads: usize) -> Option<Vec<usize>> {
    let cpus = &hw.physical_core_cpus;
    (!cpus.is_empty() && threads <= cpus.len()).then(|| cpus[..threads].to_vec())
}

/// The thread counts Woolly would choose on `hw`, as JSON (for diagnostics and `woolly bench`).
pub fn policy_json(hw: &Hardware) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for w in Workload::ALL {
        let key = serde_json::to_value(w)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        m.insert(key, threads_for(hw, w).into());
    }
    serde_json::Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_policies_by_name() {
        for p in ThreadPolicy::ALL {
            assert_eq!(ThreadPolicy::from_name(p.name()).unwrap(), p);
            assert_eq!(serde_json::to_value(p).unwrap(), p.name());
        }
        assert_eq!(ThreadPolicy::default(), ThreadPolicy::Auto);
        assert_eq!(ThreadPolicy::Interactive.flags(), (true, false));
        assert_eq!(ThreadPolicy::Background.flags(), (false, true));
        let e = ThreadPolicy::from_name("Interactive")
            .unwrap_err()
            .to_string();
        assert!(e.contains("auto, interactive or background"), "{e}");
    }

    fn hw(physical: usize, logical: usize) -> Hardware {
        let mut h = Hardware::detect();
        h.physical_cores = physical;
        h.logical_cores = logical;
        h.physical_core_cpus = (0..physical).map(|i| i * (logical / physical)).collect();
        h
    }

    #[test]
    fn policy_by_core_count() {
        let two = hw(2, 2);
        assert_eq!(threads_for(&two, Workload::PromptProcessing), 2);
        assert_eq!(threads_for(&two, Workload::TokenGeneration), 2);
        assert_eq!(threads_for(&two, Workload::Interactive), 1);
        let one = hw(1, 2);
        assert_eq!(threads_for(&one, Workload::Interactive), 1);
        assert_eq!(threads_for(&one, Workload::PromptProcessing), 1);
        let big = hw(16, 32);
        assert_eq!(threads_for(&big, Workload::PromptProcessing), 16);
        assert_eq!(threads_for(&big, Workload::BatchInference), 16);
        assert_eq!(threads_for(&big, Workload::TokenGeneration), 8);
        assert_eq!(threads_for(&big, Workload::Interactive), 8);
        assert_eq!(threads_for(&hw(8, 16), Workload::Interactive), 6);
        assert_eq!(spread_cpus(&big, 4), Some(vec![0, 2, 4, 6]));
        assert_eq!(spread_cpus(&big, 17), None);
        let j = policy_json(&two);
        assert_eq!(j["interactive"], 1);
        assert_eq!(j["prompt_processing"], 2);
    }

    #[test]
    fn requests_are_capped_at_the_available_cpus() {
        let n = available_cpus();
        assert!(n >= 1);
        assert_eq!(cap_threads(1), 1);
        assert_eq!(cap_threads(n), n);
        assert_eq!(cap_threads(n + 1), n);
        assert_eq!(cap_threads(MAX_REQUESTED_THREADS), n);
    }

    #[test]
    fn the_real_machine_gets_at_least_one_thread() {
        let h = Hardware::detect();
        for w in Workload::ALL {
            let n = threads_for(&h, w);
            assert!(n >= 1 && n <= h.logical_cores.max(1), "{w:?}: {n}");
        }
    }
}
