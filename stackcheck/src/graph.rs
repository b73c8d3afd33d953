//! Per-function decoding: frame sizes, call sites, large moves,
//! address-taken functions and vtables.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};

use crate::cfi::Cfi;
use crate::elf::{Image, RelocValue};
use crate::mcode;

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
}

const MEM_FUNCS: [&str; 6] = [
    "memcpy",
    "memmove",
    "memset",
    "__memcpy_chk",
    "__memmove_chk",
    "__memset_chk",
];

fn is_mem_func(name: &str) -> Option<&'static str> {
    let last = name.rsplit("::").next().unwrap_or(name);
    MEM_FUNCS.iter().copied().find(|m| *m == last)
}

/// Build per-function information. `all_code` also runs the machine-code
/// analysis for functions that have CFI (validation).
pub fn build(img: &Image<'_>, cfi: &Cfi, all_code: bool) -> Graph {
    let mut funcs = Vec::with_capacity(img.functions.len());
    let mut moves = Vec::new();
    let mut taken: HashSet<usize> = HashSet::new();
    let mut instrs: Vec<Instruction> = Vec::new();
    for (fi, f) in img.functions.iter().enumerate() {
        instrs.clear();
        let code = img.code(f).unwrap_or(&[]);
        let mut dec = Decoder::with_ip(64, code, f.addr, DecoderOptions::NONE);
        let mut ins = Instruction::default();
        let mut invalid_at = None;
        while dec.can_decode() {
            dec.decode_out(&mut ins);
            if ins.is_invalid() {
                if invalid_at.is_none() {
                    invalid_at = Some(ins.ip());
                }
                continue;
            }
            instrs.push(ins);
        }

        // Frame size.
        let fde = cfi.fde_for(f.addr);
        let need_code = match fde {
            None => true,
            Some(d) => d.not_rsp_based,
        };
        let minfo = (need_code || all_code).then(|| mcode::analyze(&instrs, f.addr, f.end()));
        let (frame, source) = match (fde, &minfo) {
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
        };
        let depth_at = |idx: usize, addr: u64| -> Option<u64> {
            if let Some(d) = fde
                && let Some(v) = d.depth_at(addr)
            {
                return Some(v);
            }
            if let Some(m) = &minfo
                && let Some(Some(v)) = m.depth_before.get(idx)
                && *v >= 0
            {
                return Some(*v as u64);
            }
            frame.as_ref().ok().copied()
        };

        // Sites.
        let mut sites = Vec::new();
        for (idx, ins) in instrs.iter().enumerate() {
            collect_taken(img, ins, &mut taken);
            let fc = ins.flow_control();
            let kind = match fc {
                FlowControl::Call | FlowControl::IndirectCall => SiteKind::Call,
                FlowControl::UnconditionalBranch
                | FlowControl::ConditionalBranch
                | FlowControl::IndirectBranch => SiteKind::Tail,
                _ => continue,
            };
            let mut via_slot = false;
            let target = match ins.op0_kind() {
                OpKind::NearBranch64 => {
                    let t = ins.near_branch_target();
                    if kind == SiteKind::Tail && t >= f.addr && t < f.end() {
                        continue; // intra-function branch
                    }
                    match img.function_containing(t) {
                        Some(ti) => Target::Func(ti),
                        None => Target::NoFunction(t),
                    }
                }
                OpKind::Memory if ins.is_ip_rel_memory_operand() => {
                    via_slot = true;
                    let slot = ins.ip_rel_memory_address();
                    match img.read_slot(slot) {
                        Some(RelocValue::Value(v)) => match img.function_at(v) {
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
                OpKind::Memory => {
                    if kind == SiteKind::Tail && is_jump_table(&instrs, idx) {
                        continue;
                    }
                    if ins.memory_index() == Register::None && ins.memory_base() != Register::None {
                        Target::Indirect(IndirectForm::MemDisp(ins.memory_displacement64() as i64))
                    } else {
                        Target::Indirect(IndirectForm::Complex)
                    }
                }
                OpKind::Register => {
                    if kind == SiteKind::Tail && is_jump_table(&instrs, idx) {
                        continue;
                    }
                    let index_of = |a: u64| {
                        if a < f.addr || a >= f.end() {
                            return None;
                        }
                        instrs.binary_search_by_key(&a, |i| i.ip()).ok()
                    };
                    match reg_source(img, &instrs, idx, ins.op0_register(), &index_of) {
                        Some(RegSrc::Value(v, slot)) => {
                            via_slot = slot;
                            match img.function_at(v) {
                                Some(ti) => Target::Func(ti),
                                None => Target::Indirect(IndirectForm::Register),
                            }
                        }
                        Some(RegSrc::Mem(d)) => Target::Indirect(IndirectForm::MemDisp(d)),
                        None => Target::Indirect(IndirectForm::Register),
                    }
                }
                _ => Target::Indirect(IndirectForm::Complex),
            };
            // Large moves: mem function with a constant size in rdx.
            if let Target::Func(ti) = target
                && let Some(name) = is_mem_func(&img.functions[ti].demangled)
                && let Some(size) = const_rdx_before(&instrs, idx)
            {
                moves.push(MoveCall {
                    func: fi,
                    addr: ins.ip(),
                    callee: name.to_string(),
                    size,
                    onto_stack: rdi_is_stack_before(&instrs, idx),
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
        // Falls off the end into the next function?
        if let Some(last) = instrs.last() {
            let falls = matches!(
                last.flow_control(),
                FlowControl::Next
                    | FlowControl::Call
                    | FlowControl::IndirectCall
                    | FlowControl::ConditionalBranch
            ) && !matches!(last.mnemonic(), Mnemonic::Ud2 | Mnemonic::Hlt);
            if falls
                && last.next_ip() == f.end()
                && let Some(ti) = img.function_at(f.end())
            {
                {
                    sites.push(Site {
                        addr: last.ip(),
                        kind: SiteKind::Fallthrough,
                        target: Target::Func(ti),
                        depth: depth_at(instrs.len() - 1, last.ip()),
                        via_slot: false,
                    });
                }
            }
        }
        let has_return = instrs.iter().any(|i| {
            matches!(
                i.flow_control(),
                FlowControl::Return | FlowControl::IndirectBranch
            )
        });
        let ends_with_call_to = instrs
            .last()
            .filter(|l| {
                l.flow_control() == FlowControl::Call && l.op0_kind() == OpKind::NearBranch64
            })
            .and_then(|l| img.function_at(l.near_branch_target()));
        let code_frame = minfo.map(|m| m.frame);
        let entry_depth = fde
            .filter(|d| d.start == f.addr && !d.not_rsp_based)
            .and_then(|d| d.rows.first().and_then(|r| r.2))
            .unwrap_or(8);
        funcs.push(FuncInfo {
            frame,
            source,
            code_frame,
            sites,
            invalid_at,
            entry_depth,
            has_return,
            ends_with_call_to,
        });
    }

    drop_noreturn_fallthrough(&mut funcs);

    // Address-taken functions and vtables from data.
    let mut vtable_slots: BTreeMap<i64, BTreeSet<usize>> = BTreeMap::new();
    let mut vtables_found = 0;
    for seg in img.segments.iter().filter(|s| !s.exec) {
        let base = seg.addr.next_multiple_of(8);
        let skip = (base - seg.addr) as usize;
        if skip >= seg.data.len() {
            continue;
        }
        let mut words: Vec<u64> = seg.data[skip..]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        let end = base + 8 * words.len() as u64;
        for (addr, v) in img.relocs.range(base, end) {
            if addr % 8 == 0 {
                words[((addr - base) / 8) as usize] = match v {
                    RelocValue::Value(v) => *v,
                    RelocValue::Import(_) => 0,
                };
            }
        }
        let func_of = |w: u64| if w == 0 { None } else { img.function_at(w) };
        for &w in &words {
            if let Some(ti) = func_of(w) {
                taken.insert(ti);
            }
        }
        let mut p = 0;
        while p + 3 < words.len() {
            let (w0, w1, w2) = (words[p], words[p + 1], words[p + 2]);
            let drop_ok = w0 == 0 || func_of(w0).is_some();
            let layout_ok = w1 < (1 << 40) && w2.is_power_of_two() && w2 <= (1 << 16);
            if drop_ok && layout_ok && func_of(words[p + 3]).is_some() {
                vtables_found += 1;
                let mut k = 3;
                while p + k < words.len() {
                    let Some(ti) = func_of(words[p + k]) else {
                        break;
                    };
                    vtable_slots.entry((k * 8) as i64).or_default().insert(ti);
                    k += 1;
                }
                p += k;
            } else {
                p += 1;
            }
        }
    }
    for v in img.relocs.values() {
        if let RelocValue::Value(v) = v
            && let Some(ti) = img.function_at(*v)
        {
            taken.insert(ti);
        }
    }
    Graph {
        funcs,
        moves,
        address_taken: taken.into_iter().collect(),
        vtable_slots,
        vtables_found,
    }
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
enum RegSrc {
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
fn reg_source(
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

/// Constant loaded into rdx/edx before the call at `idx`, within the block.
/// Whether `rdi` holds an address in the current frame at `instrs[idx]`:
/// the last straight-line write to it is `lea rdi, [rsp/rbp + d]` or
/// `mov rdi, rsp/rbp` (a copy from another register is followed once).
fn rdi_is_stack_before(instrs: &[Instruction], idx: usize) -> bool {
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

fn const_rdx_before(instrs: &[Instruction], idx: usize) -> Option<u64> {
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
