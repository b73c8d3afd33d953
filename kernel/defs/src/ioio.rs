//! The SVM IOIO intercept's exit information (AMD APM vol. 2, "I/O
//! Intercepts": EXITINFO1 of exit code 0x7B). The GHCB IOIO request
//! (`SW_EXITINFO1`) uses the same encoding; EXITINFO2 holds the RIP of the
//! next instruction.

use bitflags::bitflags;

bitflags! {
    /// EXITINFO1 bits 12:0. The port is bits 31:16 ([`port`], [`with_port`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct IoioInfo: u64 {
        /// IN or INS (clear: OUT or OUTS).
        const TYPE_IN = 1 << 0;
        /// INS or OUTS.
        const STR = 1 << 2;
        /// A REP prefix on INS or OUTS.
        const REP = 1 << 3;
        const SZ8 = 1 << 4;
        const SZ16 = 1 << 5;
        const SZ32 = 1 << 6;
        const A16 = 1 << 7;
        const A32 = 1 << 8;
        const A64 = 1 << 9;
    }
}

/// Bits 12:10: the effective segment of INS/OUTS (ES = 0 ... GS = 5),
/// reported only by CPUs with decode assists.
pub const SEG_SHIFT: u32 = 10;
pub const SEG_MASK: u64 = 7 << SEG_SHIFT;
pub const PORT_SHIFT: u32 = 16;

/// The port of an EXITINFO1 value.
pub const fn port(exit_info1: u64) -> u16 {
    (exit_info1 >> PORT_SHIFT) as u16
}

/// EXITINFO1 with `port` in bits 31:16.
pub const fn with_port(info: IoioInfo, port: u16) -> u64 {
    info.bits() | ((port as u64) << PORT_SHIFT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_apm_layout() {
        // REP OUTSB to port 0x3F8 with 64-bit addressing.
        let v = with_port(
            IoioInfo::STR | IoioInfo::REP | IoioInfo::SZ8 | IoioInfo::A64,
            0x3f8,
        );
        assert_eq!(v, 0x03f8_021c);
        assert_eq!(port(v), 0x3f8);
        // IN EAX, 0x60 with 64-bit addressing.
        assert_eq!(
            with_port(IoioInfo::TYPE_IN | IoioInfo::SZ32 | IoioInfo::A64, 0x60),
            0x0060_0241
        );
    }
}
