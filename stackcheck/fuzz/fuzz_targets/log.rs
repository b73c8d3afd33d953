//! Any text as a serial log (see `stackcheck_fuzz::log`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stackcheck_fuzz::log(data));
