//! Decoder and emulator against iced-x86 (see `svsm_insn_fuzz::decode`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| svsm_insn_fuzz::decode(data));
