//! APIC registers and protocol calls (see `svsm_apic_fuzz::run_ops`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_apic_fuzz::run_ops(data));
