//! Per-function decoding: frame sizes, call sites, large moves,
//! address-taken functions and vtables.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};

use crate::cfi::{Cfi, FdeInfo};
use crate::elf::{Function, Image, RelocValue};
use crate::mcode;

pub mod data;
mod jumptable;
mod moves;
mod regdefs;
#[cfg(test)]
mod tests;

use regdefs::RegSrc;

/// How control reaches the callee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SiteKind {
    /// `call`: pushes a return address.
    Call,
    /// `jmp`/`jcc` to another function: reuses the caller's return address.
    Tail,
    /// Execution runs off the end of the function into the next one.
    Fallthrough,
}

/// Callee of a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A known function (index into `Image::functions`).
    Func(usize),
    /// Call through a pointer slot (`call [rip+X]`, e.g. a GOT entry) that
    /// holds an import or a value that is not a function start.
    Slot { slot: u64, detail: String },
    /// Direct branch to an address that is not in any function.
    NoFunction(u64),
    /// Register/memory indirect call: `reg` (`call rax`), `mem_disp` for
    /// `call [reg+disp]`, `complex` otherwise.
    Indirect(IndirectForm),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndirectForm {
    Register,
    MemDisp(i64),
    Complex,
}

#[derive(Debug, Clone)]
pub struct Site {
    pub addr: u64,
    pub kind: SiteKind,
    pub target: Target,
    /// Stack depth of the caller at the site (incl. its return address), if known.
    pub depth: Option<u64>,
    /// Through a pointer slot (`call [rip+X]`).
    pub via_slot: bool,
}

/// Where a function's frame size came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FrameSource {
    Cfi,
    Code,
    CfiAndCode,
    Config,
    Unknown,
}

#[derive(Debug, Clone)]
pub struct FuncInfo {
    /// Frame size incl. return address, or the reason it is unknown.
    pub frame: Result<u64, String>,
    pub source: FrameSource,
    /// Machine-code size (only computed when needed, or in validation mode).
    pub code_frame: Option<Result<u64, String>>,
    pub sites: Vec<Site>,
    pub invalid_at: Option<u64>,
    /// Bytes on the stack at the first instruction per the CFI (8 for a
    /// called function; 40/48 for an interrupt entry with signal-frame CFI).
    pub entry_depth: u64,
    /// Has a return instruction (ret/iret/sysret) or an indirect jump.
    pub has_return: bool,
    /// The last instruction is a direct call to this function (the fallthrough
    /// after it only happens if the callee returns).
    pub ends_with_call_to: Option<usize>,
}

/// A memcpy/memmove/memset call with a constant size.
#[derive(Debug, Clone)]
pub struct MoveCall {
    pub func: usize,
    pub addr: u64,
    pub callee: String,
    pub size: u64,
    /// Whether the destination (rdi) is the caller's own stack frame.
    pub onto_stack: bool,
}

pub struct Graph {
    pub funcs: Vec<FuncInfo>,
    pub moves: Vec<MoveCall>,
    pub address_taken: BTreeSet<usize>,
    /// Vtable slot offset -> functions found at that offset in vtables.
    pub vtable_slots: BTreeMap<i64, BTreeSet<usize>>,
    pub vtables_found: usize,
    /// The vtables found in data, by address.
    pub vtables: BTreeMap<u64, data::Vtable>,
}

/// Build per-function information. `all_code` also runs the machine-code
/// analysis for functions that have CFI (validation).
pub fn build(img: &Image<'_>, cfi: &Cfi, all_code: bool) -> Graph {
    let mut funcs = Vec::with_capacity(img.functions.len());
    let mut moves = Vec::new();
    let mut taken: HashSet<usize> = HashSet::new();
    let mut instrs: Vec<Instruction> = Vec::new();
    for (fi, f) in img.functions.iter().enumerate() {
        let invalid_at = decode(img, f, &mut instrs);
        let cx = FuncCx {
            img,
            f,
            instrs: &instrs,
            tables: jump_tables(img, f, &instrs),
        };
        let fde = cfi.fde_for(f.addr);
        let need_code = fde.is_none_or(|d| d.not_rsp_based);
        let minfo =
            (need_code || all_code).then(|| mcode::analyze(&instrs, f.addr, f.end(), &cx.tables));
        let (frame, source) = frame_of(f, fde, minfo.as_ref());
        let depth_at = |idx: usize, addr: u64| -> Option<u64> {
            if let Some(v) = fde.and_then(|d| d.depth_at(addr)) {
                return Some(v);
            }
            if let Some(Some(v)) = minfo.as_ref().and_then(|m| m.depth_before.get(idx))
                && *v >= 0
            {
                return Some(*v as u64);
            }
            frame.as_ref().ok().copied()
        };
        let mut sites = Vec::new();
        for (idx, ins) in instrs.iter().enumerate() {
            collect_taken(img, ins, &mut taken);
            let Some((kind, target, via_slot)) = cx.site(idx) else {
                continue;
            };
            if let Target::Func(ti) = target
                && let Some(name) = moves::is_mem_func(&img.functions[ti].demangled)
                && let Some(size) = moves::const_rdx_before(&instrs, idx)
            {
                moves.push(MoveCall {
                    func: fi,
                    addr: ins.ip(),
                    callee: name.to_string(),
                    size,
                    onto_stack: moves::rdi_is_stack_before(&instrs, idx),
                });
            }
            sites.push(Site {
                addr: ins.ip(),
                kind,
                target,
                depth: depth_at(idx, ins.ip()),
                via_slot,
            });
        }
        if let Some(ti) = cx.falls_into() {
            let last = instrs.len() - 1;
            sites.push(Site {
                addr: instrs[last].ip(),
                kind: SiteKind::Fallthrough,
                target: Target::Func(ti),
                depth: depth_at(last, instrs[last].ip()),
                via_slot: false,
            });
        }
        let has_return = instrs.iter().enumerate().any(|(i, ins)| {
            ins.flow_control() == FlowControl::Return
                || (ins.flow_control() == FlowControl::IndirectBranch
                    && !cx.tables.contains_key(&i))
        });
        let ends_with_call_to = instrs
            .last()
            .filter(|l| l.mnemonic() == Mnemonic::Call && l.op0_kind() == OpKind::NearBranch64)
            .and_then(|l| img.function_at(l.near_branch_target()));
        let entry_depth = fde.and_then(|d| d.depth_at(f.addr)).unwrap_or(8);
        funcs.push(FuncInfo {
            frame,
            source,
            code_frame: minfo.map(|m| m.frame),
            sites,
            invalid_at,
            entry_depth,
            has_return,
            ends_with_call_to,
        });
    }
    drop_noreturn_fallthrough(&mut funcs);
    let d = data::scan(img);
    taken.extend(d.taken);
    Graph {
        funcs,
        moves,
        address_taken: taken.into_iter().collect(),
        vtable_slots: d.vtable_slots,
        vtables_found: d.vtables.len(),
        vtables: d.vtables,
    }
}

/// Decode a function into `instrs`; returns the first undecodable address.
fn decode(img: &Image<'_>, f: &Function, instrs: &mut Vec<Instruction>) -> Option<u64> {
    instrs.clear();
    let code = img.code(f).unwrap_or(&[]);
    let mut dec = Decoder::with_ip(64, code, f.addr, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    let mut invalid_at = None;
    while dec.can_decode() {
        dec.decode_out(&mut ins);
        if ins.is_invalid() {
            invalid_at.get_or_insert(ins.ip());
            continue;
        }
        instrs.push(ins);
    }
    invalid_at
}

/// Jump tables of a function: index of the dispatching `jmp` -> indices of
/// its targets.
fn jump_tables(
    img: &Image<'_>,
    f: &Function,
    instrs: &[Instruction],
) -> BTreeMap<usize, Vec<usize>> {
    let mut out = BTreeMap::new();
    for (idx, ins) in instrs.iter().enumerate() {
        if ins.flow_control() != FlowControl::IndirectBranch {
            continue;
        }
        let Some(addrs) = jumptable::targets(img, instrs, idx, f.addr, f.end()) else {
            continue;
        };
        let mut t: Vec<usize> = addrs
            .iter()
            .filter_map(|&a| instrs.binary_search_by_key(&a, |i| i.ip()).ok())
            .collect();
        t.sort_unstable();
        t.dedup();
        if !t.is_empty() {
            out.insert(idx, t);
        }
    }
    out
}

/// Frame size and where it came from: rsp-based CFI, else the machine code
/// (with the CFI's largest offset as a floor when the CFA uses a frame
/// pointer).
fn frame_of(
    f: &Function,
    fde: Option<&FdeInfo>,
    minfo: Option<&mcode::MInfo>,
) -> (Result<u64, String>, FrameSource) {
    match (fde, minfo) {
        (Some(d), _) if !d.not_rsp_based => {
            let m = if d.start == f.addr {
                d.max_rsp_offset
            } else {
                d.rows
                    .iter()
                    .filter(|r| r.1 > f.addr && r.0 < f.end())
                    .filter_map(|r| r.2)
                    .max()
                    .unwrap_or(d.max_rsp_offset)
            };
            (Ok(m), FrameSource::Cfi)
        }
        (Some(d), Some(m)) => match &m.frame {
            Ok(c) => (Ok(d.max_rsp_offset.max(*c)), FrameSource::CfiAndCode),
            Err(e) => (
                Err(format!(
                    "CFI uses a frame pointer and code analysis failed: {e}"
                )),
                FrameSource::Unknown,
            ),
        },
        (None, Some(m)) => match &m.frame {
            Ok(c) => (Ok(*c), FrameSource::Code),
            Err(e) => (
                Err(format!("no CFI and code analysis failed: {e}")),
                FrameSource::Unknown,
            ),
        },
        _ => (Err("no frame information".into()), FrameSource::Unknown),
    }
}

/// One function being turned into sites.
struct FuncCx<'a, 'b> {
    img: &'a Image<'b>,
    f: &'a Function,
    instrs: &'a [Instruction],
    tables: BTreeMap<usize, Vec<usize>>,
}

impl FuncCx<'_, '_> {
    fn index_of(&self, a: u64) -> Option<usize> {
        if a < self.f.addr || a >= self.f.end() {
            return None;
        }
        self.instrs.binary_search_by_key(&a, |i| i.ip()).ok()
    }

    /// The site at `instrs[idx]`, if it transfers control to other code of
    /// the image: (kind, target, through a pointer slot).
    fn site(&self, idx: usize) -> Option<(SiteKind, Target, bool)> {
        let ins = &self.instrs[idx];
        let kind = site_kind(ins)?;
        let f = self.f;
        let target = match ins.op0_kind() {
            OpKind::NearBranch64 => {
                let t = ins.near_branch_target();
                if kind == SiteKind::Tail && t >= f.addr && t < f.end() {
                    return None; // intra-function branch
                }
                match self.img.function_containing(t) {
                    Some(ti) => Target::Func(ti),
                    None => Target::NoFunction(t),
                }
            }
            OpKind::Memory if ins.is_ip_rel_memory_operand() => {
                return Some((kind, self.slot_target(ins.ip_rel_memory_address()), true));
            }
            _ if kind == SiteKind::Tail && self.is_dispatch(idx) => return None,
            OpKind::Memory => return Some((kind, self.mem_target(idx), false)),
            OpKind::Register => return Some(self.reg_target(idx, kind)),
            _ => Target::Indirect(IndirectForm::Complex),
        };
        Some((kind, target, false))
    }

    /// A jump-table dispatch (decoded, or recognised by its scaled-index
    /// table load): control stays in the function, never a tail call.
    fn is_dispatch(&self, idx: usize) -> bool {
        self.tables.contains_key(&idx) || is_jump_table(self.instrs, idx)
    }

    fn slot_target(&self, slot: u64) -> Target {
        match self.img.read_slot(slot) {
            Some(RelocValue::Value(v)) => match self.img.function_at(v) {
                Some(ti) => Target::Func(ti),
                None => Target::Slot {
                    slot,
                    detail: format!("slot holds {v:#x}, not a function start"),
                },
            },
            Some(RelocValue::Import(name)) => Target::Slot {
                slot,
                detail: format!("imported symbol `{name}`"),
            },
            None => Target::Slot {
                slot,
                detail: "slot is not in a loaded section".into(),
            },
        }
    }

    /// `call [base+disp]`: when the base register holds a known vtable
    /// (its only reaching definition is `lea base,[rip+VT]`), the slot is
    /// read; otherwise the vtable policy decides.
    fn mem_target(&self, idx: usize) -> Target {
        let ins = &self.instrs[idx];
        if ins.memory_index() != Register::None || ins.memory_base() == Register::None {
            return Target::Indirect(IndirectForm::Complex);
        }
        let disp = ins.memory_displacement64() as i64;
        let idx_of = |a: u64| self.index_of(a);
        if let Some(RegSrc::Value(vt, false)) =
            regdefs::reg_source(self.img, self.instrs, idx, ins.memory_base(), &idx_of)
            && let Some(RelocValue::Value(v)) = self.img.read_slot(vt.wrapping_add_signed(disp))
            && let Some(ti) = self.img.function_at(v)
        {
            return Target::Func(ti);
        }
        Target::Indirect(IndirectForm::MemDisp(disp))
    }

    fn reg_target(&self, idx: usize, kind: SiteKind) -> (SiteKind, Target, bool) {
        let ins = &self.instrs[idx];
        let idx_of = |a: u64| self.index_of(a);
        let t = match regdefs::reg_source(self.img, self.instrs, idx, ins.op0_register(), &idx_of) {
            Some(RegSrc::Value(v, slot)) => match self.img.function_at(v) {
                Some(ti) => return (kind, Target::Func(ti), slot),
                None => Target::Indirect(IndirectForm::Register),
            },
            Some(RegSrc::Mem(d)) => Target::Indirect(IndirectForm::MemDisp(d)),
            None => Target::Indirect(IndirectForm::Register),
        };
        (kind, t, false)
    }

    /// The function execution runs into past the last instruction.
    fn falls_into(&self) -> Option<usize> {
        let last = self.instrs.last()?;
        let falls = matches!(
            last.flow_control(),
            FlowControl::Next
                | FlowControl::Call
                | FlowControl::IndirectCall
                | FlowControl::ConditionalBranch
        ) && !matches!(last.mnemonic(), Mnemonic::Ud2 | Mnemonic::Hlt);
        if falls && last.next_ip() == self.f.end() {
            self.img.function_at(self.f.end())
        } else {
            None
        }
    }
}

/// Whether an instruction transfers control to code of the image, and how.
/// Only near `call`/`jmp`/`jcc` (and the loop forms) do: VMGEXIT, VMMCALL,
/// VMCALL, TDCALL, SYSCALL, SYSENTER, far calls and the like leave the image
/// (to the hypervisor, the TDX module or another privilege level) and come
/// back to the next instruction, so they are not calls of the image.
fn site_kind(ins: &Instruction) -> Option<SiteKind> {
    match ins.flow_control() {
        FlowControl::Call | FlowControl::IndirectCall if is_near_call(ins) => Some(SiteKind::Call),
        FlowControl::UnconditionalBranch | FlowControl::IndirectBranch
            if ins.mnemonic() == Mnemonic::Jmp && !is_far(ins) =>
        {
            Some(SiteKind::Tail)
        }
        FlowControl::ConditionalBranch => Some(SiteKind::Tail),
        _ => None,
    }
}

fn is_near_call(ins: &Instruction) -> bool {
    ins.mnemonic() == Mnemonic::Call && !is_far(ins)
}

fn is_far(ins: &Instruction) -> bool {
    matches!(ins.op0_kind(), OpKind::FarBranch16 | OpKind::FarBranch32)
        || (ins.op0_kind() == OpKind::Memory
            && matches!(
                ins.memory_size(),
                iced_x86::MemorySize::SegPtr16
                    | iced_x86::MemorySize::SegPtr32
                    | iced_x86::MemorySize::SegPtr64
            ))
}

/// A function may return if it has a return (or indirect jump), or tail-calls
/// or falls through into a function that may return. A fallthrough after a
/// final call to a function that never returns (a panic) is not real.
fn drop_noreturn_fallthrough(funcs: &mut [FuncInfo]) {
    let n = funcs.len();
    let mut may_return: Vec<bool> = funcs.iter().map(|f| f.has_return).collect();
    loop {
        let mut changed = false;
        for i in 0..n {
            if may_return[i] {
                continue;
            }
            let r = funcs[i].sites.iter().any(|s| {
                matches!(s.kind, SiteKind::Tail | SiteKind::Fallthrough)
                    && match s.target {
                        Target::Func(t) => may_return[t],
                        _ => true,
                    }
                    && !(s.kind == SiteKind::Fallthrough
                        && funcs[i].ends_with_call_to.is_some_and(|c| !may_return[c]))
            });
            if r {
                may_return[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for f in funcs.iter_mut() {
        if let Some(c) = f.ends_with_call_to
            && !may_return[c]
        {
            f.sites.retain(|s| s.kind != SiteKind::Fallthrough);
        }
    }
}

fn collect_taken(img: &Image<'_>, ins: &Instruction, taken: &mut HashSet<usize>) {
    match ins.mnemonic() {
        Mnemonic::Lea if ins.is_ip_rel_memory_operand() => {
            if let Some(ti) = img.function_at(ins.ip_rel_memory_address()) {
                taken.insert(ti);
            }
        }
        Mnemonic::Mov | Mnemonic::Push => {
            for op in 0..ins.op_count() {
                if matches!(
                    ins.op_kind(op),
                    OpKind::Immediate32 | OpKind::Immediate64 | OpKind::Immediate32to64
                ) && let Some(ti) = img.function_at(ins.immediate(op))
                {
                    taken.insert(ti);
                }
            }
        }
        _ => {}
    }
}

/// `jmp reg`/`jmp [..]` preceded by a scaled-index table load: a jump table.
fn is_jump_table(instrs: &[Instruction], idx: usize) -> bool {
    let ins = &instrs[idx];
    if ins.op0_kind() == OpKind::Memory
        && ins.memory_index() != Register::None
        && ins.memory_index_scale() >= 4
    {
        return true;
    }
    for prev in instrs[..idx].iter().rev().take(6) {
        if matches!(
            prev.flow_control(),
            FlowControl::Call | FlowControl::Return | FlowControl::UnconditionalBranch
        ) {
            break;
        }
        for op in 0..prev.op_count() {
            if prev.op_kind(op) == OpKind::Memory
                && prev.memory_index() != Register::None
                && prev.memory_index_scale() >= 4
                && matches!(
                    prev.mnemonic(),
                    Mnemonic::Movsxd | Mnemonic::Mov | Mnemonic::Movzx
                )
            {
                return true;
            }
        }
    }
    false
}
