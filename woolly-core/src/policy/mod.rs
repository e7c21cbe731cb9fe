//! The policies that decide from what [`crate::platform`] reports: how many threads and where
//! ([`threads`], the one resolver every front end uses), what memory Woolly may use
//! ([`memory`]), and how hard it runs for the power source and temperature ([`power`]).

pub mod memory;
pub mod placement;
pub mod power;
pub mod threads;

pub use threads::{threads_for, ThreadPolicy, Workload};
