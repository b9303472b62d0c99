#![no_main]
//! Fuzz target: see `fnhost_server::fuzzing::zip`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fnhost_server::fuzzing::zip(data));
