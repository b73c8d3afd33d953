//! AMD-V (SVM): VMRUN with the guest's general-purpose registers, for the
//! native platform's hosted guest.

use core::arch::asm;
use core::mem::offset_of;

/// The guest general-purpose registers VMRUN does not switch (it switches
/// RAX and RSP through the VMCB). The run loop loads them before VMRUN and
/// stores them after #VMEXIT.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuestGprs {
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

/// VMRUN: runs the guest described by the VMCB at physical address
/// `vmcb_pa` until its next intercepted exit, with the registers of `gprs`,
/// which receive the guest's values at the exit.
///
/// GIF is cleared (CLGI) while the guest's registers are loaded and saved:
/// VMRUN sets it for the guest, #VMEXIT clears it, and STGI sets it again
/// once the host's state is back, so an NMI that arrived meanwhile (an exit
/// of its own: the VMCB intercepts NMI) is taken by the host right after.
/// Maskable interrupts stay disabled in the SVSM (RFLAGS.IF = 0; the VMCB
/// sets V_INTR_MASKING).
///
/// # Safety
/// EFER.SVME is set, VM_HSAVE_PA points at this CPU's host save area, and
/// `vmcb_pa` is the page-aligned physical address of a VMCB whose state and
/// nested page tables give the guest no access to SVSM memory.
pub unsafe fn vmrun(vmcb_pa: u64, gprs: &mut GuestGprs) {
    let p = gprs as *mut GuestGprs;
    // SAFETY: the caller's obligations. VMRUN saves host state to the host
    // save area and restores it on #VMEXIT, except the general-purpose
    // registers other than RAX and RSP: RBX and RBP are pushed around it
    // (LLVM reserves them), the pointer to `gprs` is kept on the stack
    // while the guest runs, and every other register is declared
    // clobbered. `gprs` is exclusively borrowed for the call.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "push rdi",
            "clgi",
            "mov rbx, [rdi + {rbx}]",
            "mov rcx, [rdi + {rcx}]",
            "mov rdx, [rdi + {rdx}]",
            "mov rsi, [rdi + {rsi}]",
            "mov rbp, [rdi + {rbp}]",
            "mov r8, [rdi + {r8}]",
            "mov r9, [rdi + {r9}]",
            "mov r10, [rdi + {r10}]",
            "mov r11, [rdi + {r11}]",
            "mov r12, [rdi + {r12}]",
            "mov r13, [rdi + {r13}]",
            "mov r14, [rdi + {r14}]",
            "mov r15, [rdi + {r15}]",
            "mov rdi, [rdi + {rdi}]",
            "vmrun rax",
            // Guest RDI to the stack, then the pointer back into RDI.
            "push rdi",
            "mov rdi, [rsp + 8]",
            "mov [rdi + {rbx}], rbx",
            "mov [rdi + {rcx}], rcx",
            "mov [rdi + {rdx}], rdx",
            "mov [rdi + {rsi}], rsi",
            "mov [rdi + {rbp}], rbp",
            "mov [rdi + {r8}], r8",
            "mov [rdi + {r9}], r9",
            "mov [rdi + {r10}], r10",
            "mov [rdi + {r11}], r11",
            "mov [rdi + {r12}], r12",
            "mov [rdi + {r13}], r13",
            "mov [rdi + {r14}], r14",
            "mov [rdi + {r15}], r15",
            "pop rax",
            "mov [rdi + {rdi}], rax",
            "pop rdi",
            "pop rbp",
            "pop rbx",
            "stgi",
            rbx = const offset_of!(GuestGprs, rbx),
            rcx = const offset_of!(GuestGprs, rcx),
            rdx = const offset_of!(GuestGprs, rdx),
            rsi = const offset_of!(GuestGprs, rsi),
            rdi = const offset_of!(GuestGprs, rdi),
            rbp = const offset_of!(GuestGprs, rbp),
            r8 = const offset_of!(GuestGprs, r8),
            r9 = const offset_of!(GuestGprs, r9),
            r10 = const offset_of!(GuestGprs, r10),
            r11 = const offset_of!(GuestGprs, r11),
            r12 = const offset_of!(GuestGprs, r12),
            r13 = const offset_of!(GuestGprs, r13),
            r14 = const offset_of!(GuestGprs, r14),
            r15 = const offset_of!(GuestGprs, r15),
            inout("rax") vmcb_pa => _,
            inout("rdi") p => _,
            out("rcx") _, out("rdx") _, out("rsi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
        )
    };
}
