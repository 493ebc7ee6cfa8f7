#![no_main]
//! The IDX reader: gzip or raw bytes, as images and as labels. Must never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| apsig::fuzzing::idx(data));
