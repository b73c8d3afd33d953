//! Any byte string as an ELF (see `stackcheck_fuzz::elf`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stackcheck_fuzz::elf(data));
