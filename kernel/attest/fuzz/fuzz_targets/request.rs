//! Attestation requests (see `svsm_attest_fuzz::run`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_attest_fuzz::run(data));
