//! What the platform reports: the CPU ([`hardware`]), GPUs ([`gpu`]), memory figures
//! ([`memory`]), this process ([`process`]) and model files ([`files`]). Per-OS code sits behind
//! `cfg` in each file. Nothing here decides anything: the policies above it do, and
//! nothing here changes the system.

pub mod cuda;
pub mod files;
pub mod gpu;
pub mod hardware;
pub mod memory;
pub mod process;

pub use hardware::{CacheInfo, Hardware, SimdFeatures};
