//! The hosted guest's emulated x2APIC and the SVSM APIC protocol (3).
//!
//! Under alternate injection the hypervisor cannot inject interrupts into
//! the guest directly: it posts them to the SVSM, which holds the guest's
//! APIC state and injects only what the guest allowed. This crate is that
//! state as pure logic (no_std, no unsafe, no allocation, no clock): the
//! caller supplies the time, injects what [`LocalApic::pending_interrupt`]
//! names (EVENTINJ on the native host, the VMSA on SNP), routes the IPIs an
//! ICR write returns, and mirrors the Calling Area's `no_eoi_required` byte.
//!
//! Emulated registers (x2APIC MSR numbers): ID, VERSION, TPR, PPR, EOI,
//! LDR, SVR (spurious vector, software enable), ISR/TMR/IRR 0..7, ESR, ICR
//! (fixed edge and NMI; physical, logical, shorthands), SELF_IPI, the timer
//! (LVT, initial and current count, divide; one-shot and periodic), and the
//! other LVTs (stored, never signalled). Vectors 0..=30 are never held,
//! allowed or delivered.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod apic;
pub mod protocol;
mod registry;
pub mod regs;
mod timer;
mod vectors;

pub use apic::{Ipi, IpiDest, LevelEoi, LocalApic, RegisterError};
pub use protocol::{CallError, CallOutput, Emulation, GuestApic, handle_call};
pub use registry::ApicProtocol;
pub use vectors::{FIRST_INJECTABLE, VectorSet};
