//! The bodies of the unwinder's fuzz targets, shared by the libFuzzer
//! binaries (fuzz_targets/, `make fuzz`) and the corpus replay test that runs
//! in `make test` on stable (unwinder/tests/fuzz_corpus.rs).
//!
//! Input layout (both targets): u16 hdr_len, u16 eh_frame_len, 8 x u64
//! registers, hdr bytes, eh_frame bytes, then the stack contents (mapped at
//! STACK_BASE). `api` reads one more control byte after the registers.

use std::cell::Cell;
use svsm_unwinder::{
    CfiSections, ExceptionEntry, Memory, Module, Regs, StopReason, UnwindState, Walk, coverage,
    write_backtrace,
};

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
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes);
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

/// One input, split.
struct Input<'a> {
    regs: Regs,
    control: u8,
    hdr: &'a [u8],
    eh: &'a [u8],
    stack: &'a [u8],
}

/// Splits the input into registers, control byte, hdr, eh_frame and stack.
fn split(data: &[u8], with_control: bool) -> Option<Input<'_>> {
    let hdr_len = u16_at(data, 0);
    let eh_len = u16_at(data, 2);
    let regs = data.get(4..68)?;
    let r = |i: usize| {
        regs.get(i * 8..i * 8 + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
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
    let (control, rest) = if with_control {
        (*data.get(68)?, data.get(69..)?)
    } else {
        (0, data.get(68..)?)
    };
    let hdr = rest.get(..hdr_len)?;
    let eh = rest.get(hdr_len..hdr_len + eh_len)?;
    Some(Input {
        regs,
        control,
        hdr,
        eh,
        stack: &rest[hdr_len + eh_len..],
    })
}

fn module<'a>(hdr: &'a [u8], eh: &'a [u8]) -> Option<Module<'a>> {
    Module::new(CfiSections {
        eh_frame_hdr: hdr,
        eh_frame_hdr_addr: EH_FRAME_HDR_ADDR,
        eh_frame: eh,
        eh_frame_addr: EH_FRAME_ADDR,
    })
    .ok()
}

/// CFI parsing and unwinding together. Checks: no panic, at most LIMIT
/// frames, no read after a refused read, refused reads only outside the
/// stack, and a stack pointer that grows between ordinary frames.
pub fn unwind(data: &[u8]) {
    let Some(Input {
        regs,
        hdr,
        eh,
        stack,
        ..
    }) = split(data, false)
    else {
        return;
    };
    let Some(module) = module(hdr, eh) else {
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
}

/// The rest of the public API on the same input: FDE queries at the
/// registers' addresses, every FDE, a walk started from an exception with
/// all registers trusted (chosen by the control byte), the frame limit from
/// the control byte, and the BACKTRACE formatter.
pub fn api(data: &[u8]) {
    let Some(Input {
        regs,
        control,
        hdr,
        eh,
        stack,
    }) = split(data, true)
    else {
        return;
    };
    let Some(module) = module(hdr, eh) else {
        return;
    };
    // The FDE found for a pc covers it. (With a malformed, unsorted search
    // table it may lie outside pc_range, so `spans` is not compared.)
    for pc in [regs.rip, regs.rbp, regs.rbx, regs.rip.wrapping_sub(1)] {
        let _ = module.spans(pc);
        if let Some((lo, hi)) = module.fde_range(pc) {
            assert!(lo <= pc && pc < hi, "fde_range({pc:#x}) = {lo:#x}..{hi:#x}");
        }
    }
    // Any table (also an unsorted one, whose FDEs need not lie inside
    // pc_range) is walked without a panic.
    let _ = module.for_each_fde(|_, _| {});
    let modules = [module];
    let mem = Stack {
        bytes: stack,
        refused: Cell::new(false),
        read_after_refusal: Cell::new(false),
    };
    let mut state = Box::new(UnwindState::new());
    let limit = usize::from(control & 0x3f);
    let mut walk = Walk::new(&modules, &mem, &mut state, regs).with_limit(limit);
    if control & 0x40 != 0 {
        walk = walk.with_all_registers_valid();
    }
    if control & 0x80 != 0 {
        walk = walk.from_exception(ExceptionEntry {
            stub_pc: regs.r12,
            stub_cfa: regs.r13,
        });
    }
    let mut out = String::new();
    let stop = write_backtrace(
        &mut out,
        &regs.r14.to_le_bytes(),
        walk,
        |pc| Some(("fuzz", pc & 0xfff)),
        |_| Some(14),
    )
    .expect("writing to a String");
    let frames = out.lines().filter(|l| l.starts_with("  #")).count();
    assert!(frames <= limit);
    assert!(out.ends_with(&format!("stop={}\n", stop.name())));
    assert_eq!(StopReason::from_name(stop.name()), Some(stop));
}
