#![no_main]
//! The `tokenizer` target: see woolly_fuzz::tokenizer.

libfuzzer_sys::fuzz_target!(|data: &[u8]| woolly_fuzz::tokenizer(data));
