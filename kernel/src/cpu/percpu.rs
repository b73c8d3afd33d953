//! Per-CPU areas, one per possible CPU, reachable through GS base: the
//! CPU's ids and state, its descriptor tables, current task and
//! fault-nesting state, the NMI request word other CPUs signal through
//! (TLB shootdown, stop), and the work mailbox an idle AP waits on.

use crate::arch::x86::{read_gs_base, wrmsr};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use svsm_defs::msr;

/// CPUs the kernel manages (per-CPU areas are static).
pub const MAX_CPUS: usize = 8;
/// Value of `current_task` when no task runs (the boot context).
pub const NO_TASK: u32 = u32::MAX;

/// A CPU's life cycle (`PerCpu::state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum CpuState {
    /// Not started (or absent).
    Offline = 0,
    /// Start-up requested; the AP is in the trampoline or early entry.
    Starting = 1,
    /// Its IDT is loaded: it answers NMI requests (TLB shootdowns reach it).
    Online = 2,
    /// On the kernel's page tables, waiting for work.
    Idle = 3,
    /// Running a work item (or, for CPU 0, the boot and init task).
    Busy = 4,
    /// Stopped for good by a fatal error elsewhere (its state was printed).
    Stopped = 5,
}

impl CpuState {
    fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::Starting,
            2 => Self::Online,
            3 => Self::Idle,
            4 => Self::Busy,
            5 => Self::Stopped,
            _ => Self::Offline,
        }
    }

    /// Whether the CPU takes NMI requests (shootdowns, stop).
    pub fn answers_nmi(self) -> bool {
        matches!(self, Self::Online | Self::Idle | Self::Busy)
    }
}

#[repr(C)]
pub struct PerCpu {
    /// Self pointer: `gs:[0]`.
    self_ptr: AtomicU64,
    cpu_id: AtomicU32,
    pub apic_id: AtomicU32,
    state: AtomicU32,
    pub current_task: AtomicU32,
    /// Nesting depth of the page-fault handler (a fault while handling a fault
    /// is reported instead of recursing).
    pub pf_depth: AtomicU32,
    /// NMIs taken on this CPU.
    pub nmi_count: AtomicU64,
    /// This CPU's GDT and TSS (`gdt::Tables`), once loaded.
    pub(super) tables: AtomicU64,
    /// Requests (`smp::REQ_*`) set by another CPU before it sends this one
    /// an NMI; the NMI handler takes them.
    pub requests: AtomicU32,
    /// The last TLB shootdown generation this CPU completed.
    pub tlb_ack: AtomicU64,
    /// The work mailbox (`smp::post_work`): function, argument and the
    /// sequence numbers of the items posted, taken and finished.
    pub(super) work_fn: AtomicU64,
    pub(super) work_arg: AtomicU64,
    pub(super) work_posted: AtomicU64,
    pub(super) work_taken: AtomicU64,
    pub(super) work_done: AtomicU64,
    /// TSC when the boot CPU sent INIT, and when the AP reached the kernel.
    pub start_tsc: AtomicU64,
    pub entry_tsc: AtomicU64,
    /// The hosted guest's per-CPU state, owned by the guest run loop: the
    /// physical addresses of this CPU's VMCB and of its host-save area
    /// (`VM_HSAVE_PA`), 0 while none. One guest vCPU runs on one SVSM CPU;
    /// the run loop enters the guest holding no lock.
    pub vmcb_pa: AtomicU64,
    pub host_save_pa: AtomicU64,
}

impl PerCpu {
    const fn new() -> Self {
        Self {
            self_ptr: AtomicU64::new(0),
            cpu_id: AtomicU32::new(0),
            apic_id: AtomicU32::new(0),
            state: AtomicU32::new(CpuState::Offline as u32),
            current_task: AtomicU32::new(NO_TASK),
            pf_depth: AtomicU32::new(0),
            nmi_count: AtomicU64::new(0),
            tables: AtomicU64::new(0),
            requests: AtomicU32::new(0),
            tlb_ack: AtomicU64::new(0),
            work_fn: AtomicU64::new(0),
            work_arg: AtomicU64::new(0),
            work_posted: AtomicU64::new(0),
            work_taken: AtomicU64::new(0),
            work_done: AtomicU64::new(0),
            start_tsc: AtomicU64::new(0),
            entry_tsc: AtomicU64::new(0),
            vmcb_pa: AtomicU64::new(0),
            host_save_pa: AtomicU64::new(0),
        }
    }

    pub fn cpu_id(&self) -> u32 {
        self.cpu_id.load(Ordering::Relaxed)
    }

    pub fn state(&self) -> CpuState {
        CpuState::from_u32(self.state.load(Ordering::Acquire))
    }

    pub fn set_state(&self, s: CpuState) {
        self.state.store(s as u32, Ordering::Release);
    }
}

static PERCPU: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// The area of CPU `cpu` (panics past `MAX_CPUS`).
pub fn cpu(cpu: usize) -> &'static PerCpu {
    &PERCPU[cpu]
}

/// Every per-CPU area, started or not.
pub fn all() -> &'static [PerCpu] {
    &PERCPU
}

/// Makes `PERCPU[cpu]` this CPU's area (GS base).
pub fn init(cpu: usize) {
    let pc = &PERCPU[cpu];
    pc.cpu_id.store(cpu as u32, Ordering::Relaxed);
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
