//! Reaching definitions of the register used by an indirect call or jump.

use iced_x86::{FlowControl, Instruction, Mnemonic, OpKind, Register};

use crate::elf::{Image, RelocValue};

const CALLEE_SAVED: [Register; 6] = [
    Register::RBX,
    Register::RBP,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
];

/// Where a register used by an indirect call got its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RegSrc {
    /// A constant: `lea reg,[rip+X]`, `mov reg,imm`, or a constant pointer
    /// slot `mov reg,[rip+X]` (second field true).
    Value(u64, bool),
    /// A load `mov reg,[base+disp]`: as good as `call [base+disp]`.
    Mem(i64),
}

/// Classify the instruction that defines `reg`.
fn classify_def(img: &Image<'_>, p: &Instruction) -> Option<RegSrc> {
    if p.op0_register().size() != 8 {
        return None;
    }
    match (p.mnemonic(), p.op1_kind()) {
        (Mnemonic::Lea, OpKind::Memory) if p.is_ip_rel_memory_operand() => {
            Some(RegSrc::Value(p.ip_rel_memory_address(), false))
        }
        (Mnemonic::Mov, OpKind::Memory) if p.is_ip_rel_memory_operand() => {
            match img.read_slot(p.ip_rel_memory_address())? {
                RelocValue::Value(v) => Some(RegSrc::Value(v, true)),
                RelocValue::Import(_) => None,
            }
        }
        (Mnemonic::Mov, OpKind::Memory)
            if p.memory_index() == Register::None && p.memory_base() != Register::None =>
        {
            Some(RegSrc::Mem(p.memory_displacement64() as i64))
        }
        (Mnemonic::Mov, OpKind::Immediate64 | OpKind::Immediate32to64) => {
            Some(RegSrc::Value(p.immediate(1), false))
        }
        _ => None,
    }
}

fn writes_reg(p: &Instruction, reg: Register) -> bool {
    if p.flow_control() != FlowControl::Next
        || matches!(
            p.mnemonic(),
            Mnemonic::Push | Mnemonic::Cmp | Mnemonic::Test | Mnemonic::Bt
        )
    {
        return false;
    }
    (p.op_count() > 0
        && p.op0_kind() == OpKind::Register
        && p.op0_register().full_register() == reg)
        || (matches!(
            p.mnemonic(),
            Mnemonic::Xchg | Mnemonic::Xadd | Mnemonic::Cmpxchg
        ) && p.op_count() > 1
            && p.op1_kind() == OpKind::Register
            && p.op1_register().full_register() == reg)
}

/// The source of `reg` at the indirect call/jump at `idx`, by reaching
/// definitions over the function's control flow: every definition that can
/// reach the site must be the same constant or the same `[base+disp]` load.
/// The caller's value (function entry), a `pop`, a call clobbering a
/// caller-saved register, or code reached only through a jump table give
/// None (then the site is resolved by the indirect-call policy).
pub(super) fn reg_source(
    img: &Image<'_>,
    instrs: &[Instruction],
    idx: usize,
    reg: Register,
    index_of: &dyn Fn(u64) -> Option<usize>,
) -> Option<RegSrc> {
    const ENTRY: u32 = u32::MAX;
    const OPAQUE: u32 = u32::MAX - 1;
    const MAX_DEFS: usize = 8;
    let reg = reg.full_register();
    if reg.size() != 8 {
        return None;
    }
    let callee_saved = CALLEE_SAVED.contains(&reg);
    let n = instrs.len();
    // Definitions reaching the start of each instruction.
    let mut state: Vec<Option<Vec<u32>>> = vec![None; n];
    state[0] = Some(vec![ENTRY]);
    let mut work = vec![0usize];
    let mut budget = 64 * n + 64;
    while let Some(i) = work.pop() {
        if budget == 0 {
            return None;
        }
        budget -= 1;
        let Some(cur) = state[i].clone() else {
            continue;
        };
        let p = &instrs[i];
        let cur = if cur.contains(&OPAQUE) {
            vec![OPAQUE]
        } else {
            cur
        };
        let out: Vec<u32> = if writes_reg(p, reg) {
            vec![if p.mnemonic() == Mnemonic::Pop {
                OPAQUE
            } else {
                i as u32
            }]
        } else if !callee_saved
            && matches!(
                p.flow_control(),
                FlowControl::Call | FlowControl::IndirectCall
            )
        {
            vec![OPAQUE]
        } else {
            cur
        };
        let mut succ: [Option<usize>; 2] = [None, None];
        match p.flow_control() {
            FlowControl::Next
            | FlowControl::Call
            | FlowControl::IndirectCall
            | FlowControl::XbeginXabortXend => succ[0] = (i + 1 < n).then_some(i + 1),
            FlowControl::Interrupt if p.mnemonic() != Mnemonic::Int3 => {
                succ[0] = (i + 1 < n).then_some(i + 1)
            }
            FlowControl::ConditionalBranch => {
                succ[0] = (i + 1 < n).then_some(i + 1);
                succ[1] = index_of(p.near_branch_target());
            }
            FlowControl::UnconditionalBranch if p.op0_kind() == OpKind::NearBranch64 => {
                succ[0] = index_of(p.near_branch_target())
            }
            _ => {}
        }
        for s in succ.into_iter().flatten() {
            match &mut state[s] {
                slot @ None => {
                    *slot = Some(out.clone());
                    work.push(s);
                }
                Some(old) => {
                    // OPAQUE absorbs (top of the lattice); so does overflow.
                    let mut merged = old.clone();
                    for d in &out {
                        if !merged.contains(d) {
                            merged.push(*d);
                        }
                    }
                    if merged.len() > MAX_DEFS || merged.contains(&OPAQUE) {
                        merged = vec![OPAQUE];
                    }
                    if merged != *old {
                        *old = merged;
                        work.push(s);
                    }
                }
            }
        }
    }
    let defs = state[idx].as_ref()?;
    if std::env::var_os("STACKCHECK_DEBUG").is_some() {
        eprintln!(
            "site {:#x}: defs {:?}",
            instrs[idx].ip(),
            defs.iter()
                .map(|&d| if d >= OPAQUE {
                    format!("{d:#x}")
                } else {
                    format!("{:#x}", instrs[d as usize].ip())
                })
                .collect::<Vec<_>>()
        );
    }
    let mut result: Option<RegSrc> = None;
    for &d in defs {
        if d == ENTRY || d == OPAQUE {
            return None;
        }
        let src = classify_def(img, &instrs[d as usize])?;
        match result {
            None => result = Some(src),
            Some(r) if r == src => {}
            Some(_) => return None,
        }
    }
    result
}
