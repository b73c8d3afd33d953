//! SEV-SNP instructions: PVALIDATE, RMPADJUST and VMGEXIT (AMD APM vol. 3).
//! They exist for the SNP platform; the native platform never executes them
//! (each raises #UD outside an SNP guest).

use core::arch::asm;

pub use svsm_snp::{PvalidateResult, RmpPageSize};

/// PVALIDATE: validates (`valid`) or rescinds the page at virtual address `va`.
///
/// # Safety
/// `va` maps the guest-physical page the caller means (with the C-bit set),
/// and the caller owns that page: validating memory another owner uses, or
/// rescinding memory still in use, breaks both owners.
pub unsafe fn pvalidate(va: u64, size: RmpPageSize, valid: bool) -> PvalidateResult {
    let rax: u64;
    let cf: u8;
    // SAFETY: the caller's obligations; PVALIDATE (F2 0F 01 FF) reads RAX,
    // ECX, EDX and writes EAX and the flags.
    unsafe {
        asm!(
            ".byte 0xf2, 0x0f, 0x01, 0xff",
            "setc {cf}",
            cf = out(reg_byte) cf,
            inout("rax") va => rax,
            in("ecx") size as u32,
            in("edx") valid as u32,
            options(nostack)
        )
    };
    PvalidateResult {
        code: rax as u32,
        unchanged: cf != 0,
    }
}

/// RMPADJUST: sets the permissions of a lower VMPL (`attrs`: target VMPL in
/// bits 7..0, permission mask in bits 15..8, VMSA in bit 16) for the page at
/// `va`. Returns the instruction's return code.
///
/// # Safety
/// `va` maps a validated page the caller owns; granting a lower VMPL access
/// (or making the page a VMSA) hands that page to the guest.
pub unsafe fn rmpadjust(va: u64, size: RmpPageSize, attrs: u64) -> u32 {
    let rax: u64;
    // SAFETY: the caller's obligations; RMPADJUST (F3 0F 01 FE) reads RAX,
    // RCX, RDX and writes EAX and the flags.
    unsafe {
        asm!(
            ".byte 0xf3, 0x0f, 0x01, 0xfe",
            inout("rax") va => rax,
            in("rcx") size as u64,
            in("rdx") attrs,
            options(nostack)
        )
    };
    rax as u32
}

/// VMGEXIT (`rep vmmcall`): hands control to the hypervisor, which reads the
/// request from the GHCB MSR or the registered GHCB page.
///
/// # Safety
/// The GHCB MSR holds a complete request (MSR protocol) or the GPA of a
/// registered, shared GHCB page that holds one; whatever the request does
/// (page state changes, termination) is the caller's to own.
pub unsafe fn vmgexit() {
    // SAFETY: the caller's obligations.
    unsafe { asm!("rep vmmcall", options(nostack)) };
}
