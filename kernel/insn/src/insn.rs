//! The decoded instruction: what it accesses, how wide, where.

use svsm_defs::ioio::{self, IoioInfo};

/// The CPU mode the instruction was fetched in: it sets the default operand
/// and address sizes, and whether REX prefixes and RIP-relative addressing
/// exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 64-bit mode (CS.L = 1).
    Long64,
    /// 32-bit protected or compatibility mode (CS.D = 1).
    Protected32,
    /// 16-bit code (real mode, or CS.D = 0).
    Protected16,
}

/// An access width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Width {
    W8,
    W16,
    W32,
    W64,
}

impl Width {
    pub const fn bytes(self) -> usize {
        match self {
            Width::W8 => 1,
            Width::W16 => 2,
            Width::W32 => 4,
            Width::W64 => 8,
        }
    }

    /// All ones in the low `bytes() * 8` bits.
    pub const fn mask(self) -> u64 {
        match self {
            Width::W8 => 0xff,
            Width::W16 => 0xffff,
            Width::W32 => 0xffff_ffff,
            Width::W64 => u64::MAX,
        }
    }

    /// `v` sign-extended from this width to 64 bits.
    pub const fn sign_extend(self, v: u64) -> u64 {
        let shift = 64 - 8 * self.bytes() as u32;
        (((v << shift) as i64) >> shift) as u64
    }
}

/// A general-purpose register by its encoding number (RAX = 0, RCX = 1,
/// RDX = 2, RBX = 3, RSP = 4, RBP = 5, RSI = 6, RDI = 7, R8..R15 = 8..15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gpr(pub u8);

impl Gpr {
    pub const RAX: Gpr = Gpr(0);
    pub const RCX: Gpr = Gpr(1);
    pub const RDX: Gpr = Gpr(2);
    pub const RBX: Gpr = Gpr(3);
    pub const RSP: Gpr = Gpr(4);
    pub const RBP: Gpr = Gpr(5);
    pub const RSI: Gpr = Gpr(6);
    pub const RDI: Gpr = Gpr(7);
}

/// A register operand: `gpr` accessed at `width`; `high8` selects AH, CH,
/// DH or BH (bits 15:8 of RAX..RBX), only encodable without REX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegOperand {
    pub gpr: Gpr,
    pub width: Width,
    pub high8: bool,
}

/// Segment registers, in their encoding order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    Es,
    Cs,
    Ss,
    Ds,
    Fs,
    Gs,
}

/// A memory operand. Its effective address is
/// `base + index * scale + disp` (or `next_rip + disp` when `rip_relative`),
/// truncated to `addr_width`; the linear address adds `segment`'s base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemOperand {
    pub segment: Segment,
    pub base: Option<Gpr>,
    pub index: Option<Gpr>,
    /// 1, 2, 4 or 8 (meaningful only with an index).
    pub scale: u8,
    /// Sign-extended displacement (16-bit addressing: as encoded, wraps).
    pub disp: i64,
    pub rip_relative: bool,
    pub addr_width: Width,
}

/// An IO port operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// The imm8 forms (ports 0..=255).
    Imm(u8),
    /// The port in DX.
    Dx,
}

/// The value a store writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    Reg(RegOperand),
    /// Already sign-extended to the store width (C7 with REX.W: imm32 to 64).
    Imm(u64),
}

/// How a load widens the value it read into its destination register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extend {
    /// MOV: the destination is as wide as the access.
    None,
    /// MOVZX.
    Zero,
    /// MOVSX.
    Sign,
}

/// What the instruction does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// IN AL/AX/EAX, imm8|DX.
    In(Port),
    /// OUT imm8|DX, AL/AX/EAX.
    Out(Port),
    /// INS: port DX to ES:[rDI].
    Ins,
    /// OUTS: `segment`:[rSI] to port DX.
    Outs {
        segment: Segment,
    },
    /// MOV r/m, reg and MOV r/m, imm (88, 89, C6 /0, C7 /0).
    Store {
        mem: MemOperand,
        src: Src,
    },
    /// MOV reg, r/m, MOVZX and MOVSX (8A, 8B, 0F B6/B7/BE/BF).
    Load {
        mem: MemOperand,
        dst: RegOperand,
        extend: Extend,
    },
    Cpuid,
    Rdmsr,
    Wrmsr,
    Vmmcall,
    /// F3 0F 01 D9 (VMMCALL with REP: the SEV-ES/SNP guest's exit).
    Vmgexit,
}

/// A decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub op: Op,
    /// Total length in bytes, prefixes included (1..=15).
    pub len: u8,
    /// The width of the IO or memory access (for MOVZX/MOVSX the source's).
    pub width: Width,
    /// The address size (string instructions: the width of rSI, rDI, rCX).
    pub addr_width: Width,
    /// A REP (F3) or REPNE (F2) prefix on INS/OUTS; false for every other op.
    pub rep: bool,
}

/// The port-IO view of an instruction, in the terms of the SVM IOIO exit
/// information (port, size, direction, string, REP, address size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoAccess {
    pub port: Port,
    pub width: Width,
    /// IN and INS.
    pub is_in: bool,
    pub string: bool,
    pub rep: bool,
    pub addr_width: Width,
    /// The memory segment of OUTS (ES for INS).
    pub segment: Option<Segment>,
}

impl Insn {
    /// RIP after the instruction, with the wrap of the instruction pointer's
    /// width (`ip_width`: W64 in 64-bit mode, else W32 or W16).
    pub fn next_rip(&self, rip: u64, ip_width: Width) -> u64 {
        rip.wrapping_add(u64::from(self.len)) & ip_width.mask()
    }

    /// The port-IO access, or `None` for the other instructions.
    pub fn io_access(&self) -> Option<IoAccess> {
        let (port, is_in, string, segment) = match self.op {
            Op::In(p) => (p, true, false, None),
            Op::Out(p) => (p, false, false, None),
            Op::Ins => (Port::Dx, true, true, Some(Segment::Es)),
            Op::Outs { segment } => (Port::Dx, false, true, Some(segment)),
            _ => return None,
        };
        Some(IoAccess {
            port,
            width: self.width,
            is_in,
            string,
            rep: self.rep,
            addr_width: self.addr_width,
            segment,
        })
    }
}

impl IoAccess {
    /// The EXITINFO1 of the SVM IOIO intercept (and of the GHCB IOIO
    /// request) for this access, given DX (used by the DX forms and by
    /// INS/OUTS); the segment field is filled for INS/OUTS.
    pub fn exit_info1(&self, dx: u16) -> u64 {
        let mut info = match self.width {
            Width::W8 => IoioInfo::SZ8,
            Width::W16 => IoioInfo::SZ16,
            _ => IoioInfo::SZ32,
        };
        info |= match self.addr_width {
            Width::W16 => IoioInfo::A16,
            Width::W32 => IoioInfo::A32,
            _ => IoioInfo::A64,
        };
        info.set(IoioInfo::TYPE_IN, self.is_in);
        info.set(IoioInfo::STR, self.string);
        info.set(IoioInfo::REP, self.rep);
        let port = match self.port {
            Port::Imm(p) => u16::from(p),
            Port::Dx => dx,
        };
        let seg = self.segment.map_or(0, |s| (s as u64) << ioio::SEG_SHIFT);
        ioio::with_port(info, port) | seg
    }

    /// Whether the CPU's IOIO exit information describes this access:
    /// EXITINFO1 equal (the segment field only when the CPU filled it,
    /// which needs decode assists) and EXITINFO2 the next RIP.
    pub fn matches_exit(&self, dx: u16, exit_info1: u64, exit_info2: u64, next_rip: u64) -> bool {
        let mut ours = self.exit_info1(dx);
        if exit_info1 & ioio::SEG_MASK == 0 {
            ours &= !ioio::SEG_MASK;
        }
        ours == exit_info1 && exit_info2 == next_rip
    }
}

impl MemOperand {
    /// The effective address (before the segment base), given a register
    /// read-out and the address of the next instruction.
    pub fn effective_address(&self, gpr: impl Fn(Gpr) -> u64, next_rip: u64) -> u64 {
        let mut ea = self.disp as u64;
        if self.rip_relative {
            ea = ea.wrapping_add(next_rip);
        }
        if let Some(b) = self.base {
            ea = ea.wrapping_add(gpr(b) & self.addr_width.mask());
        }
        if let Some(i) = self.index {
            let scaled = (gpr(i) & self.addr_width.mask()).wrapping_mul(u64::from(self.scale));
            ea = ea.wrapping_add(scaled);
        }
        ea & self.addr_width.mask()
    }
}
