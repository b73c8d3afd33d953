//! Start-up checks: the SVSM runs only as an SEV-SNP guest at VMPL0 with
//! restricted injection, on a hypervisor that speaks GHCB protocol 2 with
//! the features it needs. Any failure ends in a GHCB termination request
//! with its reason (`msr_protocol::reason`), never in a boot on a platform
//! the SVSM cannot protect.

use crate::hw::{RmpPageSize, SnpHardware};
use crate::msr_protocol::{self, MsrProtocolError, TerminationReason, reason};
use svsm_defs::vmsa::SevStatus;

/// RMPADJUST return code: the caller's VMPL may not change the target's.
pub const RMPADJUST_FAIL_PERMISSION: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartupError {
    /// SEV_STATUS lacks SEV, SEV-ES or SNP (the value read).
    SnpInactive(u64),
    /// SEV_STATUS lacks restricted injection.
    NoRestrictedInjection(u64),
    /// The VMPL0 probe (RMPADJUST of a VMPL1 permission) failed with this
    /// code: the SVSM runs at a lower privilege level.
    NotVmpl0(u32),
    /// The hypervisor's answer to an MSR-protocol request.
    Protocol(MsrProtocolError),
}

impl StartupError {
    /// The termination reason the hypervisor receives.
    pub fn reason(&self) -> TerminationReason {
        match self {
            Self::SnpInactive(_) => reason::SNP_UNSUPPORTED,
            Self::NoRestrictedInjection(_) => reason::NO_RESTRICTED_INJECTION,
            Self::NotVmpl0(_) => reason::NOT_VMPL0,
            Self::Protocol(MsrProtocolError::ProtocolVersion { .. }) => {
                reason::PROTOCOL_UNSUPPORTED
            }
            Self::Protocol(MsrProtocolError::MissingFeatures(_)) => reason::HV_FEATURES_MISSING,
            Self::Protocol(_) => reason::GHCB_FAILURE,
        }
    }
}

impl From<MsrProtocolError> for StartupError {
    fn from(e: MsrProtocolError) -> Self {
        Self::Protocol(e)
    }
}

/// The SEV_STATUS checks.
pub fn check_sev_status(raw: u64) -> Result<SevStatus, StartupError> {
    let s = SevStatus::from_bits_retain(raw);
    if !s.contains(SevStatus::SEV | SevStatus::SEV_ES | SevStatus::SNP) {
        return Err(StartupError::SnpInactive(raw));
    }
    if !s.contains(SevStatus::RESTRICTED_INJECTION) {
        return Err(StartupError::NoRestrictedInjection(raw));
    }
    Ok(s)
}

/// VMPL0 probe: RMPADJUST may change VMPL1's permissions only from VMPL0.
/// `probe_va` maps a validated page the SVSM owns (its VMPL1 permissions
/// are set to none, which they are anyway for SVSM memory).
pub fn check_vmpl0<H: SnpHardware>(hw: &mut H, probe_va: u64) -> Result<(), StartupError> {
    const TARGET_VMPL1_NO_ACCESS: u64 = 1;
    match hw.rmpadjust(probe_va, RmpPageSize::Size4K, TARGET_VMPL1_NO_ACCESS) {
        0 => Ok(()),
        code => Err(StartupError::NotVmpl0(code)),
    }
}

/// What start-up learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnpStart {
    pub sev_status: SevStatus,
    pub c_bit: u8,
    pub hv_features: u64,
}

/// All start-up checks, in the order that needs the least of the hypervisor.
pub fn start<H: SnpHardware>(hw: &mut H, probe_va: u64) -> Result<SnpStart, StartupError> {
    let sev_status = check_sev_status(hw.sev_status())?;
    let (_, _, c_bit) = msr_protocol::sev_info(hw)?;
    let hv_features = msr_protocol::hv_features(hw)?;
    check_vmpl0(hw, probe_va)?;
    Ok(SnpStart {
        sev_status,
        c_bit,
        hv_features,
    })
}

/// `start`, or a termination request with the failure's reason (the
/// caller then halts: the hypervisor should not resume the SVSM).
pub fn start_or_terminate<H: SnpHardware>(
    hw: &mut H,
    probe_va: u64,
) -> Result<SnpStart, StartupError> {
    start(hw, probe_va).inspect_err(|e| msr_protocol::request_termination(hw, e.reason()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{Event, FakeHw};

    const GOOD: u64 = 0b10_0111; // SEV, SEV-ES, SNP, restricted injection

    fn healthy() -> FakeHw {
        let mut hw = FakeHw::new();
        hw.sev_status = GOOD;
        hw.msr_responses.push_back(0x0002_0001_3300_0001);
        hw.msr_responses.push_back((0b111 << 12) | 0x081);
        hw
    }

    #[test]
    fn a_healthy_snp_guest_starts() {
        let mut hw = healthy();
        let s = start_or_terminate(&mut hw, 0x5000).unwrap();
        assert_eq!(s.c_bit, 0x33);
        assert_eq!(s.hv_features, 0b111);
        assert!(hw.terminations().is_empty());
        assert_eq!(
            hw.events.last(),
            Some(&Event::Rmpadjust {
                va: 0x5000,
                size: RmpPageSize::Size4K,
                attrs: 1
            })
        );
    }

    #[test]
    fn each_failure_terminates_with_its_reason() {
        type Setup = fn(&mut FakeHw);
        let cases: [(Setup, TerminationReason); 6] = [
            (|hw| hw.sev_status = 0b11, reason::SNP_UNSUPPORTED),
            (|hw| hw.sev_status = 0b111, reason::NO_RESTRICTED_INJECTION),
            (
                |hw| hw.rmpadjust = std::boxed::Box::new(|_, _, _| RMPADJUST_FAIL_PERMISSION),
                reason::NOT_VMPL0,
            ),
            (
                |hw| hw.msr_responses[0] = 0x0001_0001_3300_0001,
                reason::PROTOCOL_UNSUPPORTED,
            ),
            (
                |hw| hw.msr_responses[1] = (0b011 << 12) | 0x081,
                reason::HV_FEATURES_MISSING,
            ),
            (|hw| hw.msr_responses[1] = 0x999, reason::GHCB_FAILURE),
        ];
        for (setup, want) in cases {
            let mut hw = healthy();
            setup(&mut hw);
            let e = start_or_terminate(&mut hw, 0x5000).unwrap_err();
            assert_eq!(e.reason(), want, "{e:?}");
            assert_eq!(hw.terminations(), [want], "{e:?}");
            // The termination request is the last thing the SVSM does.
            assert_eq!(hw.events.last(), Some(&Event::Vmgexit { page: false }));
        }
    }

    #[test]
    fn sev_status_bits() {
        assert!(check_sev_status(GOOD).is_ok());
        assert_eq!(check_sev_status(0), Err(StartupError::SnpInactive(0)));
        assert_eq!(
            check_sev_status(0b101),
            Err(StartupError::SnpInactive(0b101)),
            "SNP without SEV-ES"
        );
    }
}
