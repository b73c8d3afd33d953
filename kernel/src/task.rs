//! Tasks: a body run to completion on its own guarded task stack (through
//! the stack-switch trampoline in `arch::stack`).

use crate::arch::stack::call_on_stack;
use crate::cpu::percpu::this_cpu;
use crate::stacks::{self, StackAllocError};
use core::sync::atomic::{AtomicU32, Ordering};
use svsm_guards::{Owner, StackKind};

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
    let stack = stacks::alloc(StackKind::Task, Owner::task(cpu.cpu_id(), id), name)?;
    let start = TaskStart { body };
    let prev = cpu.current_task.swap(id, Ordering::Relaxed);
    // SAFETY: the task stack was just allocated and mapped for this task
    // alone; `start` outlives the call.
    unsafe {
        call_on_stack(
            stack.range.top,
            svsm_task_entry,
            &start as *const TaskStart as u64,
        )
    };
    cpu.current_task.store(prev, Ordering::Relaxed);
    // The task is gone: report how much of its stack it used, then free it.
    if let Some(used) = stacks::high_water(&stack) {
        crate::println!("{}", stack.hwm_record(used));
    }
    stacks::free(&stack);
    Ok(id)
}
