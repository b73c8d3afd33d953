//! Decoding and emulation of the x86 instructions that trap to the SVSM:
//! port IO (IN, OUT, INS, OUTS with REP), MMIO moves (MOV to and from
//! memory, MOV immediate to memory, MOVZX, MOVSX), and the lengths of
//! CPUID, RDMSR, WRMSR, VMMCALL and VMGEXIT.
//!
//! Shared by every exit path that must understand the faulting instruction:
//! SNP's #VC, TDX's #VE and the native guest host's IOIO and nested-page
//! faults. Pure logic, no `unsafe`, no allocation: instruction bytes come
//! through a copy-only accessor ([`InsnFetch`]), registers and memory through
//! [`GuestState`], the device side through [`Devices`]. Every failure (a
//! fetch fault, an encoding outside the supported set, more than 15 bytes)
//! is an error value the caller turns into a fault for the guest; nothing
//! here panics on any input.
//!
//! ```text
//! let insn = decode(&mut fetch, rip, Mode::Long64)?;   // bytes -> Insn
//! let done = emulate(&insn, &mut state, &mut devices, max_reps)?;
//! ```
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

mod decode;
mod emulate;
mod fetch;
mod insn;

pub use decode::{DecodeError, decode};
pub use emulate::{DeviceError, Devices, EmulateError, GuestState, MemFault, Outcome, emulate};
pub use fetch::{FetchFault, InsnFetch, MAX_INSN_LEN, PAGE_SIZE, SliceFetch};
pub use insn::{
    Extend, Gpr, Insn, IoAccess, MemOperand, Mode, Op, Port, RegOperand, Segment, Src, Width,
};
