//! See `svsm_protocol_fuzz::pvalidate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_protocol_fuzz::pvalidate(data));
