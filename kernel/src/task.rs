//! Running code on another stack: the per-CPU stack after boot, task stacks,
//! and fault-path self-tests on the IST stacks. The switch keeps a frame
//! pointer chain with CFI, so backtraces continue from the new stack into the
//! code that switched.

use crate::cpu::percpu::this_cpu;
use crate::stacks::{self, StackAllocError};
use core::arch::global_asm;
use core::sync::atomic::{AtomicU32, Ordering};
use svsm_guards::{Owner, StackKind};

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
pub fn call_on_stack(stack_top: u64, f: extern "C" fn(u64), arg: u64) {
    // SAFETY: `stack_top` is the 16-byte aligned top of a mapped stack that
    // nothing else uses while `f` runs; the trampoline restores rsp/rbp.
    unsafe { svsm_call_on_stack(arg, f, stack_top) };
}

static NEXT_TASK_ID: AtomicU32 = AtomicU32::new(1);

struct TaskStart {
    body: fn(),
}

/// The first frame of every task (stackcheck's task entry point).
#[unsafe(no_mangle)]
extern "C" fn svsm_task_entry(arg: u64) {
    // SAFETY: `arg` points at the TaskStart of `run_task`, alive for the call.
    let start = unsafe { &*(arg as *const TaskStart) };
    (start.body)();
}

/// Runs `body` to completion as a new task on its own guarded task stack.
pub fn run_task(name: &'static str, body: fn()) -> Result<u32, StackAllocError> {
    let id = NEXT_TASK_ID.fetch_add(1, Ordering::Relaxed);
    let cpu = this_cpu();
    let stack = stacks::alloc(StackKind::Task, Owner::task(cpu.cpu_id, id), name)?;
    let start = TaskStart { body };
    let prev = cpu.current_task.swap(id, Ordering::Relaxed);
    call_on_stack(
        stack.range.top,
        svsm_task_entry,
        &start as *const TaskStart as u64,
    );
    cpu.current_task.store(prev, Ordering::Relaxed);
    // The task is gone: report how much of its stack it used, then free it.
    if let Some(used) = stacks::high_water(&stack) {
        crate::println!("{}", stack.hwm_record(used));
    }
    stacks::free(&stack);
    Ok(id)
}
