//! The SVSM protocol's wire formats (AMD "Secure VM Service Module for
//! SEV-SNP Guests", 58019): the Calling Area, the result codes, the protocol
//! and call numbers, and the PVALIDATE list of the core protocol. Offsets and
//! values are checked below against the spec's tables (and were compared with
//! Linux's `struct svsm_ca` / `struct svsm_pvalidate_call` and COCONUT-SVSM).
//! The SVSM's fields in the secrets page are in [`crate::secrets`].

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The start of a Calling Area page: the flags the guest and the SVSM share.
/// The buffer follows at [`CA_BUFFER_OFFSET`].
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CallingAreaHeader {
    /// Set to 1 by the guest before it calls; cleared by the SVSM once the
    /// call has been handled.
    pub call_pending: u8,
    /// Set by the SVSM when it has memory the guest may withdraw.
    pub mem_available: u8,
    /// Reserved by the spec; COCONUT-SVSM's APIC protocol uses it for the
    /// lazy-EOI hint.
    pub no_eoi_required: u8,
    pub reserved: [u8; 5],
}

/// Offset of the Calling Area's buffer.
pub const CA_BUFFER_OFFSET: u64 = 8;
/// Size of the Calling Area's buffer (to the end of its page).
pub const CA_BUFFER_SIZE: u64 = crate::PAGE_SIZE - CA_BUFFER_OFFSET;

/// The SVSM result codes returned in RAX.
pub mod result {
    pub const SUCCESS: u64 = 0;
    pub const INCOMPLETE: u64 = 0x8000_0000;
    pub const UNSUPPORTED_PROTOCOL: u64 = 0x8000_0001;
    pub const UNSUPPORTED_CALL: u64 = 0x8000_0002;
    pub const INVALID_ADDRESS: u64 = 0x8000_0003;
    pub const INVALID_FORMAT: u64 = 0x8000_0004;
    pub const INVALID_PARAMETER: u64 = 0x8000_0005;
    pub const INVALID_REQUEST: u64 = 0x8000_0006;
    pub const BUSY: u64 = 0x8000_0007;
    /// Protocol-specific results are `PROTOCOL_BASE + n`.
    pub const PROTOCOL_BASE: u64 = 0x8000_1000;

    /// The core protocol's PVALIDATE failure with the PVALIDATE instruction's
    /// return code `rc` (e.g. 6, FAIL_SIZEMISMATCH: 0x8000_1006).
    pub const fn pvalidate_failure(rc: u32) -> u64 {
        PROTOCOL_BASE + rc as u64
    }
}

/// Protocol numbers (RAX bits 63:32).
pub mod protocol {
    pub const CORE: u32 = 0;
    pub const ATTESTATION: u32 = 1;
    pub const VTPM: u32 = 2;
    pub const APIC: u32 = 3;
}

/// The core protocol's call numbers (RAX bits 31:0).
pub mod core_call {
    pub const REMAP_CA: u32 = 0;
    pub const PVALIDATE: u32 = 1;
    pub const CREATE_VCPU: u32 = 2;
    pub const DELETE_VCPU: u32 = 3;
    pub const DEPOSIT_MEM: u32 = 4;
    pub const WITHDRAW_MEM: u32 = 5;
    pub const QUERY_PROTOCOL: u32 = 6;
    pub const CONFIGURE_VTOM: u32 = 7;
}

/// RAX of a call: `(protocol << 32) | call`.
pub const fn call_rax(protocol: u32, call: u32) -> u64 {
    ((protocol as u64) << 32) | call as u64
}

/// The PVALIDATE instruction's return codes (EAX) besides success (AMD APM
/// vol. 3, PVALIDATE), which the core protocol passes on as
/// [`result::pvalidate_failure`].
pub mod pvalidate_rc {
    pub const FAIL_INPUT: u32 = 1;
    pub const FAIL_SIZEMISMATCH: u32 = 6;
    /// Not an instruction code: PVALIDATE succeeded but left the page as it
    /// was (CF set), and the entry did not set ignore_cf. The SVSM reports
    /// it as 0x8000_1010 (COCONUT-SVSM's FAIL_UNCHANGED).
    pub const FAIL_UNCHANGED: u32 = 0x10;
}

/// The header of a PVALIDATE list (also the DEPOSIT_MEM and WITHDRAW_MEM
/// lists): `entries` u64 entries follow it; `next` is the first one not yet
/// processed, advanced by the SVSM as it works.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct PvalidateListHeader {
    pub entries: u16,
    pub next: u16,
    pub reserved: u32,
}

/// Offset of `PvalidateListHeader::next`, the field the SVSM writes back.
pub const PVALIDATE_NEXT_OFFSET: u64 = 2;
/// Bytes of a list header and of one entry.
pub const PVALIDATE_HEADER_SIZE: u64 = 8;
pub const PVALIDATE_ENTRY_SIZE: u64 = 8;

/// The most entries a list starting at page offset `offset` can hold: a list
/// never crosses the end of the page it starts in. A list in the Calling
/// Area's buffer (offset 8) holds [`CA_PVALIDATE_MAX_ENTRIES`].
pub const fn pvalidate_max_entries(offset: u64) -> u64 {
    let offset = offset % crate::PAGE_SIZE;
    (crate::PAGE_SIZE - offset).saturating_sub(PVALIDATE_HEADER_SIZE) / PVALIDATE_ENTRY_SIZE
}

/// Entries of a PVALIDATE list that fit in the Calling Area's buffer.
pub const CA_PVALIDATE_MAX_ENTRIES: u64 = pvalidate_max_entries(CA_BUFFER_OFFSET);

/// The page size field of a list entry (bits 1:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryPageSize {
    Size4K,
    Size2M,
}

impl EntryPageSize {
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4K => 0x1000,
            Self::Size2M => 0x20_0000,
        }
    }
}

/// One PVALIDATE list entry, decoded: bits 1:0 page size, bit 2 action
/// (1 = validate), bit 3 ignore_cf, bits 11:4 reserved (zero), bits 63:12
/// the page frame number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvalidateEntry {
    pub size: EntryPageSize,
    pub validate: bool,
    pub ignore_cf: bool,
    /// The page's guest-physical address (PFN << 12).
    pub gpa: u64,
}

/// Why a list entry is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// Page size field 2 or 3.
    BadSize(u8),
    /// Bits 11:4 are not zero.
    ReservedBits(u64),
}

const ENTRY_RESERVED: u64 = 0xff0;

impl PvalidateEntry {
    pub fn decode(raw: u64) -> Result<Self, EntryError> {
        let size = match raw & 3 {
            0 => EntryPageSize::Size4K,
            1 => EntryPageSize::Size2M,
            s => return Err(EntryError::BadSize(s as u8)),
        };
        if raw & ENTRY_RESERVED != 0 {
            return Err(EntryError::ReservedBits(raw & ENTRY_RESERVED));
        }
        Ok(Self {
            size,
            validate: raw & (1 << 2) != 0,
            ignore_cf: raw & (1 << 3) != 0,
            gpa: raw & !0xfff,
        })
    }

    pub fn encode(&self) -> u64 {
        let size = match self.size {
            EntryPageSize::Size4K => 0,
            EntryPageSize::Size2M => 1,
        };
        (self.gpa & !0xfff) | size | (self.validate as u64) << 2 | (self.ignore_cf as u64) << 3
    }
}

/// One DEPOSIT_MEM / WITHDRAW_MEM list entry: bits 1:0 page size, bits
/// 11:2 reserved (zero), bits 63:12 the page frame number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryEntry {
    pub size: EntryPageSize,
    pub gpa: u64,
}

const MEMORY_ENTRY_RESERVED: u64 = 0xffc;

impl MemoryEntry {
    pub fn decode(raw: u64) -> Result<Self, EntryError> {
        let size = match raw & 3 {
            0 => EntryPageSize::Size4K,
            1 => EntryPageSize::Size2M,
            s => return Err(EntryError::BadSize(s as u8)),
        };
        if raw & MEMORY_ENTRY_RESERVED != 0 {
            return Err(EntryError::ReservedBits(raw & MEMORY_ENTRY_RESERVED));
        }
        Ok(Self {
            size,
            gpa: raw & !0xfff,
        })
    }

    pub fn encode(&self) -> u64 {
        let size = match self.size {
            EntryPageSize::Size4K => 0,
            EntryPageSize::Size2M => 1,
        };
        (self.gpa & !0xfff) | size
    }
}

const _: () = {
    assert!(core::mem::size_of::<CallingAreaHeader>() == CA_BUFFER_OFFSET as usize);
    assert!(core::mem::size_of::<PvalidateListHeader>() == PVALIDATE_HEADER_SIZE as usize);
};

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn calling_area_layout() {
        assert_eq!(offset_of!(CallingAreaHeader, call_pending), 0);
        assert_eq!(offset_of!(CallingAreaHeader, mem_available), 1);
        assert_eq!(offset_of!(CallingAreaHeader, no_eoi_required), 2);
        assert_eq!(CA_BUFFER_SIZE, 4088);
    }

    #[test]
    fn result_codes_match_the_spec() {
        assert_eq!(result::INCOMPLETE, 0x8000_0000);
        assert_eq!(result::UNSUPPORTED_PROTOCOL, 0x8000_0001);
        assert_eq!(result::UNSUPPORTED_CALL, 0x8000_0002);
        assert_eq!(result::INVALID_ADDRESS, 0x8000_0003);
        assert_eq!(result::INVALID_FORMAT, 0x8000_0004);
        assert_eq!(result::INVALID_PARAMETER, 0x8000_0005);
        assert_eq!(result::INVALID_REQUEST, 0x8000_0006);
        assert_eq!(result::BUSY, 0x8000_0007);
        assert_eq!(
            result::pvalidate_failure(pvalidate_rc::FAIL_SIZEMISMATCH),
            0x8000_1006
        );
        assert_eq!(call_rax(protocol::APIC, 4), 0x3_0000_0004);
    }

    #[test]
    fn pvalidate_list_layout_and_capacity() {
        assert_eq!(offset_of!(PvalidateListHeader, entries), 0);
        assert_eq!(
            offset_of!(PvalidateListHeader, next),
            PVALIDATE_NEXT_OFFSET as usize
        );
        assert_eq!(offset_of!(PvalidateListHeader, reserved), 4);
        // Linux's SVSM_PVALIDATE_MAX_COUNT: (4088 - 8) / 8.
        assert_eq!(CA_PVALIDATE_MAX_ENTRIES, 510);
        assert_eq!(pvalidate_max_entries(0), 511);
        assert_eq!(pvalidate_max_entries(0xff0), 1);
        assert_eq!(pvalidate_max_entries(0x1ff8), 0);
        assert_eq!(pvalidate_max_entries(0xffc), 0);
    }

    #[test]
    fn entry_bits() {
        let e = PvalidateEntry::decode(0x1234_5000 | 1 | 4 | 8).unwrap();
        assert_eq!(
            e,
            PvalidateEntry {
                size: EntryPageSize::Size2M,
                validate: true,
                ignore_cf: true,
                gpa: 0x1234_5000
            }
        );
        assert_eq!(e.encode(), 0x1234_500d);
        let e = PvalidateEntry::decode(0xffff_ffff_ffff_f000).unwrap();
        assert_eq!(e.size, EntryPageSize::Size4K);
        assert!(!e.validate && !e.ignore_cf);
        assert_eq!(e.gpa, 0xffff_ffff_ffff_f000);
        assert_eq!(PvalidateEntry::decode(2), Err(EntryError::BadSize(2)));
        assert_eq!(PvalidateEntry::decode(3), Err(EntryError::BadSize(3)));
        assert_eq!(
            PvalidateEntry::decode(0x10),
            Err(EntryError::ReservedBits(0x10))
        );
        assert_eq!(
            PvalidateEntry::decode(0x800),
            Err(EntryError::ReservedBits(0x800))
        );
        assert_eq!(
            MemoryEntry::decode(0x5001).unwrap().size,
            EntryPageSize::Size2M
        );
        assert_eq!(
            MemoryEntry::decode(0x5004),
            Err(EntryError::ReservedBits(4))
        );
        assert_eq!(MemoryEntry::decode(0x5001).unwrap().encode(), 0x5001);
    }
}
