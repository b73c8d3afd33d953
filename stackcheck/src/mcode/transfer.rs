//! The transfer function of the machine-code analysis: one instruction's
//! effect on the stack depth, the tracked registers and the control flow.

use iced_x86::{FlowControl, Instruction, Mnemonic, OpKind, Register};

use super::{CALLER_SAVED, RSP, State, Val, gpr_index};

pub(super) enum Step {
    /// Continue to these successors (instruction indices) with the new state.
    Next(Vec<usize>),
    End,
    Unknown(String),
}

/// The register operands of an instruction, as the effects need them.
struct Ops {
    op0_reg: Option<Register>,
    op0_gpr: Option<usize>,
    op0_is_rsp: bool,
    op1_reg: Option<Register>,
}

impl Ops {
    fn of(ins: &Instruction) -> Self {
        let reg = |k: u32| {
            (ins.op_count() > k && ins.op_kind(k) == OpKind::Register).then(|| ins.op_register(k))
        };
        let op0_reg = reg(0);
        Ops {
            op0_reg,
            op0_gpr: op0_reg.and_then(gpr_index),
            op0_is_rsp: op0_reg == Some(Register::RSP),
            op1_reg: reg(1),
        }
    }
}

fn imm_of(ins: &Instruction, op: u32) -> Option<i64> {
    match ins.op_kind(op) {
        OpKind::Immediate8
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate64
        | OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate32to64 => Some(ins.immediate(op) as i64),
        _ => None,
    }
}

pub(super) fn transfer(
    ins: &Instruction,
    st: &mut State,
    i: usize,
    instrs: &[Instruction],
    index_of: &dyn Fn(u64) -> Option<usize>,
    table: Option<&Vec<usize>>,
) -> Step {
    let ops = Ops::of(ins);
    let before = st.clone();
    if let Err(why) = stack_effect(ins, &ops, st) {
        return Step::Unknown(why);
    }
    register_effect(ins, &ops, &before, st);
    record_push(ins, &ops, &before, st);
    clobber_implicit(ins.mnemonic(), st);
    control_flow(ins, st, i, instrs, index_of, table)
}

/// How the instruction moves rsp. Err: a write to rsp that cannot be followed.
fn stack_effect(ins: &Instruction, ops: &Ops, st: &mut State) -> Result<(), String> {
    let m = ins.mnemonic();
    let reg_val = |r: Option<Register>| r.and_then(gpr_index).map(|r| st.regs[r]);
    match m {
        Mnemonic::Sub | Mnemonic::Add if ops.op0_is_rsp => {
            let v = imm_of(ins, 1).or(match reg_val(ops.op1_reg) {
                Some(Val::Const(c)) => Some(c),
                _ => None,
            });
            let Some(v) = v else {
                return Err(format!("{m:?} rsp by a non-constant at {:#x}", ins.ip()));
            };
            st.depth = if m == Mnemonic::Sub {
                st.depth.saturating_add(v)
            } else {
                st.depth.saturating_sub(v)
            };
        }
        Mnemonic::And if ops.op0_is_rsp => {
            let Some(v) = imm_of(ins, 1) else {
                return Err(format!("and rsp, non-constant at {:#x}", ins.ip()));
            };
            // Aligning down to 2^k costs at most 2^k - 8 on an 8-aligned stack.
            let align = (!v).wrapping_add(1);
            if align > 8 {
                st.depth = st.depth.saturating_add(align - 8);
            }
        }
        Mnemonic::Lea if ops.op0_is_rsp => {
            if ins.memory_index() != Register::None {
                return Err(format!("lea rsp with index at {:#x}", ins.ip()));
            }
            let disp = ins.memory_displacement64() as i64;
            let base = gpr_index(ins.memory_base()).map(|r| {
                if r == RSP {
                    Val::Stack(st.depth)
                } else {
                    st.regs[r]
                }
            });
            let Some(Val::Stack(bd)) = base else {
                return Err(format!("lea rsp from unknown base at {:#x}", ins.ip()));
            };
            st.depth = bd.saturating_sub(disp);
        }
        Mnemonic::Mov if ops.op0_is_rsp => match reg_val(ops.op1_reg) {
            Some(Val::Stack(d)) => st.depth = d,
            _ => return Err(format!("mov rsp from unknown value at {:#x}", ins.ip())),
        },
        Mnemonic::Leave => match st.regs[5] {
            Val::Stack(d) => st.depth = d.saturating_sub(8),
            _ => return Err(format!("leave with unknown rbp at {:#x}", ins.ip())),
        },
        Mnemonic::Cmp | Mnemonic::Test if ops.op0_is_rsp => {}
        // Calls return with rsp unchanged; returns end the walk (a `retfq`
        // that continues in the function is handled in `control_flow`).
        Mnemonic::Call
        | Mnemonic::Ret
        | Mnemonic::Retf
        | Mnemonic::Iretq
        | Mnemonic::Iretd
        | Mnemonic::Sysretq => {}
        _ => {
            let inc = ins.stack_pointer_increment();
            if inc != 0 {
                if m == Mnemonic::Enter {
                    return Err(format!("enter at {:#x}", ins.ip()));
                }
                st.depth = st.depth.saturating_sub(i64::from(inc));
            } else if ops.op0_is_rsp {
                return Err(format!("unhandled write to rsp ({m:?}) at {:#x}", ins.ip()));
            }
        }
    }
    Ok(())
}

/// The new value of the destination register (`before`: state before the
/// instruction, for sources that read rsp).
fn register_effect(ins: &Instruction, ops: &Ops, before: &State, st: &mut State) {
    let m = ins.mnemonic();
    if let Some(r) = ops.op0_gpr
        && r != RSP
    {
        st.regs[r] = dest_value(ins, ops, r, before);
    }
    if m == Mnemonic::Pop
        && let Some(r) = ops.op0_gpr
    {
        st.regs[r] = Val::Unknown;
    }
    if matches!(m, Mnemonic::Xchg | Mnemonic::Xadd | Mnemonic::Cmpxchg)
        && let Some(r) = ops.op1_reg.and_then(gpr_index)
    {
        st.regs[r] = Val::Unknown;
    }
}

fn dest_value(ins: &Instruction, ops: &Ops, r: usize, st: &State) -> Val {
    let m = ins.mnemonic();
    let size = ops.op0_reg.map_or(0, |x| x.size());
    let src = ops.op1_reg.and_then(gpr_index).map(|s| {
        if s == RSP {
            Val::Stack(st.depth)
        } else {
            st.regs[s]
        }
    });
    match m {
        Mnemonic::Mov if size == 8 => match (src, imm_of(ins, 1)) {
            (Some(v), _) => v,
            (None, Some(c)) => Val::Const(c),
            _ => Val::Unknown,
        },
        Mnemonic::Mov if size == 4 => match imm_of(ins, 1) {
            Some(c) => Val::Const(c & 0xffff_ffff),
            None => Val::Unknown,
        },
        Mnemonic::Xor if size >= 4 => {
            if ops.op1_reg.map(|x| x.full_register()) == ops.op0_reg.map(|x| x.full_register()) {
                Val::Const(0)
            } else {
                Val::Unknown
            }
        }
        Mnemonic::Sub | Mnemonic::Add if size == 8 => match (st.regs[r], imm_of(ins, 1)) {
            (Val::Stack(d), Some(c)) => Val::Stack(if m == Mnemonic::Sub {
                d.saturating_add(c)
            } else {
                d.saturating_sub(c)
            }),
            (Val::Const(k), Some(c)) => Val::Const(if m == Mnemonic::Sub {
                k.wrapping_sub(c)
            } else {
                k.wrapping_add(c)
            }),
            _ => Val::Unknown,
        },
        Mnemonic::Lea if size == 8 && ins.is_ip_rel_memory_operand() => {
            Val::Const(ins.ip_rel_memory_address() as i64)
        }
        Mnemonic::Lea if size == 8 && ins.memory_index() == Register::None => {
            let disp = ins.memory_displacement64() as i64;
            match gpr_index(ins.memory_base()) {
                Some(RSP) => Val::Stack(st.depth.saturating_sub(disp)),
                Some(b) => match st.regs[b] {
                    Val::Stack(d) => Val::Stack(d.saturating_sub(disp)),
                    _ => Val::Unknown,
                },
                None => Val::Unknown,
            }
        }
        Mnemonic::Push | Mnemonic::Cmp | Mnemonic::Test => st.regs[r],
        _ => Val::Unknown,
    }
}

/// Remember what a `push` stored: a `retfq` consumes it as its target.
fn record_push(ins: &Instruction, ops: &Ops, before: &State, st: &mut State) {
    if ins.mnemonic() == Mnemonic::Push && ins.stack_pointer_increment() == -8 {
        let v = match (ops.op0_gpr, imm_of(ins, 0)) {
            (Some(RSP), _) => Val::Stack(before.depth),
            (Some(r), _) => before.regs[r],
            (None, Some(c)) => Val::Const(c),
            _ => Val::Unknown,
        };
        st.pushed = Some((st.depth, v));
    } else if st.depth != before.depth {
        st.pushed = None;
    }
}

/// Registers an instruction writes without naming them.
fn clobber_implicit(m: Mnemonic, st: &mut State) {
    if matches!(
        m,
        Mnemonic::Call
            | Mnemonic::Cpuid
            | Mnemonic::Rdmsr
            | Mnemonic::Rdtsc
            | Mnemonic::Rdtscp
            | Mnemonic::Mul
            | Mnemonic::Imul
            | Mnemonic::Div
            | Mnemonic::Idiv
            | Mnemonic::Cqo
            | Mnemonic::Cdq
            | Mnemonic::Cwd
            | Mnemonic::Syscall
            | Mnemonic::Sysenter
            | Mnemonic::Movsb
            | Mnemonic::Movsq
            | Mnemonic::Movsd
            | Mnemonic::Movsw
            | Mnemonic::Stosb
            | Mnemonic::Stosq
            | Mnemonic::Stosd
            | Mnemonic::Stosw
            | Mnemonic::Lodsb
            | Mnemonic::Lodsq
            | Mnemonic::Xgetbv
            | Mnemonic::Rdrand
            | Mnemonic::Rdseed
            | Mnemonic::Vmmcall
            | Mnemonic::Vmcall
            | Mnemonic::Vmgexit
            | Mnemonic::Tdcall
            | Mnemonic::Pvalidate
            | Mnemonic::Rmpadjust
            | Mnemonic::Cmpxchg16b
    ) {
        for r in CALLER_SAVED {
            st.regs[r] = Val::Unknown;
        }
    }
}

fn control_flow(
    ins: &Instruction,
    st: &mut State,
    i: usize,
    instrs: &[Instruction],
    index_of: &dyn Fn(u64) -> Option<usize>,
    table: Option<&Vec<usize>>,
) -> Step {
    let m = ins.mnemonic();
    let next = if i + 1 < instrs.len() {
        vec![i + 1]
    } else {
        Vec::new()
    };
    match ins.flow_control() {
        FlowControl::Next
        | FlowControl::Call
        | FlowControl::IndirectCall
        | FlowControl::XbeginXabortXend => {
            if matches!(m, Mnemonic::Ud2 | Mnemonic::Ud0 | Mnemonic::Ud1) {
                return Step::End;
            }
            Step::Next(next)
        }
        FlowControl::Interrupt if m == Mnemonic::Int3 => Step::End,
        FlowControl::Interrupt => Step::Next(next),
        FlowControl::Exception => Step::End,
        FlowControl::Return if m == Mnemonic::Retf => far_return(ins, st, index_of),
        FlowControl::Return => Step::End,
        FlowControl::IndirectBranch => match table {
            Some(targets) => Step::Next(targets.clone()),
            None => Step::End,
        },
        FlowControl::UnconditionalBranch => {
            if ins.op0_kind() == OpKind::NearBranch64 {
                match index_of(ins.near_branch_target()) {
                    Some(t) => Step::Next(vec![t]),
                    None => Step::End, // tail call
                }
            } else {
                Step::End
            }
        }
        FlowControl::ConditionalBranch => {
            if let Some(step) = probe_loop_exit(ins, st, i, instrs, &next) {
                return step;
            }
            let mut succ = next;
            if let Some(t) = index_of(ins.near_branch_target()) {
                succ.push(t);
            }
            Step::Next(succ)
        }
    }
}

/// `retfq` reloading CS: `push selector; push target; retfq` with a target
/// in this function continues there with both words popped. Any other far
/// return leaves the function.
fn far_return(ins: &Instruction, st: &mut State, index_of: &dyn Fn(u64) -> Option<usize>) -> Step {
    if ins.code() != iced_x86::Code::Retfq {
        return Step::End;
    }
    match st.pushed {
        Some((d, Val::Const(target))) if d == st.depth => match index_of(target as u64) {
            Some(t) => {
                st.depth -= 16;
                st.pushed = None;
                Step::Next(vec![t])
            }
            None => Step::End,
        },
        _ => Step::End,
    }
}

/// Stack-probe loop: `cmp rsp, rX` (rX = rsp at the target depth) then a
/// conditional branch back: the loop runs until rsp reaches the target.
fn probe_loop_exit(
    ins: &Instruction,
    st: &mut State,
    i: usize,
    instrs: &[Instruction],
    next: &[usize],
) -> Option<Step> {
    let prev = instrs.get(i.checked_sub(1)?)?;
    if prev.mnemonic() == Mnemonic::Cmp
        && prev.op0_kind() == OpKind::Register
        && prev.op0_register() == Register::RSP
        && prev.op1_kind() == OpKind::Register
        && let Some(r) = gpr_index(prev.op1_register())
        && let Val::Stack(target) = st.regs[r]
        && ins.near_branch_target() <= ins.ip()
    {
        st.depth = st.depth.max(target);
        return Some(Step::Next(next.to_vec()));
    }
    None
}
