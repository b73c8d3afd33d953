//! The local APIC: the x2APIC register map (used by the SVSM to start and
//! signal other CPUs and by the guest's emulated APIC), the interrupt
//! command register (ICR) and the xAPIC registers the kernel uses (Intel
//! SDM vol. 3A sections 11.6 and 11.12; AMD APM vol. 2 section 16.5). One encoding serves both
//! access modes: x2APIC (MSRs, destination in bits 63:32) and xAPIC (MMIO,
//! destination in bits 31:24 of the high ICR register).

/// The x2APIC register numbers (MSR addresses; the APIC protocol's
/// READ_REGISTER and WRITE_REGISTER take them in RCX).
pub mod x2apic {
    pub const ID: u32 = 0x802;
    pub const VERSION: u32 = 0x803;
    pub const TPR: u32 = 0x808;
    pub const PPR: u32 = 0x80A;
    pub const EOI: u32 = 0x80B;
    pub const LDR: u32 = 0x80D;
    pub const SVR: u32 = 0x80F;
    pub const ISR0: u32 = 0x810;
    pub const ISR7: u32 = 0x817;
    pub const TMR0: u32 = 0x818;
    pub const TMR7: u32 = 0x81F;
    pub const IRR0: u32 = 0x820;
    pub const IRR7: u32 = 0x827;
    pub const ESR: u32 = 0x828;
    pub const LVT_CMCI: u32 = 0x82F;
    pub const ICR: u32 = 0x830;
    pub const LVT_TIMER: u32 = 0x832;
    pub const LVT_THERMAL: u32 = 0x833;
    pub const LVT_PMC: u32 = 0x834;
    pub const LVT_LINT0: u32 = 0x835;
    pub const LVT_LINT1: u32 = 0x836;
    pub const LVT_ERROR: u32 = 0x837;
    pub const TIMER_INITIAL_COUNT: u32 = 0x838;
    pub const TIMER_CURRENT_COUNT: u32 = 0x839;
    pub const TIMER_DIVIDE: u32 = 0x83E;
    pub const SELF_IPI: u32 = 0x83F;
}

/// ICR fields (x2APIC: one 64-bit register, destination in 63:32).
pub mod icr {
    pub const VECTOR: u64 = 0xFF;
    pub const DELIVERY_MODE_SHIFT: u32 = 8;
    pub const DELIVERY_MODE_MASK: u64 = 7 << DELIVERY_MODE_SHIFT;
    pub const MODE_FIXED: u64 = 0;
    pub const MODE_NMI: u64 = 4;
    pub const DEST_LOGICAL: u64 = 1 << 11;
    pub const LEVEL_ASSERT: u64 = 1 << 14;
    pub const TRIGGER_LEVEL: u64 = 1 << 15;
    pub const SHORTHAND_SHIFT: u32 = 18;
    pub const SHORTHAND_MASK: u64 = 3 << SHORTHAND_SHIFT;
    pub const SHORTHAND_NONE: u64 = 0;
    pub const SHORTHAND_SELF: u64 = 1;
    pub const SHORTHAND_ALL_INCLUDING_SELF: u64 = 2;
    pub const SHORTHAND_ALL_EXCLUDING_SELF: u64 = 3;
    /// Bits that must be zero in x2APIC mode (13, 16, 17, 20..31).
    pub const RESERVED: u64 = 0xFFF3_2000;
    pub const BROADCAST: u32 = 0xFFFF_FFFF;
}

/// `IA32_APIC_BASE` (`msr::APIC_BASE`) bits.
pub const APIC_BASE_BSP: u64 = 1 << 8;
/// x2APIC mode enable (needs `APIC_BASE_ENABLE` too).
pub const APIC_BASE_EXTD: u64 = 1 << 10;
pub const APIC_BASE_ENABLE: u64 = 1 << 11;
/// Bits 51:12: the xAPIC MMIO base.
pub const APIC_BASE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// The xAPIC MMIO block's reset base address.
pub const XAPIC_DEFAULT_BASE: u64 = 0xfee0_0000;
/// xAPIC register offsets in the MMIO block.
pub const XAPIC_ID: u64 = 0x20;
pub const XAPIC_ICR_LOW: u64 = 0x300;
pub const XAPIC_ICR_HIGH: u64 = 0x310;
/// x2APIC registers (MSR = 0x800 + xAPIC offset / 16).
pub const X2APIC_ID_MSR: u32 = x2apic::ID;
pub const X2APIC_ICR_MSR: u32 = x2apic::ICR;

/// CPUID leaf 1 ECX bit 21: the CPU supports x2APIC mode.
pub const CPUID1_ECX_X2APIC: u32 = 1 << 21;

/// ICR delivery modes (bits 10:8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Delivery {
    Fixed = 0,
    Nmi = 4,
    Init = 5,
    StartUp = 6,
}

/// ICR bit 12 (xAPIC only): the previous IPI is still being sent.
pub const ICR_DELIVERY_PENDING: u32 = 1 << 12;

/// A physical-destination IPI to one APIC ID, no shorthand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipi {
    pub dest: u32,
    pub delivery: Delivery,
    /// Vector (fixed), or start-up page number (SIPI: the AP starts in real
    /// mode at `vector << 12`).
    pub vector: u8,
}

impl Ipi {
    pub const fn init(dest: u32) -> Self {
        Self {
            dest,
            delivery: Delivery::Init,
            vector: 0,
        }
    }

    /// A start-up IPI: the AP begins at physical `page_addr` (page aligned,
    /// below 1 MiB); `None` if `page_addr` cannot be a SIPI target.
    pub const fn startup(dest: u32, page_addr: u64) -> Option<Self> {
        if !page_addr.is_multiple_of(4096) || page_addr >= 0x10_0000 {
            return None;
        }
        Some(Self {
            dest,
            delivery: Delivery::StartUp,
            vector: (page_addr >> 12) as u8,
        })
    }

    pub const fn nmi(dest: u32) -> Self {
        Self {
            dest,
            delivery: Delivery::Nmi,
            vector: 0,
        }
    }

    /// The command bits 31:0 (vector, delivery mode, level; physical
    /// destination mode, edge trigger, no shorthand).
    pub const fn low(self) -> u32 {
        (self.vector as u64 | (self.delivery as u64) << 8 | icr::LEVEL_ASSERT) as u32
    }

    /// The 64-bit x2APIC ICR value (destination in bits 63:32).
    pub const fn x2apic(self) -> u64 {
        (self.dest as u64) << 32 | self.low() as u64
    }

    /// The xAPIC high ICR register (destination in bits 31:24); `None` for
    /// an APIC ID xAPIC cannot address.
    pub const fn xapic_high(self) -> Option<u32> {
        if self.dest > 0xff {
            None
        } else {
            Some(self.dest << 24)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_sdm() {
        // INIT, level assert: 0x4500 (SDM 11.6.1 delivery mode 101b, bit 14).
        assert_eq!(Ipi::init(3).low(), 0x4500);
        assert_eq!(Ipi::init(3).x2apic(), 0x3_0000_4500);
        // SIPI to page 0x8000: vector 0x08, delivery 110b.
        let s = Ipi::startup(1, 0x8000).unwrap();
        assert_eq!(s.low(), 0x4608);
        assert_eq!(s.xapic_high(), Some(0x0100_0000));
        assert_eq!(Ipi::nmi(2).low(), 0x4400);
        assert_eq!(Ipi::nmi(0x1_0000).xapic_high(), None);
        assert_eq!(Ipi::nmi(0x1_0000).x2apic() >> 32, 0x1_0000);
    }

    #[test]
    fn startup_page_must_be_a_real_mode_page() {
        assert!(Ipi::startup(1, 0x8001).is_none());
        assert!(Ipi::startup(1, 0x10_0000).is_none());
        assert_eq!(Ipi::startup(1, 0x9f000).unwrap().vector, 0x9f);
    }
}
