#![no_main]
//! The `chat_template` target: see woolly_fuzz::chat_template.

libfuzzer_sys::fuzz_target!(|data: &[u8]| woolly_fuzz::chat_template(data));
