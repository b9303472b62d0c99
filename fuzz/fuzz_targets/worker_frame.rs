#![no_main]
//! Fuzz target: see `fnhost::fuzzing::worker_frame`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fnhost::fuzzing::worker_frame(data));
