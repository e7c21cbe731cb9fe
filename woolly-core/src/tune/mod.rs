//! Tuning Woolly to the machine it runs on.

pub mod files;
pub mod gpu;
pub mod hardware;
pub mod memory;
pub mod pool;
pub mod power;
pub mod process;
pub mod threads;

pub use hardware::{CacheInfo, Hardware, SimdFeatures};
pub use pool::ThreadPool;
pub use threads::{threads_for, Workload};
