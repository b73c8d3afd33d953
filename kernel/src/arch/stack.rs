//! The stack-switch trampoline: runs a function on another stack and comes
//! back. It keeps a frame-pointer link with CFI, so backtraces continue from
//! the new stack into the code that switched.

use core::arch::global_asm;

global_asm!(
    ".section .text.svsm_call_on_stack, \"ax\"",
    ".global svsm_call_on_stack",
    ".type svsm_call_on_stack, @function",
    // rdi = argument, rsi = function, rdx = top of the new stack
    "svsm_call_on_stack:",
    ".cfi_startproc",
    "push rbp",
    ".cfi_adjust_cfa_offset 8",
    ".cfi_rel_offset rbp, 0",
    "mov rbp, rsp",
    ".cfi_def_cfa_register rbp",
    "mov rsp, rdx",
    "call rsi",
    "mov rsp, rbp",
    ".cfi_def_cfa_register rsp",
    "pop rbp",
    ".cfi_adjust_cfa_offset -8",
    "ret",
    ".cfi_endproc",
    ".size svsm_call_on_stack, . - svsm_call_on_stack",
);

unsafe extern "C" {
    fn svsm_call_on_stack(arg: u64, f: extern "C" fn(u64), stack_top: u64);
}

/// Calls `f(arg)` with `rsp` at `stack_top`, then returns on the current stack.
///
/// # Safety
/// `stack_top` is the 16-byte aligned top of a mapped stack that nothing
/// else uses while `f` runs, large enough for `f` (stackcheck bounds each
/// function called this way as an entry point of its own).
pub unsafe fn call_on_stack(stack_top: u64, f: extern "C" fn(u64), arg: u64) {
    // SAFETY: the caller's obligations; the trampoline restores rsp and rbp.
    unsafe { svsm_call_on_stack(arg, f, stack_top) };
}
