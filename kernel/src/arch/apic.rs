//! The local APIC: this CPU's APIC ID and the IPIs that start and signal
//! other CPUs (INIT, start-up, NMI). x2APIC mode (MSRs) where the CPU has
//! it; otherwise the xAPIC registers (MMIO, reached through the direct map),
//! as on QEMU 7.2's TCG, which has no x2APIC. Every CPU uses the mode the
//! boot CPU chose.

use super::x86::{rdmsr, wrmsr};
use spin::Once;
use svsm_bootdefs::layout::phys_to_virt;
use svsm_defs::apic::{
    APIC_BASE_ADDR_MASK, APIC_BASE_ENABLE, APIC_BASE_EXTD, ICR_DELIVERY_PENDING, Ipi,
    X2APIC_ICR_MSR, X2APIC_ID_MSR, XAPIC_ICR_HIGH, XAPIC_ICR_LOW, XAPIC_ID,
};
use svsm_defs::msr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    X2apic,
    /// MMIO at this direct-map address.
    Xapic(u64),
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::X2apic => "x2APIC",
            Mode::Xapic(_) => "xAPIC",
        }
    }
}

static MODE: Once<Mode> = Once::new();

/// Enables this CPU's local APIC: in x2APIC mode if `x2apic` (the boot CPU
/// decides from CPUID; the others follow its choice). Returns the mode.
pub fn init(x2apic: bool) -> Mode {
    // SAFETY: IA32_APIC_BASE exists on every x86-64 CPU; setting the enable
    // bits (keeping the base and BSP bits) only turns the local APIC on.
    let base = unsafe { rdmsr(msr::APIC_BASE) };
    let mode = *MODE.call_once(|| {
        if x2apic {
            Mode::X2apic
        } else {
            Mode::Xapic(phys_to_virt(base & APIC_BASE_ADDR_MASK))
        }
    });
    let want = match mode {
        Mode::X2apic => base | APIC_BASE_ENABLE | APIC_BASE_EXTD,
        Mode::Xapic(_) => base | APIC_BASE_ENABLE,
    };
    if want != base {
        // SAFETY: as above; x2APIC mode is entered only where CPUID has it.
        unsafe { wrmsr(msr::APIC_BASE, want) };
    }
    mode
}

/// The mode's name, or "none" before `init`.
pub fn mode_name() -> &'static str {
    MODE.get().map_or("none", |m| m.name())
}

fn mode() -> Mode {
    *MODE.get().expect("apic::init runs before any IPI")
}

fn xapic_reg(base: u64, off: u64) -> *mut u32 {
    (base + off) as *mut u32
}

/// This CPU's APIC ID.
pub fn apic_id() -> u32 {
    match mode() {
        // SAFETY: the x2APIC ID MSR exists in x2APIC mode; reading it has no effect.
        Mode::X2apic => unsafe { rdmsr(X2APIC_ID_MSR) as u32 },
        // SAFETY: the xAPIC block is mapped (direct map) and the ID
        // register is readable without side effects.
        Mode::Xapic(b) => unsafe { xapic_reg(b, XAPIC_ID).read_volatile() >> 24 },
    }
}

/// Sends `ipi`. Returns false if the xAPIC cannot address its destination.
///
/// # Safety
/// The caller owns the IPI's effect on the destination CPU (INIT resets it;
/// a start-up IPI runs the page it names; an NMI enters its NMI handler).
pub unsafe fn send(ipi: Ipi) -> bool {
    match mode() {
        // SAFETY: the ICR MSR exists in x2APIC mode; the caller owns the effect.
        Mode::X2apic => unsafe { wrmsr(X2APIC_ICR_MSR, ipi.x2apic()) },
        Mode::Xapic(b) => {
            let Some(high) = ipi.xapic_high() else {
                return false;
            };
            let low = xapic_reg(b, XAPIC_ICR_LOW);
            // SAFETY: the xAPIC block is mapped; waiting for the previous
            // IPI to leave, then writing the destination and the command
            // (the low write sends) is the documented sequence.
            unsafe {
                let mut spins = 0u32;
                while low.read_volatile() & ICR_DELIVERY_PENDING != 0 && spins < 1_000_000 {
                    core::hint::spin_loop();
                    spins += 1;
                }
                xapic_reg(b, XAPIC_ICR_HIGH).write_volatile(high);
                low.write_volatile(ipi.low());
            }
        }
    }
    true
}
