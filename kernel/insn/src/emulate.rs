//! Applying a decoded IO or MMIO instruction: the device access, the
//! register and memory effects, and the RIP advance.

use crate::insn::{Extend, Gpr, Insn, MemOperand, Op, Port, RegOperand, Segment, Src, Width};

/// RFLAGS.DF: string instructions step down instead of up.
const RFLAGS_DF: u64 = 1 << 10;

/// A guest memory access that failed (not mapped, not permitted): the
/// caller reports a page fault (or #GP) at `addr` to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemFault {
    pub addr: u64,
}

/// The device side refused the access (no device at that port or address,
/// or the device reports an error); the caller decides what the guest sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceError;

/// The interrupted context: its registers and its (linear) memory, for the
/// operands of string instructions. Memory is copied in and out, never
/// referenced in place.
pub trait GuestState {
    fn gpr(&self, r: Gpr) -> u64;
    fn set_gpr(&mut self, r: Gpr, value: u64);
    fn rip(&self) -> u64;
    fn set_rip(&mut self, rip: u64);
    fn rflags(&self) -> u64;
    /// The base address of `seg` (in 64-bit mode 0 except for FS and GS).
    fn segment_base(&self, seg: Segment) -> u64;
    /// The width of RIP: W64 in 64-bit mode, else W32 (or W16).
    fn ip_width(&self) -> Width {
        Width::W64
    }
    fn read_memory(&mut self, linear: u64, buf: &mut [u8]) -> Result<(), MemFault>;
    fn write_memory(&mut self, linear: u64, data: &[u8]) -> Result<(), MemFault>;
}

/// The emulated devices: port IO, and MMIO at the linear address the
/// instruction computed (the caller translates it, or checks it against the
/// guest-physical address of the nested page fault it is handling).
pub trait Devices {
    fn io_read(&mut self, port: u16, width: Width) -> Result<u32, DeviceError>;
    fn io_write(&mut self, port: u16, width: Width, value: u32) -> Result<(), DeviceError>;
    fn mmio_read(&mut self, linear: u64, width: Width) -> Result<u64, DeviceError>;
    fn mmio_write(&mut self, linear: u64, width: Width, value: u64) -> Result<(), DeviceError>;
}

/// Why emulation stopped. Registers reflect every access that completed;
/// RIP is not advanced, so the guest sees the fault on this instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmulateError {
    Memory(MemFault),
    Device(DeviceError),
    /// CPUID, RDMSR, WRMSR, VMMCALL and VMGEXIT are the caller's to handle
    /// (it advances RIP by `Insn::len`).
    NotEmulated,
}

/// How far emulation got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The instruction completed and RIP points past it.
    Done,
    /// A REP string instruction ran its iteration budget with rCX still
    /// non-zero: RIP is unchanged, so the guest re-executes it (and exits
    /// again) for the remaining iterations.
    Partial,
}

/// Emulates `insn` (decoded at the guest's current RIP) against `state`
/// and `devices`. REP string forms run at most `max_reps` iterations
/// (at least one) per call.
pub fn emulate<S: GuestState + ?Sized, D: Devices + ?Sized>(
    insn: &Insn,
    state: &mut S,
    devices: &mut D,
    max_reps: u64,
) -> Result<Outcome, EmulateError> {
    let outcome = match insn.op {
        Op::In(port) => {
            let v = devices
                .io_read(port_number(state, port), insn.width)
                .map_err(EmulateError::Device)?;
            write_register(state, accumulator(insn.width), u64::from(v));
            Outcome::Done
        }
        Op::Out(port) => {
            let v = state.gpr(Gpr::RAX) & insn.width.mask();
            devices
                .io_write(port_number(state, port), insn.width, v as u32)
                .map_err(EmulateError::Device)?;
            Outcome::Done
        }
        Op::Ins | Op::Outs { .. } => string_io(insn, state, devices, max_reps)?,
        Op::Store { mem, src } => {
            let value = match src {
                Src::Reg(r) => read_register(state, r),
                Src::Imm(v) => v,
            };
            let linear = linear_address(insn, &mem, state);
            devices
                .mmio_write(linear, insn.width, value & insn.width.mask())
                .map_err(EmulateError::Device)?;
            Outcome::Done
        }
        Op::Load { mem, dst, extend } => {
            let linear = linear_address(insn, &mem, state);
            let raw = devices
                .mmio_read(linear, insn.width)
                .map_err(EmulateError::Device)?
                & insn.width.mask();
            let value = match extend {
                Extend::Sign => insn.width.sign_extend(raw),
                Extend::None | Extend::Zero => raw,
            };
            write_register(state, dst, value);
            Outcome::Done
        }
        Op::Cpuid | Op::Rdmsr | Op::Wrmsr | Op::Vmmcall | Op::Vmgexit => {
            return Err(EmulateError::NotEmulated);
        }
    };
    if outcome == Outcome::Done {
        let next = insn.next_rip(state.rip(), state.ip_width());
        state.set_rip(next);
    }
    Ok(outcome)
}

fn accumulator(width: Width) -> RegOperand {
    RegOperand {
        gpr: Gpr::RAX,
        width,
        high8: false,
    }
}

fn port_number<S: GuestState + ?Sized>(state: &S, port: Port) -> u16 {
    match port {
        Port::Imm(p) => u16::from(p),
        Port::Dx => state.gpr(Gpr::RDX) as u16,
    }
}

fn read_register<S: GuestState + ?Sized>(state: &S, r: RegOperand) -> u64 {
    let v = state.gpr(r.gpr);
    if r.high8 {
        (v >> 8) & 0xff
    } else {
        v & r.width.mask()
    }
}

/// Register writes as the CPU does them: a 32-bit write zero-extends to 64
/// bits; 8- and 16-bit writes (AH..BH included) keep the other bits.
fn write_register<S: GuestState + ?Sized>(state: &mut S, r: RegOperand, value: u64) {
    let old = state.gpr(r.gpr);
    let new = match (r.width, r.high8) {
        (_, true) => (old & !0xff00) | ((value & 0xff) << 8),
        (Width::W64, _) => value,
        (Width::W32, _) => value & 0xffff_ffff,
        (w, _) => (old & !w.mask()) | (value & w.mask()),
    };
    state.set_gpr(r.gpr, new);
}

/// The linear address of a memory operand; outside 64-bit mode it wraps at
/// 4 GiB. Segment limits and attributes are not checked.
fn linear_address<S: GuestState + ?Sized>(insn: &Insn, mem: &MemOperand, state: &S) -> u64 {
    let next_rip = insn.next_rip(state.rip(), state.ip_width());
    let ea = mem.effective_address(|r| state.gpr(r), next_rip);
    let linear = state.segment_base(mem.segment).wrapping_add(ea);
    if state.ip_width() == Width::W64 {
        linear
    } else {
        linear & 0xffff_ffff
    }
}

/// An address-sized index register (rSI, rDI, rCX of a string instruction).
fn string_register(gpr: Gpr, width: Width) -> RegOperand {
    RegOperand {
        gpr,
        width,
        high8: false,
    }
}

/// INS and OUTS, with or without REP: one port access per element, the
/// memory side through `state`, rSI/rDI stepped by the width (down with
/// RFLAGS.DF), rCX counted down for REP.
fn string_io<S: GuestState + ?Sized, D: Devices + ?Sized>(
    insn: &Insn,
    state: &mut S,
    devices: &mut D,
    max_reps: u64,
) -> Result<Outcome, EmulateError> {
    let aw = insn.addr_width;
    let count_reg = string_register(Gpr::RCX, aw);
    let (index_reg, segment) = match insn.op {
        Op::Outs { segment } => (string_register(Gpr::RSI, aw), segment),
        _ => (string_register(Gpr::RDI, aw), Segment::Es),
    };
    let port = state.gpr(Gpr::RDX) as u16;
    let step = insn.width.bytes() as u64;
    let down = state.rflags() & RFLAGS_DF != 0;
    let mut budget = max_reps.max(1);
    loop {
        if insn.rep {
            if read_register(state, count_reg) == 0 {
                return Ok(Outcome::Done);
            }
            if budget == 0 {
                return Ok(Outcome::Partial);
            }
            budget -= 1;
        }
        let index = read_register(state, index_reg);
        let linear = string_linear(state, segment, index);
        string_element(insn, state, devices, port, linear)?;
        let next = if down {
            index.wrapping_sub(step)
        } else {
            index.wrapping_add(step)
        };
        write_register(state, index_reg, next);
        if !insn.rep {
            return Ok(Outcome::Done);
        }
        let count = read_register(state, count_reg).wrapping_sub(1);
        write_register(state, count_reg, count);
    }
}

fn string_linear<S: GuestState + ?Sized>(state: &S, segment: Segment, index: u64) -> u64 {
    let linear = state.segment_base(segment).wrapping_add(index);
    if state.ip_width() == Width::W64 {
        linear
    } else {
        linear & 0xffff_ffff
    }
}

/// One element of INS (port to memory) or OUTS (memory to port).
fn string_element<S: GuestState + ?Sized, D: Devices + ?Sized>(
    insn: &Insn,
    state: &mut S,
    devices: &mut D,
    port: u16,
    linear: u64,
) -> Result<(), EmulateError> {
    let n = insn.width.bytes();
    if matches!(insn.op, Op::Ins) {
        let v = devices
            .io_read(port, insn.width)
            .map_err(EmulateError::Device)?;
        let bytes = v.to_le_bytes();
        state
            .write_memory(linear, &bytes[..n])
            .map_err(EmulateError::Memory)
    } else {
        let mut bytes = [0u8; 4];
        state
            .read_memory(linear, &mut bytes[..n])
            .map_err(EmulateError::Memory)?;
        devices
            .io_write(port, insn.width, u32::from_le_bytes(bytes))
            .map_err(EmulateError::Device)
    }
}
