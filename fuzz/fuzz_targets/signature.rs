#![no_main]
//! Fuzz target: see `fnhost::fuzzing::signature`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fnhost::fuzzing::signature(data));
