#![no_main]
//! The `c_api` target: see woolly_fuzz::c_api.

libfuzzer_sys::fuzz_target!(|data: &[u8]| woolly_fuzz::c_api(data));
