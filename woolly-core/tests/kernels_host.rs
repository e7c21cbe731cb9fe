//! The CUDA kernels' own source (kernels/*.cuh), built for the host with kernels/host/emulate.h
//! (each block's threads as real threads, barriers for __syncthreads and warp shuffles), checked
//! against the CPU's scalar twins by the same code `woolly gpu-check kernels` runs on a GPU
//! (`backend::cuda::check::check_on`). The GPU's own compiler and timing are `make gpu-check`'s.
#![cfg(feature = "cuda-emulator")]

use serde_json::json;
use woolly_core::backend::cuda::check::{check_on, GpuDevice};
use woolly_core::backend::cuda::{emulator, Gpu};

#[test]
fn every_kernel_matches_its_cpu_twin_on_the_host() {
    emulator::install(&woolly_core::testing::host_kernels_library())
        .expect("load the host kernels");
    let gpu = Gpu::open(0).expect("the emulated device opens");
    assert!(gpu.is_emulated());
    let report = check_on(&GpuDevice::new(gpu)).expect("every launch runs");
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert_eq!(report["ok"], json!(true), "failed: {}", report["failed"]);
}
