//! Every privileged instruction of the kernel, and nothing else.
//!
//! The rest of the kernel reaches the hardware only through this module:
//! control registers, MSRs, port I/O, descriptor-table loads, TLB
//! maintenance, CPUID, HLT, the exception entry stubs and the stack-switch
//! trampoline, and the SEV-SNP / TDX / SVM instructions (PVALIDATE,
//! RMPADJUST, VMGEXIT, TDCALL, VMRUN) the platforms build on.
//!
//! A function whose use could break memory safety or the kernel's
//! invariants is an `unsafe fn` and states its caller's obligations under
//! `# Safety`; a function that is harmless whatever its arguments (reading
//! CR2, INVLPG, RDTSC) is safe. Hardware structures (descriptors, VMSA,
//! GHCB...) are defined in `svsm-defs`, not here.

pub mod apic;
pub mod desc;
pub mod entry;
pub mod io;
pub mod snp;
pub mod stack;
pub mod startup;
pub mod svm;
pub mod tdx;
pub mod x86;
