//! `woolly_memory_policy`: what Woolly may use of the machine's memory, as model params, the
//! model cache and memory reports take it (below `model`, which carries one in its params).

use crate::boundary::{fail, Failure};
use crate::status::woolly_status::*;

/// What Woolly may use of the machine's memory. Zero in a field means its default.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct woolly_memory_policy {
    /// A hard limit on what Woolly holds for this model (or for every model of a
    /// `woolly_cache`) and its sessions, in bytes (0: none beyond what the system has).
    pub budget_bytes: u64,
    /// Memory left to the system and other programs (0: 25% of RAM up to 8 GiB, 20% up to
    /// 16 GiB, about 17% up to 32 GiB, 12.5% above).
    pub reserve_bytes: u64,
    /// Used fraction of RAM from which the machine counts as under pressure (0: 0.85).
    pub pressure_threshold: f32,
}

impl woolly_memory_policy {
    pub(crate) fn core(&self) -> Result<woolly_core::policy::memory::MemoryPolicy, Failure> {
        let t = self.pressure_threshold;
        if t != 0.0 && !(t > 0.0 && t <= 1.0) {
            return fail(
                WOOLLY_ERR_INVALID_ARGUMENT,
                format!("pressure_threshold = {t} must be 0 (default) or in (0, 1]"),
            );
        }
        Ok(woolly_core::policy::memory::MemoryPolicy {
            budget_bytes: (self.budget_bytes != 0).then_some(self.budget_bytes),
            reserve_bytes: (self.reserve_bytes != 0).then_some(self.reserve_bytes),
            pressure_threshold: (t != 0.0).then_some(t as f64),
            ..Default::default()
        })
    }
}
