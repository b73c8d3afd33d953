//! memcpy/memmove/memset calls with a constant size.

use iced_x86::{FlowControl, Instruction, Mnemonic, OpKind, Register};

const MEM_FUNCS: [&str; 6] = [
    "memcpy",
    "memmove",
    "memset",
    "__memcpy_chk",
    "__memmove_chk",
    "__memset_chk",
];

/// The memory function `name` is (its last path component), if any.
pub(super) fn is_mem_func(name: &str) -> Option<&'static str> {
    let last = name.rsplit("::").next().unwrap_or(name);
    MEM_FUNCS.iter().copied().find(|m| *m == last)
}

/// Constant loaded into rdx/edx before the call at `idx`, within the block.
/// Whether `rdi` holds an address in the current frame at `instrs[idx]`:
/// the last straight-line write to it is `lea rdi, [rsp/rbp + d]` or
/// `mov rdi, rsp/rbp` (a copy from another register is followed once).
pub(super) fn rdi_is_stack_before(instrs: &[Instruction], idx: usize) -> bool {
    let mut want = Register::RDI;
    for prev in instrs[..idx].iter().rev().take(24) {
        if !matches!(prev.flow_control(), FlowControl::Next) {
            return false;
        }
        if prev.op_count() == 0
            || prev.op0_kind() != OpKind::Register
            || prev.op0_register().full_register() != want
        {
            continue;
        }
        let frame_reg = |r: Register| matches!(r, Register::RSP | Register::RBP);
        return match prev.mnemonic() {
            Mnemonic::Lea => frame_reg(prev.memory_base()) && prev.memory_index() == Register::None,
            Mnemonic::Mov if prev.op1_kind() == OpKind::Register => {
                let src = prev.op1_register().full_register();
                if frame_reg(src) {
                    true
                } else if want == Register::RDI {
                    want = src;
                    continue;
                } else {
                    false
                }
            }
            _ => false,
        };
    }
    false
}

pub(super) fn const_rdx_before(instrs: &[Instruction], idx: usize) -> Option<u64> {
    for prev in instrs[..idx].iter().rev().take(16) {
        if !matches!(prev.flow_control(), FlowControl::Next) {
            return None;
        }
        if prev.op_count() > 0
            && prev.op0_kind() == OpKind::Register
            && prev.op0_register().full_register() == Register::RDX
        {
            if prev.mnemonic() == Mnemonic::Mov && prev.op_count() == 2 {
                return match prev.op1_kind() {
                    OpKind::Immediate32
                    | OpKind::Immediate64
                    | OpKind::Immediate32to64
                    | OpKind::Immediate16
                    | OpKind::Immediate8 => Some(prev.immediate(1)),
                    _ => None,
                };
            }
            if prev.mnemonic() == Mnemonic::Xor
                && prev.op1_kind() == OpKind::Register
                && prev.op1_register().full_register() == Register::RDX
            {
                return Some(0);
            }
            return None;
        }
        // Implicit writers of rdx.
        if matches!(
            prev.mnemonic(),
            Mnemonic::Mul
                | Mnemonic::Div
                | Mnemonic::Idiv
                | Mnemonic::Cqo
                | Mnemonic::Cdq
                | Mnemonic::Rdtsc
                | Mnemonic::Rdmsr
                | Mnemonic::Cpuid
        ) {
            return None;
        }
    }
    None
}
