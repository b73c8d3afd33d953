//! Control registers, MSRs, TLB maintenance, CPUID, the TSC and HLT.

use core::arch::asm;
use svsm_defs::msr;

/// Stops this CPU for good (interrupts stay disabled in the SVSM).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: CLI and HLT touch no memory; the loop never returns.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// CR2: the linear address of the last page fault.
pub fn read_cr2() -> u64 {
    let v;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// CR0 (the AP trampoline starts other CPUs with this CPU's value).
pub fn read_cr0() -> u64 {
    let v;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// CR4 (see `read_cr0`).
pub fn read_cr4() -> u64 {
    let v;
    // SAFETY: reading CR4 has no side effects.
    unsafe { asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Loads CR3 (switches page tables; flushes non-global TLB entries).
///
/// # Safety
/// `root` is a PML4 that maps the running code, its stack and everything
/// the CPU reaches next (GDT, IDT, TSS, per-CPU area) as the current one does.
pub unsafe fn write_cr3(root: u64) {
    // SAFETY: the caller's obligations.
    unsafe { asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags)) };
}

/// Waits for the next interrupt or NMI (interrupts stay disabled in the
/// SVSM, so only an NMI, INIT or SMI wakes it).
pub fn halt_once() {
    // SAFETY: HLT touches no memory and returns once the CPU wakes.
    unsafe { asm!("hlt", options(nomem, nostack, preserves_flags)) };
}

/// CR3: the physical address of the active PML4 (plus its flag bits).
pub fn read_cr3() -> u64 {
    let v;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Reloads CR3 with its current value, flushing all non-global TLB entries.
pub fn flush_tlb_all() {
    // SAFETY: writing back the current CR3 changes no mapping; it only
    // drops cached translations.
    unsafe { asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack, preserves_flags)) };
}

/// Drops the TLB entry of the page containing `va`.
pub fn invlpg(va: u64) {
    // SAFETY: invalidating a TLB entry changes no mapping.
    unsafe { asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) };
}

#[cfg_attr(not(feature = "testcases"), allow(dead_code))] // test cases and benchmarks
pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    ((hi as u64) << 32) | lo as u64
}

/// The current stack pointer.
#[cfg_attr(not(feature = "testcases"), allow(dead_code))] // test cases
pub fn read_rsp() -> u64 {
    let v;
    // SAFETY: copies RSP into a register.
    unsafe { asm!("mov {}, rsp", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Writes `val` to `msr`.
///
/// # Safety
/// `msr` exists on this CPU and the caller owns every effect of the write
/// (e.g. GS_BASE must point at this CPU's per-CPU area before anything
/// reads it through GS).
pub unsafe fn wrmsr(msr: u32, val: u64) {
    // SAFETY: the caller's obligations above.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") val as u32, in("edx") (val >> 32) as u32,
             options(nostack, preserves_flags))
    };
}

/// Reads `msr`.
///
/// # Safety
/// `msr` exists on this CPU (otherwise RDMSR raises #GP) and reading it has
/// no side effect the caller does not own.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: the caller's obligations above.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi,
             options(nomem, nostack, preserves_flags))
    };
    ((hi as u64) << 32) | lo as u64
}

/// GS base: this CPU's per-CPU area.
pub fn read_gs_base() -> u64 {
    // SAFETY: GS_BASE exists on every x86-64 CPU; reading it has no effect.
    unsafe { rdmsr(msr::GS_BASE) }
}

/// The result of one CPUID query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// CPUID leaf `leaf`, subleaf `subleaf`. On SEV-SNP and TDX CPUID traps
/// (#VC / #VE): call it only after the platform's exception handler is live,
/// and prefer the platform's checked source (the SNP CPUID page).
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}
