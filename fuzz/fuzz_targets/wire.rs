#![no_main]
//! The service's binary wire format (request bodies and bit answers).
libfuzzer_sys::fuzz_target!(|data: &[u8]| apsig_serve::fuzzing::wire(data));
