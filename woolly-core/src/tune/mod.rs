//! Tuning Woolly to the machine it runs on.

pub mod hardware;
pub mod pool;

pub use hardware::{CacheInfo, Hardware, SimdFeatures};
pub use pool::ThreadPool;
