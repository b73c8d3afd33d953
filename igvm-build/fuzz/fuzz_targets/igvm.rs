//! Any bytes as an IGVM file (see `igvm_build_fuzz::igvm`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| igvm_build_fuzz::igvm(data));
