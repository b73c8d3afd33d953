//! x2APIC register numbers (MSR addresses, which the APIC protocol's
//! READ_REGISTER and WRITE_REGISTER take in RCX) and the fields of the
//! registers the model interprets (Intel SDM vol. 3, "x2APIC Register
//! Address Space"; AMD APM vol. 2, "x2APIC").

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

/// The version register: version 0x14 (integrated APIC), six LVT entries
/// (max LVT index 5), no directed-EOI support.
pub const VERSION_VALUE: u32 = 0x0005_0014;

/// SVR: spurious vector (7:0) and APIC software enable (8); the rest
/// (EOI-broadcast suppression, focus) is not offered.
pub const SVR_VECTOR: u32 = 0xFF;
pub const SVR_ENABLE: u32 = 1 << 8;
pub const SVR_WRITABLE: u32 = SVR_VECTOR | SVR_ENABLE;
/// SVR at reset: vector 0xFF, software disabled.
pub const SVR_RESET: u32 = 0xFF;

/// LVT entries: vector, delivery mode, delivery status (read-only),
/// polarity, remote IRR (read-only), trigger mode, mask, timer mode.
pub const LVT_VECTOR: u32 = 0xFF;
pub const LVT_MASKED: u32 = 1 << 16;
pub const LVT_TIMER_MODE_SHIFT: u32 = 17;
pub const LVT_TIMER_MODE_MASK: u32 = 3 << LVT_TIMER_MODE_SHIFT;
pub const LVT_TIMER_PERIODIC: u32 = 1 << LVT_TIMER_MODE_SHIFT;
pub const LVT_TIMER_TSC_DEADLINE: u32 = 2 << LVT_TIMER_MODE_SHIFT;
/// The writable bits of the timer LVT (vector, mask, mode).
pub const LVT_TIMER_WRITABLE: u32 = LVT_VECTOR | LVT_MASKED | LVT_TIMER_MODE_MASK;
/// The writable bits of the other LVTs (vector, delivery mode, polarity,
/// trigger mode, mask). They are stored; the model has no source for them.
pub const LVT_OTHER_WRITABLE: u32 = 0x1_A7FF;

/// Divide configuration: bits 0, 1 and 3.
pub const TIMER_DIVIDE_WRITABLE: u32 = 0b1011;

/// The divisor a divide-configuration value selects (bits 3,1,0: 000 = 2,
/// 001 = 4, ..., 110 = 128, 111 = 1).
pub const fn divisor(dcr: u32) -> u64 {
    let code = (dcr & 3) | ((dcr >> 1) & 4);
    if code == 7 { 1 } else { 2 << code }
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

/// The x2APIC logical ID derived from the APIC ID: cluster in 31:16, one
/// bit of 16 in 15:0.
pub const fn logical_id(apic_id: u32) -> u32 {
    ((apic_id >> 4) << 16) | (1 << (apic_id & 0xF))
}
