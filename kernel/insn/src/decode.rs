//! The decoder: legacy prefixes, REX, the one- and two-byte opcodes of the
//! supported forms, ModRM/SIB/displacement and immediates.

use crate::fetch::{FetchFault, InsnFetch, Window, WindowError};
use crate::insn::{Extend, Gpr, Insn, MemOperand, Mode, Op, Port, RegOperand, Segment, Src, Width};

/// Why an instruction could not be decoded. Each is a fault for the guest
/// (a fetch fault at its address; #GP for an over-long instruction; #UD or
/// the caller's own policy for an encoding outside the supported set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes could not be copied in.
    Fetch(FetchFault),
    /// Prefixes and operands ran past the 15-byte limit.
    TooLong,
    /// A valid or invalid encoding this decoder does not handle: another
    /// opcode, a register (not memory) operand, a LOCK prefix.
    Unsupported,
}

impl From<WindowError> for DecodeError {
    fn from(e: WindowError) -> Self {
        match e {
            WindowError::Fetch(f) => DecodeError::Fetch(f),
            WindowError::TooLong => DecodeError::TooLong,
        }
    }
}

/// The legacy prefixes and REX in front of the opcode.
#[derive(Clone, Copy, Debug, Default)]
struct Prefixes {
    opsize: bool,
    addrsize: bool,
    lock: bool,
    /// F2 or F3 present (REP for INS/OUTS).
    rep: bool,
    /// The last of F2/F3, which selects VMGEXIT over VMMCALL.
    last_rep: u8,
    segment: Option<Segment>,
    /// REX byte (0x40..=0x4F), 0 without one; only in 64-bit mode, and only
    /// when it is the last prefix (a legacy prefix after REX cancels it).
    rex: u8,
}

impl Prefixes {
    fn rex_w(&self) -> bool {
        self.rex & 8 != 0
    }
    fn rex_bit(&self, bit: u8) -> u8 {
        if self.rex & bit != 0 { 8 } else { 0 }
    }
}

/// Decodes the instruction at linear address `rip`, fetched in `mode`.
pub fn decode<F: InsnFetch + ?Sized>(
    fetch: &mut F,
    rip: u64,
    mode: Mode,
) -> Result<Insn, DecodeError> {
    let mut w = Window::new(fetch, rip);
    let p = prefixes(&mut w, mode)?;
    if p.lock {
        // No supported form accepts LOCK (#UD): fail before reading on.
        return Err(DecodeError::Unsupported);
    }
    let opcode = w.next()?;
    let (op, width, rep) = match opcode {
        0xE4..=0xE7 | 0xEC..=0xEF => port_io(&mut w, opcode, &p, mode)?,
        0x6C..=0x6F => string_io(opcode, &p, mode),
        0x88..=0x8B | 0xC6 | 0xC7 => mov(&mut w, opcode, &p, mode)?,
        0x0F => two_byte(&mut w, &p, mode)?,
        _ => return Err(DecodeError::Unsupported),
    };
    Ok(Insn {
        op,
        len: w.len() as u8,
        width,
        addr_width: address_width(&p, mode),
        rep,
    })
}

fn is_legacy_prefix(b: u8) -> bool {
    matches!(
        b,
        0x66 | 0x67 | 0xF0 | 0xF2 | 0xF3 | 0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65
    )
}

fn prefixes<F: InsnFetch + ?Sized>(
    w: &mut Window<'_, F>,
    mode: Mode,
) -> Result<Prefixes, DecodeError> {
    let mut p = Prefixes::default();
    loop {
        let b = w.peek()?;
        if mode == Mode::Long64 && (0x40..=0x4F).contains(&b) {
            p.rex = b;
            w.next()?;
            continue;
        }
        if !is_legacy_prefix(b) {
            return Ok(p);
        }
        w.next()?;
        p.rex = 0;
        match b {
            0x66 => p.opsize = true,
            0x67 => p.addrsize = true,
            0xF0 => p.lock = true,
            0xF2 | 0xF3 => {
                p.rep = true;
                p.last_rep = b;
            }
            _ => segment_prefix(&mut p, b, mode),
        }
    }
}

/// The last segment prefix wins, except that in 64-bit mode ES, CS, SS and
/// DS are null prefixes: they never displace an FS or GS override.
fn segment_prefix(p: &mut Prefixes, b: u8, mode: Mode) {
    let seg = match b {
        0x26 => Segment::Es,
        0x2E => Segment::Cs,
        0x36 => Segment::Ss,
        0x3E => Segment::Ds,
        0x64 => Segment::Fs,
        _ => Segment::Gs,
    };
    let fs_gs = matches!(p.segment, Some(Segment::Fs | Segment::Gs));
    if matches!(seg, Segment::Fs | Segment::Gs) || mode != Mode::Long64 || !fs_gs {
        p.segment = Some(seg);
    }
}

fn address_width(p: &Prefixes, mode: Mode) -> Width {
    match (mode, p.addrsize) {
        (Mode::Long64, false) => Width::W64,
        (Mode::Long64, true) | (Mode::Protected32, false) | (Mode::Protected16, true) => Width::W32,
        (Mode::Protected32, true) | (Mode::Protected16, false) => Width::W16,
    }
}

/// Operand size of the non-byte forms: REX.W (64-bit mode only), then 66.
fn operand_width(p: &Prefixes, mode: Mode, rex_w_allowed: bool) -> Width {
    if mode == Mode::Long64 && rex_w_allowed && p.rex_w() {
        return Width::W64;
    }
    match (mode == Mode::Protected16, p.opsize) {
        (false, false) | (true, true) => Width::W32,
        (false, true) | (true, false) => Width::W16,
    }
}

/// IO widths: the even opcodes move a byte, the odd ones a word or a
/// doubleword. REX.W does not widen port IO past 32 bits, but it still
/// overrides 66 (66 REX.W IN is a doubleword access).
fn io_width(opcode: u8, p: &Prefixes, mode: Mode) -> Width {
    if opcode & 1 == 0 {
        Width::W8
    } else if mode == Mode::Long64 && p.rex_w() {
        Width::W32
    } else {
        operand_width(p, mode, false)
    }
}

fn port_io<F: InsnFetch + ?Sized>(
    w: &mut Window<'_, F>,
    opcode: u8,
    p: &Prefixes,
    mode: Mode,
) -> Result<(Op, Width, bool), DecodeError> {
    // E4..E7 carry the port as imm8; EC..EF take it from DX. Bit 1 is OUT.
    let port = if opcode & 0x08 == 0 {
        Port::Imm(w.next()?)
    } else {
        Port::Dx
    };
    let op = if opcode & 2 == 0 {
        Op::In(port)
    } else {
        Op::Out(port)
    };
    Ok((op, io_width(opcode, p, mode), false))
}

fn string_io(opcode: u8, p: &Prefixes, mode: Mode) -> (Op, Width, bool) {
    let op = if opcode & 2 == 0 {
        Op::Ins
    } else {
        Op::Outs {
            segment: p.segment.unwrap_or(Segment::Ds),
        }
    };
    (op, io_width(opcode, p, mode), p.rep)
}

/// The register named by a ModRM reg field (REX.R already applied).
fn register(num: u8, width: Width, p: &Prefixes) -> RegOperand {
    let high8 = width == Width::W8 && p.rex == 0 && (4..8).contains(&num);
    RegOperand {
        gpr: Gpr(if high8 { num - 4 } else { num }),
        width,
        high8,
    }
}

fn mov<F: InsnFetch + ?Sized>(
    w: &mut Window<'_, F>,
    opcode: u8,
    p: &Prefixes,
    mode: Mode,
) -> Result<(Op, Width, bool), DecodeError> {
    let width = if opcode & 1 == 0 {
        Width::W8
    } else {
        operand_width(p, mode, true)
    };
    let (reg, mem) = modrm(w, p, mode)?;
    let mem = mem.ok_or(DecodeError::Unsupported)?;
    let op = match opcode {
        0x88 | 0x89 => Op::Store {
            mem,
            src: Src::Reg(register(reg, width, p)),
        },
        0x8A | 0x8B => Op::Load {
            mem,
            dst: register(reg, width, p),
            extend: Extend::None,
        },
        // C6 /0 and C7 /0; the other reg values are not MOV.
        _ if reg & 7 != 0 => return Err(DecodeError::Unsupported),
        _ => {
            let imm_bytes = width.bytes().min(4);
            let imm = Width::sign_extend(imm_width(imm_bytes), w.le(imm_bytes)?) & width.mask();
            Op::Store {
                mem,
                src: Src::Imm(imm),
            }
        }
    };
    Ok((op, width, false))
}

fn imm_width(bytes: usize) -> Width {
    match bytes {
        1 => Width::W8,
        2 => Width::W16,
        _ => Width::W32,
    }
}

fn two_byte<F: InsnFetch + ?Sized>(
    w: &mut Window<'_, F>,
    p: &Prefixes,
    mode: Mode,
) -> Result<(Op, Width, bool), DecodeError> {
    let opcode = w.next()?;
    let simple = |op| Ok((op, Width::W32, false));
    match opcode {
        0xA2 => simple(Op::Cpuid),
        0x32 => simple(Op::Rdmsr),
        0x30 => simple(Op::Wrmsr),
        // 0F 01 D9 is VMMCALL; with F2 or F3 it is VMGEXIT.
        0x01 => match (w.next()?, p.rep) {
            (0xD9, true) => simple(Op::Vmgexit),
            (0xD9, false) => simple(Op::Vmmcall),
            _ => Err(DecodeError::Unsupported),
        },
        0xB6 | 0xB7 | 0xBE | 0xBF => movx(w, opcode, p, mode),
        _ => Err(DecodeError::Unsupported),
    }
}

/// MOVZX (0F B6/B7) and MOVSX (0F BE/BF) from memory.
fn movx<F: InsnFetch + ?Sized>(
    w: &mut Window<'_, F>,
    opcode: u8,
    p: &Prefixes,
    mode: Mode,
) -> Result<(Op, Width, bool), DecodeError> {
    let src = if opcode & 1 == 0 {
        Width::W8
    } else {
        Width::W16
    };
    let dst_width = operand_width(p, mode, true);
    let (reg, mem) = modrm(w, p, mode)?;
    let mem = mem.ok_or(DecodeError::Unsupported)?;
    let extend = if opcode & 8 == 0 {
        Extend::Zero
    } else {
        Extend::Sign
    };
    let op = Op::Load {
        mem,
        dst: register(reg, dst_width, p),
        extend,
    };
    Ok((op, src, false))
}

/// ModRM (with SIB and displacement): the reg field (REX.R applied) and the
/// memory operand, `None` for a register operand (mod = 3).
fn modrm<F: InsnFetch + ?Sized>(
    w: &mut Window<'_, F>,
    p: &Prefixes,
    mode: Mode,
) -> Result<(u8, Option<MemOperand>), DecodeError> {
    let b = w.next()?;
    let (md, rm) = (b >> 6, b & 7);
    let reg = ((b >> 3) & 7) | p.rex_bit(4);
    if md == 3 {
        return Ok((reg, None));
    }
    let addr_width = address_width(p, mode);
    let mut mem = if addr_width == Width::W16 {
        modrm16(w, md, rm)?
    } else {
        modrm32(w, md, rm, p, mode, addr_width)?
    };
    if let Some(s) = p.segment {
        mem.segment = s;
    }
    Ok((reg, Some(mem)))
}

fn displacement<F: InsnFetch + ?Sized>(
    w: &mut Window<'_, F>,
    bytes: usize,
) -> Result<i64, DecodeError> {
    Ok(match bytes {
        0 => 0,
        1 => Width::W8.sign_extend(w.le(1)?) as i64,
        2 => Width::W16.sign_extend(w.le(2)?) as i64,
        _ => Width::W32.sign_extend(w.le(4)?) as i64,
    })
}

/// 16-bit addressing: the fixed base/index pairs of ModRM.rm.
fn modrm16<F: InsnFetch + ?Sized>(
    w: &mut Window<'_, F>,
    md: u8,
    rm: u8,
) -> Result<MemOperand, DecodeError> {
    const PAIRS: [(Option<Gpr>, Option<Gpr>); 8] = [
        (Some(Gpr::RBX), Some(Gpr::RSI)),
        (Some(Gpr::RBX), Some(Gpr::RDI)),
        (Some(Gpr::RBP), Some(Gpr::RSI)),
        (Some(Gpr::RBP), Some(Gpr::RDI)),
        (Some(Gpr::RSI), None),
        (Some(Gpr::RDI), None),
        (Some(Gpr::RBP), None),
        (Some(Gpr::RBX), None),
    ];
    let (mut base, index) = PAIRS[usize::from(rm)];
    let disp_bytes = match (md, rm) {
        (0, 6) => {
            base = None;
            2
        }
        (0, _) => 0,
        (1, _) => 1,
        _ => 2,
    };
    let disp = displacement(w, disp_bytes)?;
    Ok(MemOperand {
        segment: default_segment(base),
        base,
        index,
        scale: 1,
        disp,
        rip_relative: false,
        addr_width: Width::W16,
    })
}

/// rBP and rSP as base select SS by default, everything else DS.
fn default_segment(base: Option<Gpr>) -> Segment {
    match base {
        Some(Gpr::RSP | Gpr::RBP) => Segment::Ss,
        _ => Segment::Ds,
    }
}

/// 32- and 64-bit addressing: ModRM, optional SIB, disp8/disp32, and
/// RIP-relative in 64-bit mode.
fn modrm32<F: InsnFetch + ?Sized>(
    w: &mut Window<'_, F>,
    md: u8,
    rm: u8,
    p: &Prefixes,
    mode: Mode,
    addr_width: Width,
) -> Result<MemOperand, DecodeError> {
    let mut mem = MemOperand {
        segment: Segment::Ds,
        base: None,
        index: None,
        scale: 1,
        disp: 0,
        rip_relative: false,
        addr_width,
    };
    let mut disp_bytes = match md {
        0 => 0,
        1 => 1,
        _ => 4,
    };
    if rm == 4 {
        let sib = w.next()?;
        let index = ((sib >> 3) & 7) | p.rex_bit(2);
        if index != 4 {
            mem.index = Some(Gpr(index));
            mem.scale = 1 << (sib >> 6);
        }
        let base = sib & 7;
        if md == 0 && base == 5 {
            disp_bytes = 4;
        } else {
            mem.base = Some(Gpr(base | p.rex_bit(1)));
        }
    } else if md == 0 && rm == 5 {
        disp_bytes = 4;
        mem.rip_relative = mode == Mode::Long64;
    } else {
        mem.base = Some(Gpr(rm | p.rex_bit(1)));
    }
    mem.disp = displacement(w, disp_bytes)?;
    mem.segment = default_segment(mem.base);
    Ok(mem)
}
