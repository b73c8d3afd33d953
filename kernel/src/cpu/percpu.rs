//! Per-CPU area, reachable through GS base: the CPU's id, its current task
//! and its fault-nesting state. (The boot CPU's GDT and TSS are statics of
//! `cpu::gdt`; everything else is shared.)

use crate::arch::x86::{read_gs_base, wrmsr};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use svsm_defs::msr;

pub const MAX_CPUS: usize = 1;
/// Value of `current_task` when no task runs (the boot context).
pub const NO_TASK: u32 = u32::MAX;

#[repr(C)]
pub struct PerCpu {
    /// Self pointer: `gs:[0]`.
    self_ptr: AtomicU64,
    pub cpu_id: u32,
    pub current_task: AtomicU32,
    /// Nesting depth of the page-fault handler (a fault while handling a fault
    /// is reported instead of recursing).
    pub pf_depth: AtomicU32,
    /// NMIs taken on this CPU.
    pub nmi_count: AtomicU64,
}

impl PerCpu {
    const fn new(cpu_id: u32) -> Self {
        Self {
            self_ptr: AtomicU64::new(0),
            cpu_id,
            current_task: AtomicU32::new(NO_TASK),
            pf_depth: AtomicU32::new(0),
            nmi_count: AtomicU64::new(0),
        }
    }
}

static PERCPU: [PerCpu; MAX_CPUS] = [PerCpu::new(0)];

/// Makes `PERCPU[cpu]` this CPU's area (GS base).
pub fn init(cpu: usize) {
    let pc = &PERCPU[cpu];
    pc.self_ptr
        .store(pc as *const PerCpu as u64, Ordering::Relaxed);
    // SAFETY: GS_BASE exists on every x86-64 CPU; it now names this CPU's
    // static per-CPU area, which is all `this_cpu` expects of it.
    unsafe { wrmsr(msr::GS_BASE, pc as *const PerCpu as u64) };
}

/// This CPU's area. Before `init` ran, CPU 0's.
pub fn this_cpu() -> &'static PerCpu {
    let gs = read_gs_base();
    PERCPU
        .iter()
        .find(|p| core::ptr::from_ref::<PerCpu>(p) as u64 == gs)
        .unwrap_or(&PERCPU[0])
}
