//! Control registers, EFER and RFLAGS (AMD APM vol. 2, sections 3.1 and 3.1.7).

use bitflags::bitflags;

bitflags! {
    /// CR0.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Cr0: u64 {
        /// Protection enable.
        const PE = 1 << 0;
        /// Monitor coprocessor.
        const MP = 1 << 1;
        const EM = 1 << 2;
        const TS = 1 << 3;
        /// Extension type (reads as 1).
        const ET = 1 << 4;
        /// Numeric error.
        const NE = 1 << 5;
        /// Write protect: supervisor writes honour read-only pages.
        const WP = 1 << 16;
        const AM = 1 << 18;
        const NW = 1 << 29;
        const CD = 1 << 30;
        /// Paging.
        const PG = 1 << 31;
    }
}

bitflags! {
    /// CR4.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Cr4: u64 {
        const VME = 1 << 0;
        const PVI = 1 << 1;
        const TSD = 1 << 2;
        const DE = 1 << 3;
        const PSE = 1 << 4;
        /// Physical address extension (required for long mode).
        const PAE = 1 << 5;
        const MCE = 1 << 6;
        const PGE = 1 << 7;
        const PCE = 1 << 8;
        /// FXSAVE/FXRSTOR and SSE enabled.
        const OSFXSR = 1 << 9;
        /// Unmasked SIMD exceptions.
        const OSXMMEXCPT = 1 << 10;
        const UMIP = 1 << 11;
        /// 5-level paging.
        const LA57 = 1 << 12;
        const FSGSBASE = 1 << 16;
        const PCIDE = 1 << 17;
        const OSXSAVE = 1 << 18;
        const SMEP = 1 << 20;
        const SMAP = 1 << 21;
        const PKE = 1 << 22;
        const CET = 1 << 23;
    }
}

bitflags! {
    /// The EFER MSR (`msr::EFER`).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Efer: u64 {
        const SCE = 1 << 0;
        /// Long mode enable.
        const LME = 1 << 8;
        /// Long mode active (set by the CPU).
        const LMA = 1 << 10;
        /// No-execute enable: bit 63 of page-table entries is honoured.
        const NXE = 1 << 11;
        /// Secure virtual machine enable (VMRUN allowed).
        const SVME = 1 << 12;
        const LMSLE = 1 << 13;
        const FFXSR = 1 << 14;
        const TCE = 1 << 15;
    }
}

bitflags! {
    /// RFLAGS.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RFlags: u64 {
        const CF = 1 << 0;
        /// Reserved, always 1.
        const RESERVED_1 = 1 << 1;
        const ZF = 1 << 6;
        const TF = 1 << 8;
        /// Interrupts enabled.
        const IF = 1 << 9;
        const DF = 1 << 10;
        const IOPL = 3 << 12;
        const AC = 1 << 18;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_mode_values_match_the_manual() {
        // The values igvm-build's VP context used as raw hex before they had names.
        let cr0 = Cr0::PG | Cr0::WP | Cr0::NE | Cr0::ET | Cr0::MP | Cr0::PE;
        assert_eq!(cr0.bits(), 0x8001_0033);
        let cr4 = Cr4::OSXMMEXCPT | Cr4::OSFXSR | Cr4::PAE;
        assert_eq!(cr4.bits(), 0x620);
        let efer = Efer::NXE | Efer::LMA | Efer::LME;
        assert_eq!(efer.bits(), 0xd00);
        assert_eq!(Efer::SVME.bits(), 0x1000);
        assert_eq!(Cr4::LA57.bits(), 0x1000);
        assert_eq!(RFlags::RESERVED_1.bits(), 2);
    }
}
