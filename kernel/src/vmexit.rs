//! Decisions of the hosted guest's exit handler that need no hardware:
//! telling VMGEXIT from VMMCALL by the instruction bytes (QEMU reports both
//! as a VMMCALL exit and never writes NRIP), decoding the GHCB MSR at a
//! VMGEXIT, and naming the cause of a nested page fault.

use svsm_defs::ghcb::msr_protocol;

/// VMMCALL: 0F 01 D9.
const VMMCALL: [u8; 3] = [0x0f, 0x01, 0xd9];
/// The REP prefix that makes VMMCALL the SEV-ES VMGEXIT.
const REP: u8 = 0xf3;

/// The instruction at a VMMCALL exit, and its length (the next RIP is the
/// exit's RIP plus it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vmmcall {
    /// `rep vmmcall`: 4 bytes.
    Vmgexit,
    /// A plain VMMCALL: 3 bytes.
    Plain,
    /// Neither (the bytes changed, or could not be read).
    Unknown,
}

impl Vmmcall {
    /// Decodes the (up to 4) bytes fetched at the exit's RIP.
    pub fn decode(code: &[u8]) -> Self {
        match code {
            [REP, rest @ ..] if rest.starts_with(&VMMCALL) => Self::Vmgexit,
            _ if code.starts_with(&VMMCALL) => Self::Plain,
            _ => Self::Unknown,
        }
    }

    pub fn insn_len(self) -> u64 {
        match self {
            Self::Vmgexit => 4,
            Self::Plain => 3,
            Self::Unknown => 0,
        }
    }
}

/// What the GHCB MSR asks for at a VMGEXIT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GhcbMsr {
    /// The MSR-protocol Run VMPL request for this VMPL (0: the SVSM).
    RunVmpl(u8),
    /// The GPA of the vCPU's GHCB page (function 0, non-zero).
    GhcbPage(u64),
    /// Any other MSR-protocol request (its function code).
    Other(u64),
}

impl GhcbMsr {
    pub fn decode(v: u64) -> Self {
        match msr_protocol::info(v) {
            msr_protocol::RUN_VMPL_REQUEST => Self::RunVmpl((v >> 32) as u8),
            0 if v != 0 => Self::GhcbPage(v),
            f => Self::Other(f),
        }
    }
}

/// The MSR-protocol response to a Run VMPL request: 0x017, with a non-zero
/// upper half on failure.
pub const fn run_vmpl_response(ok: bool) -> u64 {
    msr_protocol::RUN_VMPL_RESPONSE | if ok { 0 } else { 1 << 32 }
}

/// What the guest touched when its nested page fault hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NpfTarget {
    /// The page is guest RAM (not SVSM memory, not beyond RAM).
    pub guest_ram: bool,
    /// The page is a sealed VMSA.
    pub sealed_vmsa: bool,
    /// The page is validated.
    pub validated: bool,
    /// The access was a write (EXITINFO1 bit 1).
    pub write: bool,
}

/// The reason a stopped guest's report gives for a nested page fault.
pub fn npf_reason(t: NpfTarget) -> &'static str {
    match t {
        NpfTarget {
            guest_ram: false,
            write: true,
            ..
        } => "write into SVSM memory",
        NpfTarget {
            guest_ram: false, ..
        } => "access to SVSM memory",
        NpfTarget {
            sealed_vmsa: true, ..
        } => "write into a VMSA page",
        NpfTarget {
            validated: true, ..
        } => "access to a page the guest gave to the SVSM",
        _ => "access to unvalidated guest memory",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmgexit_is_rep_vmmcall_and_four_bytes() {
        assert_eq!(Vmmcall::decode(&[0xf3, 0x0f, 0x01, 0xd9]), Vmmcall::Vmgexit);
        assert_eq!(Vmmcall::decode(&[0xf3, 0x0f, 0x01, 0xd9]).insn_len(), 4);
        assert_eq!(Vmmcall::decode(&[0x0f, 0x01, 0xd9, 0x90]), Vmmcall::Plain);
        assert_eq!(Vmmcall::decode(&[0x0f, 0x01, 0xd9]).insn_len(), 3);
        // VMRUN (0F 01 D8), a truncated fetch, other prefixes: not a call.
        for bad in [
            &[0x0f, 0x01, 0xd8][..],
            &[0xf3, 0x0f, 0x01],
            &[],
            &[0xf2, 0x0f, 0x01, 0xd9],
        ] {
            assert_eq!(Vmmcall::decode(bad), Vmmcall::Unknown, "{bad:x?}");
        }
    }

    #[test]
    fn ghcb_msr_requests() {
        assert_eq!(GhcbMsr::decode(0x016), GhcbMsr::RunVmpl(0));
        assert_eq!(GhcbMsr::decode(0x016 | (1 << 32)), GhcbMsr::RunVmpl(1));
        assert_eq!(GhcbMsr::decode(0x0500_6000), GhcbMsr::GhcbPage(0x0500_6000));
        assert_eq!(GhcbMsr::decode(0), GhcbMsr::Other(0));
        assert_eq!(GhcbMsr::decode(0x100), GhcbMsr::Other(0x100));
        assert_eq!(run_vmpl_response(true), 0x017);
        assert_eq!(run_vmpl_response(false), 0x1_0000_0017);
    }

    #[test]
    fn npf_reasons() {
        let t = |guest_ram, sealed_vmsa, validated, write| NpfTarget {
            guest_ram,
            sealed_vmsa,
            validated,
            write,
        };
        assert_eq!(
            npf_reason(t(false, false, false, true)),
            "write into SVSM memory"
        );
        assert_eq!(
            npf_reason(t(false, false, false, false)),
            "access to SVSM memory"
        );
        assert_eq!(
            npf_reason(t(true, true, true, true)),
            "write into a VMSA page"
        );
        assert_eq!(
            npf_reason(t(true, false, true, false)),
            "access to a page the guest gave to the SVSM"
        );
        assert_eq!(
            npf_reason(t(true, false, false, true)),
            "access to unvalidated guest memory"
        );
    }
}
