//! Compute kernels: the CPU's (SIMD chosen at run time, each with its scalar twin) and the
//! storage formats they read ([`kv`]).
pub mod cpu;
pub mod kv;
