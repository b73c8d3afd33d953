//! Any text as a config (see `stackcheck_fuzz::config`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stackcheck_fuzz::config(data));
