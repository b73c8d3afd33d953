//! The GHCB MSR protocol (GHCB specification 56421, section 2.3.1): one
//! request in the GHCB MSR, VMGEXIT, one response in the same MSR. It works
//! before any GHCB page is shared, so start-up uses it: SEV information,
//! the hypervisor features, registering the GHCB page, making that page
//! shared, and termination. The encodings are `svsm_defs::ghcb::msr_protocol`.

use crate::hw::SnpHardware;
use svsm_defs::ghcb::msr_protocol::{self as p, CpuidReg, PageState};

/// The GHCB protocol version the SVSM speaks (AP creation, restricted
/// injection and the #HV doorbell page need version 2).
pub const GHCB_PROTOCOL_VERSION: u16 = 2;

/// Hypervisor features (GHCB 56421, HV_FEATURES response, bits 63:12).
pub mod hv_features {
    pub const SNP: u64 = 1 << 0;
    pub const SNP_AP_CREATION: u64 = 1 << 1;
    pub const SNP_RESTRICTED_INJECTION: u64 = 1 << 2;
    pub const SNP_RESTRICTED_INJECTION_TIMER: u64 = 1 << 3;
    pub const APIC_ID_LIST: u64 = 1 << 4;
    pub const SNP_MULTI_VMPL: u64 = 1 << 5;
    /// What the SVSM cannot run without.
    pub const REQUIRED: u64 = SNP | SNP_AP_CREATION | SNP_RESTRICTED_INJECTION;
}

/// A response that does not answer the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrProtocolError {
    /// The response's GHCBInfo field (bits 11:0) is not the expected one.
    UnexpectedResponse { expected: u64, got: u64 },
    /// SEV information: the hypervisor's range of GHCB protocol versions
    /// excludes the one the SVSM speaks.
    ProtocolVersion { min: u16, max: u16 },
    /// Register GHCB GPA: the hypervisor answered with another page.
    GhcbNotRegistered {
        requested_gfn: u64,
        answered_gfn: u64,
    },
    /// Page state change: the hypervisor's error code (bits 63:32).
    PageStateChange(u32),
    /// Hypervisor features: required features are missing (the bits).
    MissingFeatures(u64),
}

/// Writes `request`, exits to the hypervisor and returns its response
/// after checking the response code.
fn call<H: SnpHardware>(hw: &mut H, request: u64, response: u64) -> Result<u64, MsrProtocolError> {
    hw.write_ghcb_msr(request);
    hw.vmgexit(None);
    let v = hw.read_ghcb_msr();
    if p::info(v) != response {
        return Err(MsrProtocolError::UnexpectedResponse {
            expected: response,
            got: p::info(v),
        });
    }
    Ok(v)
}

/// SEV information: the hypervisor's GHCB protocol range must include
/// [`GHCB_PROTOCOL_VERSION`]. Returns (min, max, C-bit position).
pub fn sev_info<H: SnpHardware>(hw: &mut H) -> Result<(u16, u16, u8), MsrProtocolError> {
    let v = call(hw, p::SEV_INFO_REQUEST, p::SEV_INFO_RESPONSE)?;
    let (min, max, c_bit) = p::sev_info(v).ok_or(MsrProtocolError::UnexpectedResponse {
        expected: p::SEV_INFO_RESPONSE,
        got: p::info(v),
    })?;
    if !(min..=max).contains(&GHCB_PROTOCOL_VERSION) {
        return Err(MsrProtocolError::ProtocolVersion { min, max });
    }
    Ok((min, max, c_bit))
}

/// CPUID through the hypervisor, one register per request. The answer is
/// the hypervisor's, not checked by the firmware: only for what the CPUID
/// page does not cover, and never for security decisions.
pub fn cpuid<H: SnpHardware>(hw: &mut H, leaf: u32) -> Result<[u32; 4], MsrProtocolError> {
    let mut out = [0u32; 4];
    for (i, reg) in [CpuidReg::Eax, CpuidReg::Ebx, CpuidReg::Ecx, CpuidReg::Edx]
        .into_iter()
        .enumerate()
    {
        let v = call(hw, p::cpuid_request(leaf, reg), p::CPUID_RESPONSE)?;
        out[i] = p::cpuid_response(v, reg).ok_or(MsrProtocolError::UnexpectedResponse {
            expected: p::CPUID_RESPONSE,
            got: p::info(v),
        })?;
    }
    Ok(out)
}

/// Registers the GHCB page at guest-physical `gpa` (page aligned).
pub fn register_ghcb<H: SnpHardware>(hw: &mut H, gpa: u64) -> Result<(), MsrProtocolError> {
    let gfn = gpa >> 12;
    let v = call(hw, p::register_ghcb_request(gfn), p::REGISTER_GHCB_RESPONSE)?;
    if v >> 12 != gfn {
        return Err(MsrProtocolError::GhcbNotRegistered {
            requested_gfn: gfn,
            answered_gfn: v >> 12,
        });
    }
    Ok(())
}

/// Asks the hypervisor to make the 4 KiB page at `gpa` private or shared
/// in the RMP (the guest then PVALIDATEs or rescinds it itself).
pub fn page_state_change<H: SnpHardware>(
    hw: &mut H,
    gpa: u64,
    state: PageState,
) -> Result<(), MsrProtocolError> {
    let v = call(
        hw,
        p::page_state_request(gpa >> 12, state),
        p::PAGE_STATE_RESPONSE,
    )?;
    match (v >> 32) as u32 {
        0 => Ok(()),
        e => Err(MsrProtocolError::PageStateChange(e)),
    }
}

/// The hypervisor's features; refuses a hypervisor without the
/// [`hv_features::REQUIRED`] ones.
pub fn hv_features<H: SnpHardware>(hw: &mut H) -> Result<u64, MsrProtocolError> {
    let v = call(hw, p::HV_FEATURES_REQUEST, p::HV_FEATURES_RESPONSE)?;
    let features = v >> 12;
    let missing = hv_features::REQUIRED & !features;
    if missing != 0 {
        return Err(MsrProtocolError::MissingFeatures(missing));
    }
    Ok(features)
}

/// Asks the hypervisor to terminate the guest with a reason. The
/// hypervisor does not return; if it does anyway, the caller halts.
pub fn request_termination<H: SnpHardware>(hw: &mut H, reason: TerminationReason) {
    hw.write_ghcb_msr(p::terminate_request(reason.set, reason.code));
    hw.vmgexit(None);
}

/// A termination reason: a reason-code set (bits 15:12 of the request) and
/// a code in it (bits 23:16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TerminationReason {
    pub set: u8,
    pub code: u8,
}

/// The reasons the SVSM terminates with. Set 0 is the GHCB specification's
/// general set; set 3 is this SVSM's own (the specification leaves sets
/// other than 0 to the guest; Linux uses 1).
pub mod reason {
    use super::TerminationReason;
    const fn general(code: u8) -> TerminationReason {
        TerminationReason { set: 0, code }
    }
    const fn svsm(code: u8) -> TerminationReason {
        TerminationReason {
            set: SVSM_SET,
            code,
        }
    }
    pub const SVSM_SET: u8 = 3;
    /// General: the GHCB protocol version range excludes ours.
    pub const PROTOCOL_UNSUPPORTED: TerminationReason = general(1);
    /// General: SEV-SNP (or a feature it needs) is not active.
    pub const SNP_UNSUPPORTED: TerminationReason = general(2);
    /// SVSM: not running at VMPL0.
    pub const NOT_VMPL0: TerminationReason = svsm(1);
    /// SVSM: restricted injection is not enabled.
    pub const NO_RESTRICTED_INJECTION: TerminationReason = svsm(2);
    /// SVSM: the CPUID page failed its checks.
    pub const BAD_CPUID_PAGE: TerminationReason = svsm(3);
    /// SVSM: the secrets page failed its checks.
    pub const BAD_SECRETS_PAGE: TerminationReason = svsm(4);
    /// SVSM: PVALIDATE or RMPADJUST failed on the SVSM's own memory.
    pub const VALIDATION_FAILED: TerminationReason = svsm(5);
    /// SVSM: the hypervisor answered a GHCB request wrongly.
    pub const GHCB_FAILURE: TerminationReason = svsm(6);
    /// SVSM: the hypervisor lacks a required feature.
    pub const HV_FEATURES_MISSING: TerminationReason = svsm(7);
    /// SVSM: a fatal error after start-up (panic, unexpected exception).
    pub const FATAL: TerminationReason = svsm(8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{Event, FakeHw};
    use std::vec;

    #[test]
    fn sev_info_checks_the_version_range() {
        let mut hw = FakeHw::new();
        hw.msr_responses.push_back(0x0002_0001_3300_0001);
        assert_eq!(sev_info(&mut hw), Ok((1, 2, 0x33)));
        assert_eq!(
            hw.events,
            vec![Event::WriteMsr(0x002), Event::Vmgexit { page: false }]
        );
        hw.msr_responses.push_back(0x0001_0001_3300_0001);
        assert_eq!(
            sev_info(&mut hw),
            Err(MsrProtocolError::ProtocolVersion { min: 1, max: 1 })
        );
        hw.msr_responses.push_back(0x0002_0001_3300_0005);
        assert_eq!(
            sev_info(&mut hw),
            Err(MsrProtocolError::UnexpectedResponse {
                expected: 1,
                got: 5
            })
        );
    }

    #[test]
    fn cpuid_asks_for_each_register() {
        let mut hw = FakeHw::new();
        for (i, v) in [0x11u64, 0x22, 0x33, 0x44].into_iter().enumerate() {
            hw.msr_responses
                .push_back((v << 32) | ((i as u64) << 30) | 0x005);
        }
        assert_eq!(cpuid(&mut hw, 0x8000_001f), Ok([0x11, 0x22, 0x33, 0x44]));
        let writes: vec::Vec<u64> = hw.msr_writes();
        assert_eq!(
            writes,
            [
                0x8000_001f_0000_0004,
                0x8000_001f_4000_0004,
                0x8000_001f_8000_0004,
                0x8000_001f_c000_0004
            ]
        );
        // A response for another register is refused.
        hw.msr_responses.push_back((1 << 30) | 0x005);
        assert!(cpuid(&mut hw, 0).is_err());
    }

    #[test]
    fn register_ghcb_checks_the_answered_page() {
        let mut hw = FakeHw::new();
        hw.msr_responses.push_back((0x1234 << 12) | 0x013);
        assert_eq!(register_ghcb(&mut hw, 0x123_4000), Ok(()));
        assert_eq!(hw.msr_writes(), [0x123_4012]);
        hw.msr_responses.push_back((0x9999 << 12) | 0x013);
        assert_eq!(
            register_ghcb(&mut hw, 0x123_4000),
            Err(MsrProtocolError::GhcbNotRegistered {
                requested_gfn: 0x1234,
                answered_gfn: 0x9999
            })
        );
    }

    #[test]
    fn page_state_change_reports_the_hypervisor_error() {
        let mut hw = FakeHw::new();
        hw.msr_responses.push_back(0x015);
        assert_eq!(
            page_state_change(&mut hw, 0xabcd_e000, PageState::Shared),
            Ok(())
        );
        assert_eq!(hw.msr_writes(), [0x0020_0000_abcd_e014]);
        hw.msr_responses.push_back((7 << 32) | 0x015);
        assert_eq!(
            page_state_change(&mut hw, 0x1000, PageState::Private),
            Err(MsrProtocolError::PageStateChange(7))
        );
        assert_eq!(hw.msr_writes()[1], 0x0010_0000_0000_1014);
    }

    #[test]
    fn hv_features_require_snp_ap_creation_and_restricted_injection() {
        let mut hw = FakeHw::new();
        hw.msr_responses.push_back((0b10_0111 << 12) | 0x081);
        assert_eq!(hv_features(&mut hw), Ok(0b10_0111));
        assert_eq!(hw.msr_writes(), [0x080]);
        hw.msr_responses.push_back((0b11 << 12) | 0x081);
        assert_eq!(
            hv_features(&mut hw),
            Err(MsrProtocolError::MissingFeatures(
                hv_features::SNP_RESTRICTED_INJECTION
            ))
        );
    }

    #[test]
    fn termination_requests_encode_set_and_code() {
        let mut hw = FakeHw::new();
        request_termination(&mut hw, reason::SNP_UNSUPPORTED);
        request_termination(&mut hw, reason::BAD_SECRETS_PAGE);
        assert_eq!(hw.msr_writes(), [0x2_0100, 0x4_3100]);
        assert_eq!(
            hw.terminations(),
            [reason::SNP_UNSUPPORTED, reason::BAD_SECRETS_PAGE]
        );
    }
}
