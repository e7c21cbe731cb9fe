//! The CUDA kernels' own source (kernels/*.cuh), built for the host with kernels/host/emulate.h
//! (each block's threads as real threads, barriers for __syncthreads and warp shuffles), checked
//! against the CPU's scalar twins by the same code `woolly gpu-check kernels` runs on a GPU
//! (`backend::cuda::check::check_on`). The GPU's own compiler and timing are `make gpu-check`'s.
#![cfg(feature = "cuda")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde_json::{json, Value};
use woolly_core::backend::cuda::check::{check_on, KernelDevice, Param};
use woolly_core::backend::cuda::kernel_names;
use woolly_core::{Error, Result};

type Launch = unsafe extern "C" fn(
    *const std::ffi::c_char,
    *const u32,
    *const u32,
    *mut *mut std::ffi::c_void,
) -> i32;
type Count = unsafe extern "C" fn() -> i32;

/// The kernels as a host library, and the buffers the check allocates (8-byte aligned).
struct Host {
    lib: libloading::Library,
    buffers: Mutex<Vec<Vec<u64>>>,
}

fn kernels_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernels")
}

/// Builds kernels/host/twin.cpp with the system's C++ compiler (into the test's temporary
/// directory), or says why it cannot.
fn build() -> std::result::Result<PathBuf, String> {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("woolly-kernels-host.so");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "g++".into());
    let src = kernels_dir().join("host/twin.cpp");
    let status = Command::new(&cxx)
        .args(["-std=c++20", "-O2", "-shared", "-fPIC", "-pthread", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .map_err(|e| format!("{cxx}: {e}"))?;
    if !status.success() {
        return Err(format!("{cxx} failed on {} ({status})", src.display()));
    }
    Ok(out)
}

impl Host {
    fn load() -> Host {
        let path = match build() {
            Ok(p) => p,
            // A C++20 compiler is part of the build's requirements (make test builds the C
            // examples with it); without one the kernels cannot be checked here.
            Err(e) => panic!("cannot build the kernels for the host: {e}"),
        };
        // SAFETY: the library is ours (kernels/host/twin.cpp) and has no initializers that
        // depend on the loading process.
        let lib = unsafe { libloading::Library::new(&path) }.expect("load the host kernels");
        Host {
            lib,
            buffers: Mutex::new(Vec::new()),
        }
    }
}

impl KernelDevice for Host {
    fn describe(&self) -> Value {
        json!({"name": "the kernels built for the host (kernels/host/emulate.h)"})
    }

    fn alloc(&self, bytes: &[u8]) -> Result<u64> {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: `words` holds at least `bytes.len()` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), words.as_mut_ptr().cast(), bytes.len())
        };
        let p = words.as_ptr() as u64;
        self.buffers.lock().unwrap().push(words);
        Ok(p)
    }

    fn read(&self, ptr: u64, len: usize) -> Result<Vec<u8>> {
        let buffers = self.buffers.lock().unwrap();
        let b = buffers
            .iter()
            .find(|b| b.as_ptr() as u64 == ptr && b.len() * 8 >= len)
            .ok_or_else(|| Error::Internal(format!("no buffer at {ptr:#x}")))?;
        // SAFETY: the buffer holds at least `len` bytes.
        Ok(unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<u8>(), len) }.to_vec())
    }

    fn launch(
        &self,
        name: &str,
        grid: (u32, u32, u32),
        block: (u32, u32, u32),
        params: &[Param],
    ) -> Result<()> {
        // Each parameter in an 8-byte slot: the kernel reads its own width from the start.
        let mut slots: Vec<u64> = params
            .iter()
            .map(|p| match *p {
                Param::Ptr(v) => v,
                Param::I32(v) => v as u32 as u64,
                Param::F32(v) => v.to_bits() as u64,
            })
            .collect();
        let mut args: Vec<*mut std::ffi::c_void> =
            slots.iter_mut().map(|s| (s as *mut u64).cast()).collect();
        let g = [grid.0, grid.1, grid.2];
        let b = [block.0, block.1, block.2];
        let cname = std::ffi::CString::new(name).unwrap();
        // SAFETY: the symbol has this signature (kernels/host/twin.cpp); `args` points at one
        // value per kernel parameter, alive for the call, and the buffers they address hold
        // what the check sized them for.
        let rc = unsafe {
            let f: libloading::Symbol<Launch> = self.lib.get(b"woolly_emulate_launch").unwrap();
            f(cname.as_ptr(), g.as_ptr(), b.as_ptr(), args.as_mut_ptr())
        };
        if rc != 0 {
            return Err(Error::Internal(format!("no host kernel {name}")));
        }
        Ok(())
    }
}

#[test]
fn every_kernel_matches_its_cpu_twin_on_the_host() {
    let host = Host::load();
    // SAFETY: as in launch.
    let count = unsafe {
        let f: libloading::Symbol<Count> = host.lib.get(b"woolly_emulate_kernels").unwrap();
        f()
    };
    assert_eq!(
        count as usize,
        kernel_names().len(),
        "the host build has every kernel"
    );
    let report = check_on(&host).expect("every launch runs");
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert_eq!(report["ok"], json!(true), "failed: {}", report["failed"]);
}
