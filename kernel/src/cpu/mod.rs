//! CPU state the kernel owns: descriptor tables, exception dispatch and the
//! per-CPU area. The instructions that load them are in `arch`.

pub mod exceptions;
pub mod gdt;
pub mod idt;
pub mod percpu;
