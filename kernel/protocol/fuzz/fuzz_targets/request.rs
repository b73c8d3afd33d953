//! See `svsm_protocol_fuzz::request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_protocol_fuzz::request(data));
