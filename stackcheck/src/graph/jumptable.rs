//! Jump tables: the targets of an indirect `jmp` that dispatches through a
//! table of code addresses, read from the image.
//!
//! Recognised forms (what LLVM emits on x86_64):
//! - relative: `lea rB,[rip+T]; movsxd rX,[rB+rI*4]; add rX,rB; jmp rX`
//!   (entries are `i32` offsets from `T`);
//! - absolute: `jmp [T+rI*8]`, `jmp [rB+rI*8]` or `mov rX,[T+rI*8]; jmp rX`
//!   with `rB = T` (entries are `u64` addresses, relocations applied).
//!
//! The table is read while its entries land inside the function; reading
//! past its real end only adds successors, which can raise a depth but never
//! lower one.

use iced_x86::{FlowControl, Instruction, Mnemonic, OpKind, Register};

use crate::elf::{Image, RelocValue};

/// How many instructions before the `jmp` are searched for the table load.
const WINDOW: usize = 24;
/// Upper limit on the entries read from one table.
const MAX_ENTRIES: usize = 4096;

/// Symbolic value of a register in the window before the dispatch.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sym {
    Unknown,
    /// An address (`lea reg,[rip+T]`).
    Addr(u64),
    /// An `i32` entry of the table at `T`, not yet added to `T`.
    Rel32(u64),
    /// `T + entry` of the relative table at `T`: a code address.
    RelTarget(u64),
    /// A `u64` entry of the absolute table at `T`: a code address.
    AbsTarget(u64),
}

/// Targets (absolute addresses inside `[start, end)`) of the indirect jump
/// `instrs[idx]`, when it dispatches through a jump table that can be read.
pub fn targets(
    img: &Image<'_>,
    instrs: &[Instruction],
    idx: usize,
    start: u64,
    end: u64,
) -> Option<Vec<u64>> {
    let jmp = &instrs[idx];
    if jmp.flow_control() != FlowControl::IndirectBranch || jmp.mnemonic() != Mnemonic::Jmp {
        return None;
    }
    let regs = window_values(instrs, idx);
    let table = match jmp.op0_kind() {
        OpKind::Register => match regs(jmp.op0_register()) {
            Sym::RelTarget(t) => Table::Rel(t),
            Sym::AbsTarget(t) => Table::Abs(t),
            _ => return None,
        },
        OpKind::Memory => Table::Abs(scaled_table(jmp, 8, &regs)?),
        _ => return None,
    };
    let inside = |a: u64| a >= start && a < end;
    let mut out = Vec::new();
    for k in 0..MAX_ENTRIES as u64 {
        let a = match table {
            Table::Rel(t) => {
                let b = img.read(t + 4 * k, 4)?;
                let e = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                t.wrapping_add_signed(i64::from(e))
            }
            Table::Abs(t) => match img.read_slot(t + 8 * k) {
                Some(RelocValue::Value(v)) => v,
                _ => break,
            },
        };
        if !inside(a) {
            break;
        }
        out.push(a);
    }
    (!out.is_empty()).then_some(out)
}

#[derive(Clone, Copy)]
enum Table {
    Rel(u64),
    Abs(u64),
}

/// `[T + rI*scale]` or `[rB + rI*scale]` with `rB` a known address: `T`.
fn scaled_table(ins: &Instruction, scale: u32, regs: &dyn Fn(Register) -> Sym) -> Option<u64> {
    if ins.memory_index() == Register::None || ins.memory_index_scale() != scale {
        return None;
    }
    match ins.memory_base() {
        Register::None => Some(ins.memory_displacement64()),
        b => match regs(b) {
            Sym::Addr(t) if ins.memory_displacement64() == 0 => Some(t),
            _ => None,
        },
    }
}

/// Symbolic register values at `instrs[idx]`, from the straight-line window
/// before it (the table base is often loaded in an earlier block, so the
/// window does not stop at branches; a write it does not understand makes
/// the register unknown).
fn window_values(instrs: &[Instruction], idx: usize) -> impl Fn(Register) -> Sym + use<> {
    let mut vals: Vec<(Register, Sym)> = Vec::new();
    let get = |vals: &Vec<(Register, Sym)>, r: Register| {
        vals.iter()
            .rev()
            .find(|(x, _)| *x == r.full_register())
            .map_or(Sym::Unknown, |v| v.1)
    };
    for ins in &instrs[idx.saturating_sub(WINDOW)..idx] {
        if ins.op_count() == 0 || ins.op0_kind() != OpKind::Register {
            if matches!(
                ins.flow_control(),
                FlowControl::Call | FlowControl::IndirectCall
            ) {
                vals.clear();
            }
            continue;
        }
        let dst = ins.op0_register().full_register();
        let regs = |r: Register| get(&vals, r);
        let v = match (ins.mnemonic(), ins.op1_kind()) {
            (Mnemonic::Lea, OpKind::Memory) if ins.is_ip_rel_memory_operand() => {
                Sym::Addr(ins.ip_rel_memory_address())
            }
            (Mnemonic::Movsxd, OpKind::Memory) => match scaled_table(ins, 4, &regs) {
                Some(t) => Sym::Rel32(t),
                None => Sym::Unknown,
            },
            (Mnemonic::Mov, OpKind::Memory) if ins.op0_register().size() == 8 => {
                match scaled_table(ins, 8, &regs) {
                    Some(t) => Sym::AbsTarget(t),
                    None => Sym::Unknown,
                }
            }
            (Mnemonic::Mov, OpKind::Register) if ins.op0_register().size() == 8 => {
                regs(ins.op1_register())
            }
            (Mnemonic::Add, OpKind::Register) => match (regs(dst), regs(ins.op1_register())) {
                (Sym::Rel32(t), Sym::Addr(b)) | (Sym::Addr(b), Sym::Rel32(t)) if t == b => {
                    Sym::RelTarget(t)
                }
                _ => Sym::Unknown,
            },
            (Mnemonic::Cmp | Mnemonic::Test, _) => continue,
            _ => Sym::Unknown,
        };
        vals.push((dst, v));
    }
    move |r: Register| get(&vals, r)
}
