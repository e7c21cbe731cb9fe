#![no_main]
//! The `gguf` target: see woolly_fuzz::gguf.

libfuzzer_sys::fuzz_target!(|data: &[u8]| woolly_fuzz::gguf(data));
