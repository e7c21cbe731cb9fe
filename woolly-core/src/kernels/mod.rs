//! Compute kernels.
pub mod cpu;
