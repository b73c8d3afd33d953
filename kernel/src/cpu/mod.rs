//! CPU state the kernel owns: descriptor tables, the per-CPU areas, the
//! cross-CPU requests (NMIs, work mailbox) and TLB shootdown. The
//! instructions that load and send them are in `arch`.

pub mod gdt;
pub mod idt;
pub mod percpu;
pub mod smp;
pub mod tlb;
