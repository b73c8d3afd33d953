//! Guarded stacks: virtual layout, registry and fault classification.
//!
//! Every stack in the SVSM lives in the stack area of the kernel's virtual
//! address space, between two unmapped guard regions of `GUARD_SIZE` bytes.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

/// Size of the unmapped guard region below and above every stack.
pub const GUARD_SIZE: u64 = 64 * 1024;

/// Base of the stack area: PML4 slot 510 (512 GiB of virtual space).
pub const STACK_AREA_BASE: u64 = 0xffff_ff00_0000_0000;
pub const STACK_AREA_SIZE: u64 = 512 << 30;

/// The kernel boot stack is the first stack of the area; igvm-build maps it
/// before the kernel runs, so its place is fixed.
pub const BOOT_STACK_SIZE: u64 = 64 * 1024;
pub const BOOT_STACK_BOTTOM: u64 = STACK_AREA_BASE + GUARD_SIZE;
pub const BOOT_STACK_TOP: u64 = BOOT_STACK_BOTTOM + BOOT_STACK_SIZE;
