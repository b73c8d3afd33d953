//! Guarded stacks: virtual layout, registry, fault classification, the
//! overflow report and high-water marks.
//!
//! Every kernel stack lives in the stack area of the kernel's virtual
//! address space (PML4 slot 510), in a slot of [`SLOT_SIZE`] bytes laid out
//! as `[lower guard][stack][upper guard]`. Guards are never mapped, so any
//! access beyond a stack faults and [`StackRegistry::classify`] names the
//! stack and how far past its limit the access went. Stacks outside the
//! area (stage2's identity-mapped stack) are registered at fixed addresses.
//!
//! Everything here is pure: this crate computes addresses and formats text;
//! the kernel maps pages and prints. See `docs/guards.md`.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(test)]
extern crate std;

mod hwm;
mod kind;
mod layout;
mod registry;
mod report;

pub use hwm::{HwmParseError, HwmRecord, PAINT_PATTERN, high_water, paint, paint_words_high_water};
pub use kind::{IstKind, Owner, StackKind, valid_name};
pub use layout::{
    BOOT_STACK_BOTTOM, BOOT_STACK_RANGE, BOOT_STACK_SIZE, BOOT_STACK_TOP, GUARD_SIZE,
    IST_DF_STACK_SIZE, IST_MC_STACK_SIZE, IST_NMI_STACK_SIZE, IST_PF_STACK_SIZE, IST_VC_STACK_SIZE,
    MAX_STACK_SIZE, PAGE_SIZE, PERCPU_STACK_SIZE, SHADOW_STACK_SIZE, SLOT_COUNT, SLOT_SIZE,
    STACK_AREA_BASE, STACK_AREA_END, STACK_AREA_SIZE, StackRange, TASK_STACK_SIZE, slot_layout,
    slot_of,
};
pub use registry::{Classification, MAX_STACKS, StackError, StackId, StackInfo, StackRegistry};
pub use report::{Direction, FaultContext, GuardReport, ParsedReport, ReportParseError};
