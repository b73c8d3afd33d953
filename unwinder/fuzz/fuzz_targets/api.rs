//! The unwinder's public API (see `svsm_unwinder_fuzz::api`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_unwinder_fuzz::api(data));
