//! Fuzzes CFI parsing and unwinding together: the input supplies
//! `.eh_frame_hdr`, `.eh_frame`, the starting registers and the stack.
//!
//! Layout: u16 hdr_len, u16 eh_frame_len, 8 x u64 registers, hdr bytes,
//! eh_frame bytes, then the stack contents (mapped at STACK_BASE).
//! Checks: no panic, at most LIMIT frames, no read after a refused read,
//! refused reads only outside the stack, and a stack pointer that grows
//! between ordinary frames.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::Cell;
use svsm_unwinder::{CfiSections, Memory, Module, Regs, StopReason, UnwindState, Walk, coverage};

const EH_FRAME_HDR_ADDR: u64 = 0x20_0000;
const EH_FRAME_ADDR: u64 = 0x10_0000;
const STACK_BASE: u64 = 0x8000;
const LIMIT: usize = 64;

struct Stack<'a> {
    bytes: &'a [u8],
    refused: Cell<bool>,
    read_after_refusal: Cell<bool>,
}

impl Memory for Stack<'_> {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        if self.refused.get() {
            self.read_after_refusal.set(true);
        }
        let v = addr
            .checked_sub(STACK_BASE)
            .and_then(|o| usize::try_from(o).ok())
            .and_then(|o| self.bytes.get(o..o.checked_add(8)?))
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()));
        if v.is_none() {
            self.refused.set(true);
        }
        v
    }
}

fn u16_at(d: &[u8], i: usize) -> usize {
    d.get(i..i + 2)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]) as usize)
}

fuzz_target!(|data: &[u8]| {
    let hdr_len = u16_at(data, 0);
    let eh_len = u16_at(data, 2);
    let Some(regs) = data.get(4..68) else { return };
    let r = |i: usize| u64::from_le_bytes(regs[i * 8..i * 8 + 8].try_into().unwrap());
    let regs = Regs {
        rip: r(0),
        rsp: r(1),
        rbp: r(2),
        rbx: r(3),
        r12: r(4),
        r13: r(5),
        r14: r(6),
        r15: r(7),
        ..Regs::default()
    };
    let rest = &data[68..];
    let Some(hdr) = rest.get(..hdr_len) else {
        return;
    };
    let Some(eh) = rest.get(hdr_len..hdr_len + eh_len) else {
        return;
    };
    let stack = &rest[hdr_len + eh_len..];
    let Ok(module) = Module::new(CfiSections {
        eh_frame_hdr: hdr,
        eh_frame_hdr_addr: EH_FRAME_HDR_ADDR,
        eh_frame: eh,
        eh_frame_addr: EH_FRAME_ADDR,
    }) else {
        return;
    };
    let (lo, hi) = module.pc_range();
    let _ = coverage(
        &module,
        lo,
        hi.min(lo.saturating_add(1 << 20)),
        None,
        |_, _, _| {},
    );
    let modules = [module];
    let mem = Stack {
        bytes: stack,
        refused: Cell::new(false),
        read_after_refusal: Cell::new(false),
    };
    let mut state = Box::new(UnwindState::new());
    let mut walk = Walk::new(&modules, &mem, &mut state, regs).with_limit(LIMIT);
    let mut prev_sp = None;
    let mut n = 0;
    for f in walk.by_ref() {
        n += 1;
        if let (Some(p), None) = (prev_sp, f.exception) {
            assert!(f.sp > p, "sp did not grow");
        }
        prev_sp = Some(f.sp);
    }
    assert!(n <= LIMIT);
    assert!(!mem.read_after_refusal.get(), "read after a refused read");
    assert_eq!(
        mem.refused.get(),
        walk.stop_reason() == Some(StopReason::BadMemory)
    );
});
