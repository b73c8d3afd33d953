//! CPU state the kernel owns: descriptor tables and the per-CPU area. The
//! instructions that load them are in `arch`.

pub mod gdt;
pub mod idt;
pub mod percpu;
