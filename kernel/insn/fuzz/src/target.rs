//! Input: byte 0 picks the mode (and REP budget), bytes 1..9 seed rCX, the
//! rest are the instruction bytes (fewer than the instruction needs is a
//! fetch fault for us and "no more bytes" for iced). Ours and iced must
//! agree on every supported form and both refuse the rest; a decoded
//! instruction is then emulated on a fake machine, which must not panic
//! and must leave RIP either advanced by the length or unchanged.

use crate::common::{Norm, iced, ours};
use crate::machine::{Dev, Guest};
use svsm_insn::{Mode, Outcome, SliceFetch, decode as decode_insn, emulate};

pub fn decode(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mode = [Mode::Long64, Mode::Protected32, Mode::Protected16][usize::from(sel % 3)];
    let (rcx, bytes) = rest.split_at(rest.len().min(8));
    let theirs: Option<Norm> = iced(bytes, mode);
    let mine = ours(bytes, mode);
    match (&theirs, &mine) {
        (Some(t), Ok(m)) => assert_eq!(t, m, "{mode:?} {bytes:02x?}"),
        (None, Err(_)) => {}
        _ => panic!("{mode:?} {bytes:02x?}: iced {theirs:?}, ours {mine:?}"),
    }
    if mode != Mode::Long64 || mine.is_err() {
        return;
    }
    let rip = crate::common::ip(mode);
    let insn = decode_insn(&mut SliceFetch { base: rip, bytes }, rip, mode).expect("decoded above");
    let mut g = Guest {
        rip,
        rflags: u64::from(sel & 0x80) << 3, // DF from the selector's top bit
        ..Guest::default()
    };
    g.gpr[1] = rcx.iter().fold(0, |a, b| (a << 8) | u64::from(*b));
    g.map(0, 64);
    let mut d = Dev::default();
    match emulate(&insn, &mut g, &mut d, u64::from(sel >> 3)) {
        Ok(Outcome::Done) => assert_eq!(g.rip, rip.wrapping_add(u64::from(insn.len))),
        Ok(Outcome::Partial) | Err(_) => assert_eq!(g.rip, rip),
    }
}
