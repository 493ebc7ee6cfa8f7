#![no_main]
//! The signature-file loader.
libfuzzer_sys::fuzz_target!(|data: &[u8]| apsig::fuzzing::signatures(data));
