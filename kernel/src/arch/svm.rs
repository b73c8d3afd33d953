//! AMD-V (SVM): VMRUN, for the native platform's hosted guest.
#![allow(dead_code)] // the hosted-guest platform code is its caller

use core::arch::asm;

/// VMRUN: runs the guest described by the VMCB at physical address
/// `vmcb_pa` until its next intercepted exit. The guest's RAX lives in the
/// VMCB; the other general-purpose registers are the caller's to save and
/// restore around this call.
///
/// # Safety
/// EFER.SVME is set, VM_HSAVE_PA points at a host save area, and `vmcb_pa`
/// is the page-aligned physical address of a VMCB whose state and nested
/// page tables give the guest no access to SVSM memory.
pub unsafe fn vmrun(vmcb_pa: u64) {
    // SAFETY: the caller's obligations. VMRUN saves host state to the host
    // save area and restores it on #VMEXIT, except the general-purpose
    // registers other than RAX and RSP: RBX and RBP are saved around it,
    // the others are declared clobbered.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "vmrun rax",
            "pop rbp",
            "pop rbx",
            inout("rax") vmcb_pa => _,
            out("rcx") _, out("rdx") _, out("rsi") _, out("rdi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
        )
    };
}
