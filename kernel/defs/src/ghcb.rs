//! The GHCB page and the GHCB MSR protocol (GHCB specification 56421:
//! section 2.3.1 for the MSR protocol, section 2.3.2 for the page).
//! Offsets were compared with Linux's `struct ghcb` and are checked below.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The GHCB page, shared with the hypervisor.
#[repr(C)]
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Ghcb {
    pub _reserved_000: [u8; 0xcb],
    pub cpl: u8,
    pub _reserved_0cc: [u8; 116],
    pub xss: u64,
    pub _reserved_148: [u8; 24],
    pub dr7: u64,
    pub _reserved_168: [u8; 16],
    pub rip: u64,
    pub _reserved_180: [u8; 88],
    pub rsp: u64,
    pub _reserved_1e0: [u8; 24],
    pub rax: u64,
    pub _reserved_200: [u8; 264],
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub _reserved_320: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub _reserved_380: [u8; 16],
    pub sw_exit_code: u64,
    pub sw_exit_info_1: u64,
    pub sw_exit_info_2: u64,
    pub sw_scratch: u64,
    pub _reserved_3b0: [u8; 56],
    pub xcr0: u64,
    /// One bit per 8-byte field of the save area: bit `offset / 8` says the
    /// field at `offset` is valid.
    pub valid_bitmap: [u8; 16],
    pub x87_state_gpa: u64,
    pub _reserved_408: [u8; 1016],
    pub shared_buffer: [u8; SHARED_BUFFER_SIZE],
    pub _reserved_ff0: [u8; 10],
    pub protocol_version: u16,
    pub ghcb_usage: u32,
}

pub const SHARED_BUFFER_SIZE: usize = 2032;

const _: () = assert!(core::mem::size_of::<Ghcb>() == 4096);

impl Ghcb {
    /// Marks the save-area field at byte `offset` valid (e.g.
    /// `offset_of!(Ghcb, rax)`). Offsets past the bitmap are ignored.
    pub fn mark_valid(&mut self, offset: usize) {
        let bit = offset / 8;
        if let Some(b) = self.valid_bitmap.get_mut(bit / 8) {
            *b |= 1 << (bit % 8);
        }
    }

    pub fn is_valid(&self, offset: usize) -> bool {
        let bit = offset / 8;
        self.valid_bitmap
            .get(bit / 8)
            .is_some_and(|b| b & (1 << (bit % 8)) != 0)
    }
}

/// `sw_exit_code` values of GHCB page requests (GHCB specification, non-automatic exits).
pub mod exit_code {
    pub const CPUID: u64 = 0x72;
    pub const IOIO: u64 = 0x7b;
    pub const MSR: u64 = 0x7c;
    pub const VMMCALL: u64 = 0x81;
    /// The nested page fault: a #VC on an MMIO access.
    pub const NPF: u64 = 0x400;
    pub const MMIO_READ: u64 = 0x8000_0001;
    pub const MMIO_WRITE: u64 = 0x8000_0002;
    pub const SNP_PAGE_STATE_CHANGE: u64 = 0x8000_0010;
    pub const SNP_GUEST_REQUEST: u64 = 0x8000_0011;
    pub const SNP_AP_CREATION: u64 = 0x8000_0013;
    pub const HV_DOORBELL_PAGE: u64 = 0x8000_0014;
    pub const SNP_RUN_VMPL: u64 = 0x8000_0018;
    pub const HV_FEATURES: u64 = 0x8000_fffd;
    pub const TERMINATE: u64 = 0x8000_fffe;
}

/// The GHCB MSR protocol: requests and responses carried in the GHCB MSR
/// itself (`msr::GHCB`) before a GHCB page exists. Bits 11..0 hold the
/// function (`GHCBInfo`), the rest its data.
pub mod msr_protocol {
    pub const SEV_INFO_RESPONSE: u64 = 0x001;
    pub const SEV_INFO_REQUEST: u64 = 0x002;
    pub const CPUID_REQUEST: u64 = 0x004;
    pub const CPUID_RESPONSE: u64 = 0x005;
    pub const REGISTER_GHCB_REQUEST: u64 = 0x012;
    pub const REGISTER_GHCB_RESPONSE: u64 = 0x013;
    pub const PAGE_STATE_REQUEST: u64 = 0x014;
    pub const PAGE_STATE_RESPONSE: u64 = 0x015;
    /// SNP Run VMPL request: bits 39..32 name the VMPL to run (the SVSM
    /// call of a lower-privileged guest is this request for VMPL0).
    pub const RUN_VMPL_REQUEST: u64 = 0x016;
    pub const RUN_VMPL_RESPONSE: u64 = 0x017;
    pub const HV_FEATURES_REQUEST: u64 = 0x080;
    pub const HV_FEATURES_RESPONSE: u64 = 0x081;
    pub const TERMINATE_REQUEST: u64 = 0x100;

    /// Termination reason-code set 0: general (GHCB specification, termination request).
    pub const REASON_SET_GENERAL: u8 = 0;
    pub const REASON_GENERAL_TERMINATION: u8 = 0;
    pub const REASON_PROTOCOL_UNSUPPORTED: u8 = 1;
    pub const REASON_SNP_UNSUPPORTED: u8 = 2;

    pub const fn info(v: u64) -> u64 {
        v & 0xfff
    }

    /// The registers a CPUID request can ask for.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u64)]
    pub enum CpuidReg {
        Eax = 0,
        Ebx = 1,
        Ecx = 2,
        Edx = 3,
    }

    pub const fn cpuid_request(function: u32, reg: CpuidReg) -> u64 {
        ((function as u64) << 32) | ((reg as u64) << 30) | CPUID_REQUEST
    }

    /// The register value of a CPUID response for `reg`, if it is one.
    pub const fn cpuid_response(v: u64, reg: CpuidReg) -> Option<u32> {
        if info(v) == CPUID_RESPONSE && (v >> 30) & 3 == reg as u64 {
            Some((v >> 32) as u32)
        } else {
            None
        }
    }

    pub const fn register_ghcb_request(gfn: u64) -> u64 {
        (gfn << 12) | REGISTER_GHCB_REQUEST
    }

    /// Page-state-change operations.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u64)]
    pub enum PageState {
        Private = 1,
        Shared = 2,
    }

    pub const fn page_state_request(gfn: u64, state: PageState) -> u64 {
        ((state as u64) << 52) | ((gfn & 0xff_ffff_ffff) << 12) | PAGE_STATE_REQUEST
    }

    pub const fn terminate_request(reason_set: u8, reason: u8) -> u64 {
        ((reason as u64) << 16) | (((reason_set as u64) & 0xf) << 12) | TERMINATE_REQUEST
    }

    /// (min, max protocol version, C-bit position) of a SEV information response.
    pub const fn sev_info(v: u64) -> Option<(u16, u16, u8)> {
        if info(v) == SEV_INFO_RESPONSE {
            Some(((v >> 32) as u16, (v >> 48) as u16, (v >> 24) as u8))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::msr_protocol::*;
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn page_offsets_match_the_specification() {
        let expected = [
            (offset_of!(Ghcb, cpl), 0x0cb),
            (offset_of!(Ghcb, xss), 0x140),
            (offset_of!(Ghcb, dr7), 0x160),
            (offset_of!(Ghcb, rip), 0x178),
            (offset_of!(Ghcb, rsp), 0x1d8),
            (offset_of!(Ghcb, rax), 0x1f8),
            (offset_of!(Ghcb, rcx), 0x308),
            (offset_of!(Ghcb, rdx), 0x310),
            (offset_of!(Ghcb, rbx), 0x318),
            (offset_of!(Ghcb, rbp), 0x328),
            (offset_of!(Ghcb, r8), 0x340),
            (offset_of!(Ghcb, r15), 0x378),
            (offset_of!(Ghcb, sw_exit_code), 0x390),
            (offset_of!(Ghcb, sw_exit_info_1), 0x398),
            (offset_of!(Ghcb, sw_exit_info_2), 0x3a0),
            (offset_of!(Ghcb, sw_scratch), 0x3a8),
            (offset_of!(Ghcb, xcr0), 0x3e8),
            (offset_of!(Ghcb, valid_bitmap), 0x3f0),
            (offset_of!(Ghcb, x87_state_gpa), 0x400),
            (offset_of!(Ghcb, shared_buffer), 0x800),
            (offset_of!(Ghcb, protocol_version), 0xffa),
            (offset_of!(Ghcb, ghcb_usage), 0xffc),
        ];
        for (got, want) in expected {
            assert_eq!(got, want, "offset {got:#x}, specification {want:#x}");
        }
        // The save-area registers sit where the VMSA has them.
        assert_eq!(offset_of!(Ghcb, rax), offset_of!(crate::vmsa::Vmsa, rax));
        assert_eq!(offset_of!(Ghcb, r15), offset_of!(crate::vmsa::Vmsa, r15));
    }

    #[test]
    fn valid_bitmap_marks_fields() {
        use zerocopy::FromZeros;
        let mut g = Ghcb::new_zeroed();
        g.mark_valid(offset_of!(Ghcb, rax));
        g.mark_valid(offset_of!(Ghcb, sw_exit_code));
        // rax: qword 0x3f = bit 7 of byte 7; sw_exit_code: qword 0x72 = bit 2 of byte 14.
        assert_eq!(g.valid_bitmap[7], 0x80);
        assert_eq!(g.valid_bitmap[14], 0x04);
        assert!(g.is_valid(offset_of!(Ghcb, rax)));
        assert!(!g.is_valid(offset_of!(Ghcb, rcx)));
        g.mark_valid(0x2000); // past the bitmap: ignored
        assert!(!g.is_valid(0x2000));
    }

    #[test]
    fn msr_protocol_encodings() {
        assert_eq!(
            cpuid_request(0x8000_001f, CpuidReg::Ebx),
            0x8000_001f_4000_0004
        );
        assert_eq!(
            cpuid_response(0x1234_5678_c000_0005, CpuidReg::Edx),
            Some(0x1234_5678)
        );
        assert_eq!(cpuid_response(0x1234_5678_c000_0005, CpuidReg::Eax), None);
        assert_eq!(register_ghcb_request(0x1234), 0x123_4012);
        assert_eq!(
            page_state_request(0xabcde, PageState::Shared),
            0x0020_0000_abcd_e014
        );
        assert_eq!(
            terminate_request(REASON_SET_GENERAL, REASON_SNP_UNSUPPORTED),
            0x2_0100
        );
        assert_eq!(terminate_request(1, 3), 0x3_1100);
        assert_eq!(sev_info(0x0002_0001_3300_0001), Some((1, 2, 0x33)));
        assert_eq!(sev_info(0x0002_0001_3300_0005), None);
    }
}
