#![no_main]
//! Fuzz target: see `fnhost::fuzzing::event`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fnhost::fuzzing::event(data));
