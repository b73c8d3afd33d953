//! The hardware interface: the few SNP instructions and MSRs the platform
//! logic needs. The kernel's implementation executes them (`arch::snp`,
//! `arch::x86`); `crate::fake` records them for the host tests.

use svsm_defs::ghcb::Ghcb;

/// Page size operand of PVALIDATE and RMPADJUST (RCX/ECX bit 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum RmpPageSize {
    Size4K = 0,
    Size2M = 1,
}

impl RmpPageSize {
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4K => 0x1000,
            Self::Size2M => 0x20_0000,
        }
    }
}

/// What PVALIDATE reports: its return code (EAX) and whether the RMP entry
/// already had the requested state (CF set: nothing changed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvalidateResult {
    pub code: u32,
    pub unchanged: bool,
}

pub trait SnpHardware {
    /// RDMSR SEV_STATUS (MSR 0xC001_0131).
    fn sev_status(&mut self) -> u64;
    /// RDMSR of the GHCB MSR (0xC001_0130).
    fn read_ghcb_msr(&mut self) -> u64;
    /// WRMSR of the GHCB MSR.
    fn write_ghcb_msr(&mut self, value: u64);
    /// VMGEXIT. `ghcb` is the registered GHCB page when the request is in
    /// it (the page protocol), `None` for the MSR protocol; the hardware
    /// ignores it (the page is already in memory), a fake hypervisor
    /// answers through it.
    fn vmgexit(&mut self, ghcb: Option<&mut Ghcb>);
    /// PVALIDATE of the page mapped at `va`.
    fn pvalidate(&mut self, va: u64, size: RmpPageSize, validate: bool) -> PvalidateResult;
    /// RMPADJUST of the page mapped at `va` with `attrs` (target VMPL in
    /// bits 7:0, permissions in 15:8, VMSA in bit 16); its return code.
    fn rmpadjust(&mut self, va: u64, size: RmpPageSize, attrs: u64) -> u32;
    /// Zeroes `len` bytes of (just validated, private) memory at `va`.
    fn zero(&mut self, va: u64, len: u64);
}
