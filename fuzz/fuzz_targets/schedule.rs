#![no_main]
//! Fuzz target: see `fnhost::fuzzing::schedule`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fnhost::fuzzing::schedule(data));
