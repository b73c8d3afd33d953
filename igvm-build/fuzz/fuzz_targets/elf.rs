//! Any bytes as a stage2 or kernel ELF (see `igvm_build_fuzz::elf`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| igvm_build_fuzz::elf(data));
