//! Stack-probe check: no function may move `rsp` down by more than one page
//! without touching the page it moved onto. With inline stack probes (the
//! x86_64-unknown-none default, also for core/alloc rebuilt with
//! `-Zbuild-std`) every large frame is allocated a page at a time, each page
//! written right after `sub rsp, 0x1000`, so a frame can never jump over a
//! guard page. A function without probes shows up as `sub rsp, N` (or `lea
//! rsp, [rsp-N]`) with N > 4096, or as a `sub rsp, 0x1000` that is not
//! followed by a store to `[rsp]`, or as a variable-sized allocation.

use crate::elf::Image;
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

/// Page size the probes step by.
pub const PROBE_STEP: u64 = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeFinding {
    pub function: String,
    pub addr: u64,
    pub what: String,
}

fn touches_rsp(i: &Instruction) -> bool {
    (0..i.op_count()).any(|n| {
        i.op_kind(n) == OpKind::Memory
            && i.memory_base() == Register::RSP
            && i.memory_index() == Register::None
            && i.memory_displacement64() == 0
    }) && matches!(
        i.mnemonic(),
        Mnemonic::Mov | Mnemonic::Or | Mnemonic::And | Mnemonic::Test
    )
}

/// Bytes an instruction moves `rsp` down by when it is an immediate
/// adjustment (`sub rsp, imm`, `add rsp, -imm`, `lea rsp, [rsp-imm]`).
fn rsp_decrement(i: &Instruction) -> Option<u64> {
    if i.op0_kind() != OpKind::Register || i.op0_register() != Register::RSP {
        return None;
    }
    match i.mnemonic() {
        Mnemonic::Sub if i.op_count() == 2 && i.op1_kind() != OpKind::Register => {
            Some(i.immediate(1))
        }
        Mnemonic::Add if i.op_count() == 2 && i.op1_kind() != OpKind::Register => {
            let v = i.immediate(1) as i64;
            (v < 0).then(|| v.unsigned_abs())
        }
        Mnemonic::Lea if i.memory_base() == Register::RSP && i.memory_index() == Register::None => {
            let d = i.memory_displacement64() as i64;
            (d < 0).then(|| d.unsigned_abs())
        }
        _ => None,
    }
}

/// Every unprobed stack allocation in the image's functions.
pub fn check(img: &Image) -> Vec<ProbeFinding> {
    let mut out = Vec::new();
    for f in &img.functions {
        let Some(code) = img.code(f) else { continue };
        let mut dec = Decoder::with_ip(64, code, f.addr, DecoderOptions::NONE);
        let mut prev: Option<(Instruction, u64)> = None;
        let mut insn = Instruction::default();
        while dec.can_decode() {
            dec.decode_out(&mut insn);
            if insn.is_invalid() {
                break;
            }
            if let Some((p, amount)) = prev.take()
                && !touches_rsp(&insn)
            {
                out.push(ProbeFinding {
                    function: f.demangled.clone(),
                    addr: p.ip(),
                    what: format!("rsp moved down {amount} bytes without touching the new page"),
                });
            }
            if let Some(n) = rsp_decrement(&insn) {
                if n > PROBE_STEP {
                    out.push(ProbeFinding {
                        function: f.demangled.clone(),
                        addr: insn.ip(),
                        what: format!("unprobed stack allocation of {n} bytes"),
                    });
                } else if n == PROBE_STEP {
                    prev = Some((insn, n));
                }
            } else if insn.op0_kind() == OpKind::Register
                && insn.op0_register() == Register::RSP
                && insn.mnemonic() == Mnemonic::Sub
                && insn.op1_kind() == OpKind::Register
            {
                out.push(ProbeFinding {
                    function: f.demangled.clone(),
                    addr: insn.ip(),
                    what: "variable-sized stack allocation (sub rsp, reg)".into(),
                });
            }
        }
    }
    out
}
