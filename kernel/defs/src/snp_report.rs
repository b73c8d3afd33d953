//! The SEV-SNP ATTESTATION_REPORT (SNP firmware ABI 56860, "ATTESTATION_REPORT
//! Structure", report version 3): what MSG_REPORT_REQ returns and what the
//! native platform's development report imitates. The signature covers
//! bytes 0..0x2A0 (ECDSA P-384 with SHA-384, algorithm 1); R and S are
//! little-endian, zero-padded to 72 bytes.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The TCB_VERSION of Milan/Genoa: boot loader, TEE, reserved, SNP,
/// microcode SVNs.
pub type TcbVersion = u64;

/// SIGNATURE_ALGO value for ECDSA P-384 with SHA-384.
pub const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// The signed part of the report.
pub const SIGNED_LEN: usize = 0x2A0;
pub const REPORT_DATA_LEN: usize = 64;

#[repr(C)]
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct AttestationReport {
    pub version: u32,
    pub guest_svn: u32,
    pub policy: u64,
    pub family_id: [u8; 16],
    pub image_id: [u8; 16],
    pub vmpl: u32,
    pub signature_algo: u32,
    pub current_tcb: TcbVersion,
    pub platform_info: u64,
    /// Bits 4:2 SIGNING_KEY (0 VCEK, 1 VLEK, 7 none), bit 1 MASK_CHIP_KEY,
    /// bit 0 AUTHOR_KEY_EN.
    pub key_info: u32,
    pub _reserved_04c: u32,
    pub report_data: [u8; REPORT_DATA_LEN],
    pub measurement: [u8; 48],
    pub host_data: [u8; 32],
    pub id_key_digest: [u8; 48],
    pub author_key_digest: [u8; 48],
    pub report_id: [u8; 32],
    pub report_id_ma: [u8; 32],
    pub reported_tcb: TcbVersion,
    pub cpuid_fam_id: u8,
    pub cpuid_mod_id: u8,
    pub cpuid_step: u8,
    pub _reserved_18b: [u8; 21],
    pub chip_id: [u8; 64],
    pub committed_tcb: TcbVersion,
    pub current_build: u8,
    pub current_minor: u8,
    pub current_major: u8,
    pub _reserved_1eb: u8,
    pub committed_build: u8,
    pub committed_minor: u8,
    pub committed_major: u8,
    pub _reserved_1ef: u8,
    pub launch_tcb: TcbVersion,
    pub _reserved_1f8: [u8; 168],
    pub signature_r: [u8; 72],
    pub signature_s: [u8; 72],
    pub _reserved_330: [u8; 368],
}

pub const REPORT_SIZE: usize = 0x4A0;
const _: () = assert!(core::mem::size_of::<AttestationReport>() == REPORT_SIZE);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn offsets_match_the_abi_table() {
        let expected = [
            (offset_of!(AttestationReport, policy), 0x008),
            (offset_of!(AttestationReport, vmpl), 0x030),
            (offset_of!(AttestationReport, signature_algo), 0x034),
            (offset_of!(AttestationReport, current_tcb), 0x038),
            (offset_of!(AttestationReport, key_info), 0x048),
            (offset_of!(AttestationReport, report_data), 0x050),
            (offset_of!(AttestationReport, measurement), 0x090),
            (offset_of!(AttestationReport, host_data), 0x0c0),
            (offset_of!(AttestationReport, id_key_digest), 0x0e0),
            (offset_of!(AttestationReport, author_key_digest), 0x110),
            (offset_of!(AttestationReport, report_id), 0x140),
            (offset_of!(AttestationReport, report_id_ma), 0x160),
            (offset_of!(AttestationReport, reported_tcb), 0x180),
            (offset_of!(AttestationReport, cpuid_fam_id), 0x188),
            (offset_of!(AttestationReport, chip_id), 0x1a0),
            (offset_of!(AttestationReport, committed_tcb), 0x1e0),
            (offset_of!(AttestationReport, current_build), 0x1e8),
            (offset_of!(AttestationReport, launch_tcb), 0x1f0),
            (offset_of!(AttestationReport, signature_r), 0x2a0),
            (offset_of!(AttestationReport, signature_s), 0x2e8),
        ];
        for (got, want) in expected {
            assert_eq!(got, want, "offset {got:#x}, ABI {want:#x}");
        }
    }
}
