//! Machine-code stack analysis for functions without usable CFI.
//!
//! Abstract interpretation over the function's control-flow graph: the
//! state is the stack depth (bytes below the caller's stack pointer before
//! the call, so 8 at entry: the return address) plus, per general register,
//! "holds rsp at depth D" or "holds constant C". Handles push/pop, `sub/add
//! rsp`, `lea rsp`, frame pointers (`mov rbp,rsp` .. `mov rsp,rbp`/`leave`),
//! `and rsp` alignment (counted as the worst case), and inline stack-probe
//! loops (`mov r11,rsp; sub r11,N` or `lea r11,[rsp-N]`, then a loop ending
//! in `cmp rsp,r11; jne`). Anything else that writes rsp makes the size unknown.

use iced_x86::{FlowControl, Instruction, Mnemonic, OpKind, Register};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Val {
    Unknown,
    Const(i64),
    /// Register holds the stack pointer value at this depth.
    Stack(i64),
}

#[derive(Clone, PartialEq, Eq, Debug)]
struct State {
    depth: i64,
    regs: [Val; 16],
}

/// Result of the machine-code analysis of one function.
#[derive(Debug, Clone)]
pub struct MInfo {
    /// Largest stack depth (incl. return address), or why it is unknown.
    pub frame: Result<u64, String>,
    /// Depth at the start of each instruction (None if unreached/unknown).
    pub depth_before: Vec<Option<i64>>,
}

fn gpr_index(r: Register) -> Option<usize> {
    let full = r.full_register();
    let idx = match full {
        Register::RAX => 0,
        Register::RCX => 1,
        Register::RDX => 2,
        Register::RBX => 3,
        Register::RSP => 4,
        Register::RBP => 5,
        Register::RSI => 6,
        Register::RDI => 7,
        Register::R8 => 8,
        Register::R9 => 9,
        Register::R10 => 10,
        Register::R11 => 11,
        Register::R12 => 12,
        Register::R13 => 13,
        Register::R14 => 14,
        Register::R15 => 15,
        _ => return None,
    };
    Some(idx)
}

const RSP: usize = 4;
const CALLER_SAVED: [usize; 9] = [0, 1, 2, 6, 7, 8, 9, 10, 11];
const MAX_DEPTH: i64 = 1 << 40;

enum Step {
    /// Continue to these successors (instruction indices) with the new state.
    Next(Vec<usize>),
    End,
    Unknown(String),
}

/// Analyse one function's decoded instructions (all within [start, end)).
pub fn analyze(instrs: &[Instruction], start: u64, end: u64) -> MInfo {
    let n = instrs.len();
    let mut states: Vec<Option<State>> = vec![None; n];
    let mut depth_before = vec![None; n];
    if n == 0 {
        return MInfo {
            frame: Err("no decodable instructions".into()),
            depth_before,
        };
    }
    let index_of = |addr: u64| -> Option<usize> {
        if addr < start || addr >= end {
            return None;
        }
        instrs.binary_search_by_key(&addr, |i| i.ip()).ok()
    };
    let mut max_depth: i64 = 8;
    let mut work: Vec<usize> = Vec::new();
    states[0] = Some(State {
        depth: 8,
        regs: [Val::Unknown; 16],
    });
    work.push(0);
    let mut budget = 16 * n + 64;
    let mut indirect_jmp_state: Option<State> = None;
    let mut seeded = false;
    loop {
        while let Some(i) = work.pop() {
            if budget == 0 {
                return MInfo {
                    frame: Err("stack pointer does not converge (push/sub rsp in a loop?)".into()),
                    depth_before,
                };
            }
            budget -= 1;
            let Some(mut st) = states[i].clone() else {
                continue;
            };
            depth_before[i] = Some(st.depth);
            let ins = &instrs[i];
            if ins.flow_control() == FlowControl::IndirectBranch && indirect_jmp_state.is_none() {
                indirect_jmp_state = Some(st.clone());
            }
            let step = transfer(ins, &mut st, i, instrs, &index_of);
            if st.depth > max_depth {
                max_depth = st.depth;
            }
            if st.depth > MAX_DEPTH || st.depth < 0 {
                return MInfo {
                    frame: Err(format!("stack pointer out of range at {:#x}", ins.ip())),
                    depth_before,
                };
            }
            match step {
                Step::End => {}
                Step::Unknown(why) => {
                    return MInfo {
                        frame: Err(why),
                        depth_before,
                    };
                }
                Step::Next(succ) => {
                    for s in succ {
                        match &mut states[s] {
                            slot @ None => {
                                *slot = Some(st.clone());
                                work.push(s);
                            }
                            Some(old) => {
                                if st.depth > old.depth {
                                    old.depth = st.depth;
                                    old.regs = [Val::Unknown; 16];
                                    work.push(s);
                                } else if old.regs != st.regs {
                                    let mut changed = false;
                                    for r in 0..16 {
                                        if old.regs[r] != st.regs[r] && old.regs[r] != Val::Unknown
                                        {
                                            old.regs[r] = Val::Unknown;
                                            changed = true;
                                        }
                                    }
                                    if changed {
                                        work.push(s);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // Code reached only through jump tables (or dead code): seed the first
        // unvisited instruction with the state at the indirect jump, or the
        // nearest preceding visited state.
        let Some(u) = (0..n).find(|&i| states[i].is_none()) else {
            break;
        };
        let seed = if let Some(s) = &indirect_jmp_state {
            s.clone()
        } else {
            let prev = (0..u).rev().find_map(|j| states[j].clone());
            match prev {
                Some(s) => s,
                None => State {
                    depth: 8,
                    regs: [Val::Unknown; 16],
                },
            }
        };
        seeded = true;
        states[u] = Some(State {
            depth: seed.depth,
            regs: [Val::Unknown; 16],
        });
        work.push(u);
    }
    let _ = seeded;
    MInfo {
        frame: Ok(max_depth as u64),
        depth_before,
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

fn transfer(
    ins: &Instruction,
    st: &mut State,
    i: usize,
    instrs: &[Instruction],
    index_of: &dyn Fn(u64) -> Option<usize>,
) -> Step {
    let m = ins.mnemonic();
    let next = if i + 1 < instrs.len() {
        vec![i + 1]
    } else {
        Vec::new()
    };
    let op0_reg = if ins.op_count() > 0 && ins.op0_kind() == OpKind::Register {
        Some(ins.op0_register())
    } else {
        None
    };
    let op0_is_rsp = op0_reg == Some(Register::RSP);
    let op0_gpr = op0_reg.and_then(gpr_index);
    let op1_reg = if ins.op_count() > 1 && ins.op1_kind() == OpKind::Register {
        Some(ins.op1_register())
    } else {
        None
    };

    // Stack pointer effects.
    match m {
        Mnemonic::Sub | Mnemonic::Add if op0_is_rsp => {
            let v =
                imm_of(ins, 1).or_else(|| match op1_reg.and_then(gpr_index).map(|r| st.regs[r]) {
                    Some(Val::Const(c)) => Some(c),
                    _ => None,
                });
            let Some(v) = v else {
                return Step::Unknown(format!("{m:?} rsp by a non-constant at {:#x}", ins.ip()));
            };
            if m == Mnemonic::Sub {
                st.depth = st.depth.saturating_add(v);
            } else {
                st.depth = st.depth.saturating_sub(v);
            }
        }
        Mnemonic::And if op0_is_rsp => {
            let Some(v) = imm_of(ins, 1) else {
                return Step::Unknown(format!("and rsp, non-constant at {:#x}", ins.ip()));
            };
            // Aligning down to 2^k costs at most 2^k - 8 on an 8-aligned stack.
            let align = (!v).wrapping_add(1);
            if align > 8 {
                st.depth = st.depth.saturating_add(align - 8);
            }
        }
        Mnemonic::Lea if op0_is_rsp => {
            let base = ins.memory_base();
            if ins.memory_index() != Register::None {
                return Step::Unknown(format!("lea rsp with index at {:#x}", ins.ip()));
            }
            let disp = ins.memory_displacement64() as i64;
            let bd = match gpr_index(base).map(|r| {
                if r == RSP {
                    Val::Stack(st.depth)
                } else {
                    st.regs[r]
                }
            }) {
                Some(Val::Stack(d)) => d,
                _ => return Step::Unknown(format!("lea rsp from unknown base at {:#x}", ins.ip())),
            };
            st.depth = bd.saturating_sub(disp);
        }
        Mnemonic::Mov if op0_is_rsp => match op1_reg.and_then(gpr_index).map(|r| st.regs[r]) {
            Some(Val::Stack(d)) => st.depth = d,
            _ => return Step::Unknown(format!("mov rsp from unknown value at {:#x}", ins.ip())),
        },
        Mnemonic::Leave => match st.regs[5] {
            Val::Stack(d) => st.depth = d.saturating_sub(8),
            _ => return Step::Unknown(format!("leave with unknown rbp at {:#x}", ins.ip())),
        },
        Mnemonic::Cmp | Mnemonic::Test if op0_is_rsp => {}
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
                    return Step::Unknown(format!("enter at {:#x}", ins.ip()));
                }
                st.depth = st.depth.saturating_sub(i64::from(inc));
            } else if op0_is_rsp {
                return Step::Unknown(format!("unhandled write to rsp ({m:?}) at {:#x}", ins.ip()));
            }
        }
    }

    // Register tracking.
    if let Some(r) = op0_gpr
        && r != RSP
    {
        let is64 = op0_reg.map(|x| x.size() == 8).unwrap_or(false);
        let is32 = op0_reg.map(|x| x.size() == 4).unwrap_or(false);
        let src = op1_reg.and_then(gpr_index).map(|s| {
            if s == RSP {
                Val::Stack(st.depth)
            } else {
                st.regs[s]
            }
        });
        let newv = match m {
            Mnemonic::Mov if is64 => match (src, imm_of(ins, 1)) {
                (Some(v), _) => v,
                (None, Some(c)) => Val::Const(c),
                _ => Val::Unknown,
            },
            Mnemonic::Mov if is32 => match imm_of(ins, 1) {
                Some(c) => Val::Const(c & 0xffff_ffff),
                None => Val::Unknown,
            },
            Mnemonic::Xor if is32 || is64 => {
                if op1_reg.map(|x| x.full_register()) == op0_reg.map(|x| x.full_register()) {
                    Val::Const(0)
                } else {
                    Val::Unknown
                }
            }
            Mnemonic::Sub | Mnemonic::Add if is64 => match (st.regs[r], imm_of(ins, 1)) {
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
            Mnemonic::Lea if is64 && ins.memory_index() == Register::None => {
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
        };
        st.regs[r] = newv;
    }
    if m == Mnemonic::Pop
        && let Some(r) = op0_gpr
    {
        st.regs[r] = Val::Unknown;
    }
    if matches!(m, Mnemonic::Xchg | Mnemonic::Xadd | Mnemonic::Cmpxchg)
        && let Some(r) = op1_reg.and_then(gpr_index)
    {
        st.regs[r] = Val::Unknown;
    }
    // Implicit register writes.
    match m {
        Mnemonic::Call => {
            for r in CALLER_SAVED {
                st.regs[r] = Val::Unknown;
            }
        }
        Mnemonic::Cpuid
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
        | Mnemonic::Vmgexit
        | Mnemonic::Tdcall
        | Mnemonic::Pvalidate
        | Mnemonic::Rmpadjust
        | Mnemonic::Cmpxchg16b => {
            for r in CALLER_SAVED {
                st.regs[r] = Val::Unknown;
            }
        }
        _ => {}
    }

    // Control flow.
    match ins.flow_control() {
        FlowControl::Next
        | FlowControl::Call
        | FlowControl::IndirectCall
        | FlowControl::XbeginXabortXend => {
            if m == Mnemonic::Ud2 || m == Mnemonic::Ud0 || m == Mnemonic::Ud1 {
                return Step::End;
            }
            // Probe loop exit is handled at the branch; plain fallthrough here.
            Step::Next(next)
        }
        FlowControl::Interrupt => {
            if m == Mnemonic::Int3 {
                Step::End
            } else {
                Step::Next(next)
            }
        }
        FlowControl::Exception => Step::End,
        FlowControl::Return => Step::End,
        FlowControl::IndirectBranch => Step::End,
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
            // Stack-probe loop: `cmp rsp, rX` (rX = rsp at target depth) then a
            // conditional branch back: the loop runs until rsp reaches the target.
            if i > 0 {
                let prev = &instrs[i - 1];
                if prev.mnemonic() == Mnemonic::Cmp
                    && prev.op0_kind() == OpKind::Register
                    && prev.op0_register() == Register::RSP
                    && prev.op1_kind() == OpKind::Register
                    && let Some(r) = gpr_index(prev.op1_register())
                    && let Val::Stack(target) = st.regs[r]
                {
                    let tgt = ins.near_branch_target();
                    if tgt <= ins.ip() {
                        st.depth = st.depth.max(target);
                        return Step::Next(next);
                    }
                }
            }
            let mut succ = next;
            if let Some(t) = index_of(ins.near_branch_target()) {
                succ.push(t);
            }
            Step::Next(succ)
        }
    }
}
