//! The differential oracle shared by the tests, the benchmark and the fuzz
//! target: both decoders' results reduced to one comparable form.

#![allow(dead_code)]

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Register};
use svsm_insn::{Extend, Insn, Mode, Op, Port, SliceFetch, Src, decode};

/// Register values for effective-address comparison: distinct, with
/// upper bits set so truncation to the address size is exercised.
pub fn reg_value(n: u8) -> u64 {
    0x8765_4321_0fed_c000u64.wrapping_add(u64::from(n).wrapping_mul(0x1111_1111_0101_0123))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    In,
    Out,
    Ins,
    Outs,
    Store,
    Load(Extend),
    Cpuid,
    Rdmsr,
    Wrmsr,
    Vmmcall,
    Vmgexit,
}

/// One instruction, as both decoders must agree on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Norm {
    pub len: usize,
    pub kind: Kind,
    /// Access width in bytes (IO and memory forms).
    pub width: usize,
    /// `Some(Some(p))` imm8 port, `Some(None)` DX.
    pub port: Option<Option<u8>>,
    pub rep: bool,
    /// Address size in bytes (string and memory forms).
    pub addr: usize,
    /// Memory segment (string and memory forms), as iced's register number.
    pub segment: Option<usize>,
    /// (base, index, scale, effective address) of a memory operand.
    pub mem: Option<(Option<u8>, Option<u8>, u8, u64)>,
    /// (gpr, width bytes, high8) of the register operand.
    pub reg: Option<(u8, usize, bool)>,
    pub imm: Option<u64>,
    /// The IOIO EXITINFO1 (DX = [`DX`]) of the port-IO forms.
    pub exit1: Option<u64>,
}

/// DX for the EXITINFO1 comparison.
pub const DX: u16 = 0xc0de;

pub const IP64: u64 = 0x7fff_ff12_3456_7000;
pub const IP32: u64 = 0x1234_5000;
pub const IP16: u64 = 0x5000;

pub fn bitness(mode: Mode) -> u32 {
    match mode {
        Mode::Long64 => 64,
        Mode::Protected32 => 32,
        Mode::Protected16 => 16,
    }
}

pub fn ip(mode: Mode) -> u64 {
    match mode {
        Mode::Long64 => IP64,
        Mode::Protected32 => IP32,
        Mode::Protected16 => IP16,
    }
}

fn seg_number(s: svsm_insn::Segment) -> usize {
    use svsm_insn::Segment::*;
    match s {
        Es => 0,
        Cs => 1,
        Ss => 2,
        Ds => 3,
        Fs => 4,
        Gs => 5,
    }
}

/// Ours, normalized; `Err` when we refuse the bytes.
pub fn ours(bytes: &[u8], mode: Mode) -> Result<Norm, svsm_insn::DecodeError> {
    let base = ip(mode);
    let insn = decode(&mut SliceFetch { base, bytes }, base, mode)?;
    Ok(normalize(&insn, mode))
}

pub fn normalize(insn: &Insn, mode: Mode) -> Norm {
    let ipw = match mode {
        Mode::Long64 => svsm_insn::Width::W64,
        Mode::Protected32 => svsm_insn::Width::W32,
        Mode::Protected16 => svsm_insn::Width::W16,
    };
    let next = insn.next_rip(ip(mode), ipw);
    let mut n = Norm {
        len: usize::from(insn.len),
        kind: Kind::Cpuid,
        width: insn.width.bytes(),
        port: None,
        rep: insn.rep,
        addr: 0,
        segment: None,
        mem: None,
        reg: None,
        imm: None,
        exit1: insn.io_access().map(|io| {
            let v = io.exit_info1(DX);
            // iced names no address size for IN/OUT: compare A16/A32/A64
            // for the string forms only.
            if io.string { v } else { v & !A_BITS }
        }),
    };
    let mem_of = |m: &svsm_insn::MemOperand, n: &mut Norm| {
        let ea = m.effective_address(|r| reg_value(r.0), next);
        n.addr = m.addr_width.bytes();
        n.segment = Some(seg_number(m.segment));
        n.mem = Some((m.base.map(|g| g.0), m.index.map(|g| g.0), m.scale, ea));
    };
    match insn.op {
        Op::In(p) | Op::Out(p) => {
            n.kind = if matches!(insn.op, Op::In(_)) {
                Kind::In
            } else {
                Kind::Out
            };
            n.port = Some(match p {
                Port::Imm(v) => Some(v),
                Port::Dx => None,
            });
        }
        Op::Ins | Op::Outs { .. } => {
            let io = insn.io_access().expect("string IO");
            n.kind = if io.is_in { Kind::Ins } else { Kind::Outs };
            n.port = Some(None);
            n.addr = insn.addr_width.bytes();
            n.segment = io.segment.map(seg_number);
        }
        Op::Store { mem, src } => {
            n.kind = Kind::Store;
            mem_of(&mem, &mut n);
            match src {
                Src::Reg(r) => n.reg = Some((r.gpr.0, r.width.bytes(), r.high8)),
                Src::Imm(v) => n.imm = Some(v),
            }
        }
        Op::Load { mem, dst, extend } => {
            n.kind = Kind::Load(extend);
            mem_of(&mem, &mut n);
            n.reg = Some((dst.gpr.0, dst.width.bytes(), dst.high8));
        }
        Op::Cpuid | Op::Rdmsr | Op::Wrmsr | Op::Vmmcall | Op::Vmgexit => {
            n.kind = match insn.op {
                Op::Cpuid => Kind::Cpuid,
                Op::Rdmsr => Kind::Rdmsr,
                Op::Wrmsr => Kind::Wrmsr,
                Op::Vmmcall => Kind::Vmmcall,
                _ => Kind::Vmgexit,
            };
            n.width = 0;
        }
    }
    n
}

fn iced_reg(r: Register) -> (u8, usize, bool) {
    let high8 = (Register::AH..=Register::BH).contains(&r);
    (r.full_register().number() as u8, r.size(), high8)
}

fn gpr_or_none(r: Register) -> Option<u8> {
    (r != Register::None && r != Register::RIP && r != Register::EIP)
        .then(|| r.full_register().number() as u8)
}

/// What iced says the bytes are, for the supported forms only; `None` for
/// an invalid encoding or any other instruction.
pub fn iced(bytes: &[u8], mode: Mode) -> Option<Norm> {
    let mut d = Decoder::with_ip(bitness(mode), bytes, ip(mode), DecoderOptions::NONE);
    let i = d.decode();
    if i.is_invalid() {
        return None;
    }
    iced_norm(&i, mode)
}

/// EXITINFO1 from iced's view, straight from the APM's bit list.
fn iced_exit_info1(n: &Norm) -> u64 {
    use svsm_defs::ioio::{IoioInfo, SEG_SHIFT, with_port};
    let mut f = match n.width {
        1 => IoioInfo::SZ8,
        2 => IoioInfo::SZ16,
        _ => IoioInfo::SZ32,
    };
    f |= match n.addr {
        2 => IoioInfo::A16,
        4 => IoioInfo::A32,
        _ => IoioInfo::A64,
    };
    if matches!(n.kind, Kind::In | Kind::Ins) {
        f |= IoioInfo::TYPE_IN;
    }
    if matches!(n.kind, Kind::Ins | Kind::Outs) {
        f |= IoioInfo::STR;
    }
    if n.rep {
        f |= IoioInfo::REP;
    }
    let port = match n.port {
        Some(Some(p)) => u16::from(p),
        _ => DX,
    };
    let v = with_port(f, port) | n.segment.map_or(0, |s| (s as u64) << SEG_SHIFT);
    if n.addr == 0 { v & !A_BITS } else { v }
}

const A_BITS: u64 = 0x380;

fn io_code(c: Code) -> Option<(Kind, usize, bool)> {
    use Code::*;
    // (kind, width, port from imm8)
    Some(match c {
        In_AL_imm8 => (Kind::In, 1, true),
        In_AX_imm8 => (Kind::In, 2, true),
        In_EAX_imm8 => (Kind::In, 4, true),
        In_AL_DX => (Kind::In, 1, false),
        In_AX_DX => (Kind::In, 2, false),
        In_EAX_DX => (Kind::In, 4, false),
        Out_imm8_AL => (Kind::Out, 1, true),
        Out_imm8_AX => (Kind::Out, 2, true),
        Out_imm8_EAX => (Kind::Out, 4, true),
        Out_DX_AL => (Kind::Out, 1, false),
        Out_DX_AX => (Kind::Out, 2, false),
        Out_DX_EAX => (Kind::Out, 4, false),
        Insb_m8_DX => (Kind::Ins, 1, false),
        Insw_m16_DX => (Kind::Ins, 2, false),
        Insd_m32_DX => (Kind::Ins, 4, false),
        Outsb_DX_m8 => (Kind::Outs, 1, false),
        Outsw_DX_m16 => (Kind::Outs, 2, false),
        Outsd_DX_m32 => (Kind::Outs, 4, false),
        _ => return None,
    })
}

fn mov_code(c: Code) -> Option<Kind> {
    use Code::*;
    Some(match c {
        Mov_rm8_r8 | Mov_rm16_r16 | Mov_rm32_r32 | Mov_rm64_r64 => Kind::Store,
        Mov_rm8_imm8 | Mov_rm16_imm16 | Mov_rm32_imm32 | Mov_rm64_imm32 => Kind::Store,
        Mov_r8_rm8 | Mov_r16_rm16 | Mov_r32_rm32 | Mov_r64_rm64 => Kind::Load(Extend::None),
        Movzx_r16_rm8 | Movzx_r32_rm8 | Movzx_r64_rm8 | Movzx_r16_rm16 | Movzx_r32_rm16
        | Movzx_r64_rm16 => Kind::Load(Extend::Zero),
        Movsx_r16_rm8 | Movsx_r32_rm8 | Movsx_r64_rm8 | Movsx_r16_rm16 | Movsx_r32_rm16
        | Movsx_r64_rm16 => Kind::Load(Extend::Sign),
        _ => return None,
    })
}

fn iced_norm(i: &Instruction, mode: Mode) -> Option<Norm> {
    let mut n = Norm {
        len: i.len(),
        kind: Kind::Cpuid,
        width: 0,
        port: None,
        rep: false,
        addr: 0,
        segment: None,
        mem: None,
        reg: None,
        imm: None,
        exit1: None,
    };
    if let Some((kind, width, imm)) = io_code(i.code()) {
        n.kind = kind;
        n.width = width;
        n.port = Some(imm.then(|| i.immediate8()));
        if matches!(kind, Kind::Ins | Kind::Outs) {
            n.rep = i.has_rep_prefix() || i.has_repne_prefix();
            let (addr, es) = string_operand(i);
            n.addr = addr;
            n.segment = Some(if es { 0 } else { i.memory_segment().number() });
        }
        n.exit1 = Some(iced_exit_info1(&n));
        return Some(n);
    }
    if let Some(kind) = mov_code(i.code()) {
        let (mem_op, other) = if kind == Kind::Store { (0, 1) } else { (1, 0) };
        if i.op_kind(mem_op) != iced_x86::OpKind::Memory {
            return None;
        }
        n.kind = kind;
        n.width = i.memory_size().size();
        n.addr = address_bytes(i, mode);
        n.segment = Some(i.memory_segment().number());
        let ea = i
            .virtual_address(mem_op, 0, |r, _, _| {
                Some(match r {
                    Register::ES | Register::CS | Register::SS | Register::DS => 0,
                    Register::FS | Register::GS => 0,
                    r => reg_value(r.full_register().number() as u8) & mask(r.size()),
                })
            })
            .expect("address");
        let scale = if i.memory_index() == Register::None {
            1
        } else {
            i.memory_index_scale() as u8
        };
        n.mem = Some((
            gpr_or_none(i.memory_base()),
            gpr_or_none(i.memory_index()),
            scale,
            ea,
        ));
        if i.op_kind(other) == iced_x86::OpKind::Register {
            n.reg = Some(iced_reg(i.op_register(other)));
        } else {
            n.imm = Some(i.immediate(other) & mask(n.width));
        }
        return Some(n);
    }
    n.kind = match i.code() {
        Code::Cpuid => Kind::Cpuid,
        Code::Rdmsr => Kind::Rdmsr,
        Code::Wrmsr => Kind::Wrmsr,
        Code::Vmmcall => Kind::Vmmcall,
        Code::Vmgexit | Code::Vmgexit_F2 => Kind::Vmgexit,
        _ => return None,
    };
    Some(n)
}

fn mask(bytes: usize) -> u64 {
    if bytes >= 8 {
        u64::MAX
    } else {
        (1u64 << (bytes * 8)) - 1
    }
}

/// The address size and ES-ness of a string instruction's memory operand.
fn string_operand(i: &Instruction) -> (usize, bool) {
    use iced_x86::OpKind::*;
    (0..i.op_count())
        .find_map(|o| match i.op_kind(o) {
            MemoryESDI => Some((2, true)),
            MemoryESEDI => Some((4, true)),
            MemoryESRDI => Some((8, true)),
            MemorySegSI => Some((2, false)),
            MemorySegESI => Some((4, false)),
            MemorySegRSI => Some((8, false)),
            _ => None,
        })
        .expect("string operand")
}

/// The address size of a ModRM memory operand.
fn address_bytes(i: &Instruction, mode: Mode) -> usize {
    let _ = mode;
    match i.memory_displ_size() {
        _ if i.memory_base() != Register::None
            && i.memory_base() != Register::RIP
            && i.memory_base() != Register::EIP =>
        {
            i.memory_base().size()
        }
        _ if i.memory_index() != Register::None => i.memory_index().size(),
        _ if i.memory_base() == Register::RIP => 8,
        _ if i.memory_base() == Register::EIP => 4,
        // No base and no index: the displacement's size names the address size.
        2 => 2,
        4 => 4,
        _ => 8,
    }
}
