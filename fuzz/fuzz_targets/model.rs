#![no_main]
//! The model loader: safetensors parsing, metadata, architecture and tensor checks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| apsig::fuzzing::model(data));
