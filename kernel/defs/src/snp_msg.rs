//! SEV-SNP guest messages (SNP firmware ABI 56860, "SNP_GUEST_REQUEST"):
//! the 0x60-byte header in front of every AES-256-GCM encrypted payload
//! exchanged with the secure processor, and the MSG_REPORT_REQ/RSP
//! payloads.

use crate::snp_report::{AttestationReport, REPORT_DATA_LEN};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const HEADER_SIZE: usize = 0x60;
/// A message fills at most one page.
pub const MSG_SIZE: usize = 4096;
pub const HEADER_VERSION: u8 = 1;
pub const AEAD_AES_256_GCM: u8 = 1;
/// The authenticated header bytes (ALGO through the end of the header).
pub const AAD_OFFSET: usize = 0x30;
pub const AUTHTAG_LEN: usize = 16;

pub const MSG_REPORT_REQ: u8 = 5;
pub const MSG_REPORT_RSP: u8 = 6;
pub const MSG_VERSION: u8 = 1;

#[repr(C)]
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct MsgHeader {
    /// AES-GCM uses the first 16 bytes.
    pub authtag: [u8; 32],
    pub msg_seqno: u64,
    pub _reserved_028: [u8; 8],
    pub algo: u8,
    pub hdr_version: u8,
    pub hdr_size: u16,
    pub msg_type: u8,
    pub msg_version: u8,
    pub msg_size: u16,
    pub _reserved_038: u32,
    pub msg_vmpck: u8,
    pub _reserved_03d: [u8; 35],
}

const _: () = assert!(core::mem::size_of::<MsgHeader>() == HEADER_SIZE);

/// MSG_REPORT_REQ's payload.
#[repr(C)]
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ReportReq {
    pub report_data: [u8; REPORT_DATA_LEN],
    pub vmpl: u32,
    /// Bits 1:0: 0 either key, 1 VCEK, 2 VLEK.
    pub key_sel: u32,
    pub _reserved: [u8; 24],
}

/// MSG_REPORT_RSP's payload.
#[repr(C)]
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ReportRsp {
    /// 0 success, 0x16 invalid parameters, 0x27 invalid key selection.
    pub status: u32,
    pub report_size: u32,
    pub _reserved: [u8; 24],
    pub report: AttestationReport,
}

const _: () = assert!(core::mem::size_of::<ReportReq>() == 0x60);
const _: () = assert!(core::mem::size_of::<ReportRsp>() == 0x20 + 0x4A0);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn header_offsets() {
        assert_eq!(offset_of!(MsgHeader, msg_seqno), 0x20);
        assert_eq!(offset_of!(MsgHeader, algo), AAD_OFFSET);
        assert_eq!(offset_of!(MsgHeader, msg_type), 0x34);
        assert_eq!(offset_of!(MsgHeader, msg_size), 0x36);
        assert_eq!(offset_of!(MsgHeader, msg_vmpck), 0x3c);
        assert_eq!(offset_of!(ReportRsp, report), 0x20);
    }
}
