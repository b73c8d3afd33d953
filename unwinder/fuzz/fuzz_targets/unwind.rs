//! CFI parsing and unwinding together (see `svsm_unwinder_fuzz::unwind`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_unwinder_fuzz::unwind(data));
