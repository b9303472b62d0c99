#![no_main]
//! Fuzz target: see `fnhost::fuzzing::zip`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fnhost::fuzzing::zip(data));
