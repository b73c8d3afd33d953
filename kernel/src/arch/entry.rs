//! Exception entry stubs (with hand-written CFI so the unwinder can walk
//! from a handler back into the interrupted code): they save the registers
//! into an `ExceptionFrame`, call `svsm_exception_dispatch` (`fault.rs`,
//! reached by symbol: control flows up here, imports do not) and return
//! with IRETQ.

use core::arch::global_asm;
use svsm_kernel::vectors::NUM_VECTORS;

/// Register state saved by `svsm_exc_common`, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    // Pushed by the CPU:
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

// Each stub's CFI describes the CPU-pushed frame as a signal frame: the CFA is
// the address just above it, the interrupted RIP is at CFA-40 and the
// interrupted RSP at CFA-16. Vectors without a CPU error code push a zero so
// every frame has the same shape.
global_asm!(
    r#"
.macro SVSM_EXC_STUB vec, has_err
    .section .text.svsm_exc_\vec, "ax"
    .global svsm_exc_\vec
    .type svsm_exc_\vec, @function
svsm_exc_\vec:
    .cfi_startproc simple
    .cfi_signal_frame
    .if \has_err
    .cfi_def_cfa rsp, 48
    .else
    .cfi_def_cfa rsp, 40
    .endif
    .cfi_offset rip, -40
    .cfi_offset rsp, -16
    .if \has_err == 0
    push 0
    .cfi_adjust_cfa_offset 8
    .endif
    push \vec
    .cfi_adjust_cfa_offset 8
    jmp svsm_exc_common
    .cfi_endproc
    .size svsm_exc_\vec, . - svsm_exc_\vec
.endm

SVSM_EXC_STUB 0, 0
SVSM_EXC_STUB 1, 0
SVSM_EXC_STUB 2, 0
SVSM_EXC_STUB 3, 0
SVSM_EXC_STUB 4, 0
SVSM_EXC_STUB 5, 0
SVSM_EXC_STUB 6, 0
SVSM_EXC_STUB 7, 0
SVSM_EXC_STUB 8, 1
SVSM_EXC_STUB 9, 0
SVSM_EXC_STUB 10, 1
SVSM_EXC_STUB 11, 1
SVSM_EXC_STUB 12, 1
SVSM_EXC_STUB 13, 1
SVSM_EXC_STUB 14, 1
SVSM_EXC_STUB 15, 0
SVSM_EXC_STUB 16, 0
SVSM_EXC_STUB 17, 1
SVSM_EXC_STUB 18, 0
SVSM_EXC_STUB 19, 0
SVSM_EXC_STUB 20, 0
SVSM_EXC_STUB 21, 1
SVSM_EXC_STUB 22, 0
SVSM_EXC_STUB 23, 0
SVSM_EXC_STUB 24, 0
SVSM_EXC_STUB 25, 0
SVSM_EXC_STUB 26, 0
SVSM_EXC_STUB 27, 0
SVSM_EXC_STUB 28, 0
SVSM_EXC_STUB 29, 1
SVSM_EXC_STUB 30, 1
SVSM_EXC_STUB 31, 0

    .section .text.svsm_exc_common, "ax"
    .global svsm_exc_common
    .type svsm_exc_common, @function
svsm_exc_common:
    .cfi_startproc simple
    .cfi_signal_frame
    .cfi_def_cfa rsp, 56
    .cfi_offset rip, -40
    .cfi_offset rsp, -16
    push rax
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rax, 0
    push rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    push rcx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rcx, 0
    push rdx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rdx, 0
    push rsi
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rsi, 0
    push rdi
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rdi, 0
    push rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    push r8
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r8, 0
    push r9
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r9, 0
    push r10
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r10, 0
    push r11
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r11, 0
    push r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r12, 0
    push r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r13, 0
    push r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r14, 0
    push r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r15, 0
    mov rdi, rsp
    cld
    call svsm_exception_dispatch
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq
    .cfi_endproc
    .size svsm_exc_common, . - svsm_exc_common

    .section .rodata.svsm_exc_table, "a"
    .balign 8
    .global svsm_exc_table
svsm_exc_table:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad svsm_exc_\v
    .endr
"#
);

unsafe extern "C" {
    static svsm_exc_table: [u64; NUM_VECTORS];
}

/// Address of the entry stub of `vector` (`vector < NUM_VECTORS`).
pub fn stub_address(vector: usize) -> u64 {
    // SAFETY: the table is immutable data emitted above, with NUM_VECTORS entries.
    unsafe { svsm_exc_table[vector] }
}
