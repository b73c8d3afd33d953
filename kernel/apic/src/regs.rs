//! x2APIC register numbers (MSR addresses, which the APIC protocol's
//! READ_REGISTER and WRITE_REGISTER take in RCX) and the fields of the
//! registers the model interprets (Intel SDM vol. 3, "x2APIC Register
//! Address Space"; AMD APM vol. 2, "x2APIC").

pub use svsm_defs::apic::x2apic::*;

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

pub use svsm_defs::apic::icr;

/// The x2APIC logical ID derived from the APIC ID: cluster in 31:16, one
/// bit of 16 in 15:0.
pub const fn logical_id(apic_id: u32) -> u32 {
    ((apic_id >> 4) << 16) | (1 << (apic_id & 0xF))
}
