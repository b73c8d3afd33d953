//! CPU state: control registers, descriptor tables, exceptions, per-CPU data.

pub mod exceptions;
pub mod gdt;
pub mod idt;
pub mod percpu;

use core::arch::asm;

pub fn halt_forever() -> ! {
    loop {
        // SAFETY: stops this CPU; interrupts stay disabled in the SVSM.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

pub fn read_cr2() -> u64 {
    let v;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

pub fn read_cr3() -> u64 {
    let v;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Reloads CR3, flushing all non-global TLB entries.
pub fn flush_tlb_all() {
    // SAFETY: writing back the current CR3 changes no mapping.
    unsafe { asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack, preserves_flags)) };
}

pub fn invlpg(va: u64) {
    // SAFETY: invalidating a TLB entry is always safe.
    unsafe { asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) };
}

pub fn rdtsc() -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: rdtsc only reads the time-stamp counter.
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    ((hi as u64) << 32) | lo as u64
}

pub const MSR_GS_BASE: u32 = 0xc000_0101;

pub fn wrmsr(msr: u32, val: u64) {
    // SAFETY: callers only write architectural MSRs whose effects they own.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") val as u32, in("edx") (val >> 32) as u32,
             options(nostack, preserves_flags))
    };
}

pub fn rdmsr(msr: u32) -> u64 {
    let lo: u32;
    let hi: u32;
    // SAFETY: reading an architectural MSR.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    ((hi as u64) << 32) | lo as u64
}

pub fn read_rsp() -> u64 {
    let v;
    // SAFETY: reads the stack pointer.
    unsafe { asm!("mov {}, rsp", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// The operand of `lgdt`/`lidt`.
#[repr(C, packed)]
pub struct DescriptorTablePointer {
    pub limit: u16,
    pub base: u64,
}

impl DescriptorTablePointer {
    /// Describes the table `t` (base and limit from its address and size).
    pub fn of<T>(t: &T) -> Self {
        Self {
            limit: (core::mem::size_of::<T>() - 1) as u16,
            base: t as *const T as u64,
        }
    }
}
