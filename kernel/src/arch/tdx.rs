//! Intel TDX: TDCALL, for the TDX platform.
#![allow(dead_code)] // the TDX platform is its caller

use core::arch::asm;

/// The registers of a TDCALL: RAX is the leaf on entry and the status on
/// return; RCX, RDX and R8-R11 carry the leaf's operands and results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TdcallRegs {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
}

/// TDCALL with `regs`; returns the registers as the TDX module left them.
///
/// # Safety
/// The leaf in `regs.rax` and its operands are valid, and the caller owns
/// every effect of the leaf (accepting memory, exposing a page to the host).
pub unsafe fn tdcall(regs: TdcallRegs) -> TdcallRegs {
    let mut r = regs;
    // SAFETY: the caller's obligations; TDCALL (66 0F 01 CC) reads and
    // writes exactly these registers.
    unsafe {
        asm!(
            ".byte 0x66, 0x0f, 0x01, 0xcc",
            inout("rax") r.rax,
            inout("rcx") r.rcx,
            inout("rdx") r.rdx,
            inout("r8") r.r8,
            inout("r9") r.r9,
            inout("r10") r.r10,
            inout("r11") r.r11,
            options(nostack)
        )
    };
    r
}
