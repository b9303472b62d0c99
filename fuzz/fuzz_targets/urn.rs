#![no_main]
//! Fuzz target: see `fnhost::fuzzing::urn`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fnhost::fuzzing::urn(data));
