#![no_main]
//! Fuzz target: see `fnhost::fuzzing::elf`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fnhost::fuzzing::elf(data));
