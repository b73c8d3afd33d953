//! Model-specific register numbers (AMD APM vol. 2 appendix A, GHCB
//! specification 56421 section 2.3.1).

/// Extended feature enables (`cr::Efer`).
pub const EFER: u32 = 0xc000_0080;
pub const STAR: u32 = 0xc000_0081;
pub const LSTAR: u32 = 0xc000_0082;
pub const CSTAR: u32 = 0xc000_0083;
pub const SFMASK: u32 = 0xc000_0084;
pub const FS_BASE: u32 = 0xc000_0100;
/// GS base: the kernel's per-CPU area pointer.
pub const GS_BASE: u32 = 0xc000_0101;
pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
pub const TSC_AUX: u32 = 0xc000_0103;
/// Physical address of the host save area used by VMRUN.
pub const VM_HSAVE_PA: u32 = 0xc001_0117;
/// SEV status: which SEV features are active for this guest (read only).
pub const SEV_STATUS: u32 = 0xc001_0131;
/// GHCB MSR: the GHCB page's GPA, or an MSR-protocol message (`ghcb::msr_protocol`).
pub const GHCB: u32 = 0xc001_0130;
pub const APIC_BASE: u32 = 0x0000_001b;
pub const PAT: u32 = 0x0000_0277;
/// x2APIC register block starts here (x2APIC MSR = 0x800 + register offset / 16).
pub const X2APIC_BASE: u32 = 0x0000_0800;
