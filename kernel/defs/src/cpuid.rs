//! CPUID leaves the SVSM reads, and the SEV-SNP CPUID page (SNP firmware
//! ABI 56860, "CPUID Reporting"): the CPUID values
//! the PSP checked, provided to the guest at launch. Read as untrusted input.

use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Encrypted-memory capabilities: EAX feature bits, EBX[5:0] C-bit position.
pub const LEAF_SEV_INFO: u32 = 0x8000_001f;
/// EAX bits of `LEAF_SEV_INFO`.
pub const SEV_INFO_EAX_SEV: u32 = 1 << 1;
pub const SEV_INFO_EAX_SEV_ES: u32 = 1 << 3;
pub const SEV_INFO_EAX_SNP: u32 = 1 << 4;

/// The C-bit position from `LEAF_SEV_INFO` EBX.
pub const fn c_bit_position(ebx: u32) -> u32 {
    ebx & 0x3f
}

/// Maximum number of entries of the CPUID page.
pub const CPUID_PAGE_MAX_ENTRIES: usize = 64;

/// One CPUID function's result (48 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct CpuidEntry {
    pub eax_in: u32,
    pub ecx_in: u32,
    pub xcr0_in: u64,
    pub xss_in: u64,
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
    pub _reserved: u64,
}

/// The CPUID page (one 4 KiB page).
#[repr(C)]
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct CpuidPage {
    pub count: u32,
    pub _reserved_004: u32,
    pub _reserved_008: u64,
    pub entries: [CpuidEntry; CPUID_PAGE_MAX_ENTRIES],
    pub _reserved_c10: [u8; 1008],
}

const _: () = assert!(core::mem::size_of::<CpuidPage>() == 4096);

/// A CPUID page that does not hold what it claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuidPageError {
    /// `count` exceeds the 64 entries a page holds.
    TooManyEntries(u32),
}

impl fmt::Display for CpuidPageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyEntries(n) => write!(
                f,
                "CPUID page claims {n} entries, at most {CPUID_PAGE_MAX_ENTRIES} fit"
            ),
        }
    }
}

impl CpuidPage {
    /// The valid entries (the first `count`).
    pub fn valid_entries(&self) -> Result<&[CpuidEntry], CpuidPageError> {
        let n = self.count as usize;
        self.entries
            .get(..n)
            .ok_or(CpuidPageError::TooManyEntries(self.count))
    }

    /// The entry for (`eax_in`, `ecx_in`).
    pub fn find(&self, eax_in: u32, ecx_in: u32) -> Result<Option<&CpuidEntry>, CpuidPageError> {
        Ok(self
            .valid_entries()?
            .iter()
            .find(|e| e.eax_in == eax_in && e.ecx_in == ecx_in))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;
    use zerocopy::FromZeros;

    #[test]
    fn layout_matches_the_abi() {
        assert_eq!(core::mem::size_of::<CpuidEntry>(), 48);
        assert_eq!(offset_of!(CpuidEntry, xcr0_in), 0x08);
        assert_eq!(offset_of!(CpuidEntry, eax), 0x18);
        assert_eq!(offset_of!(CpuidEntry, edx), 0x24);
        assert_eq!(offset_of!(CpuidPage, entries), 0x10);
        assert_eq!(offset_of!(CpuidPage, _reserved_c10), 16 + 64 * 48);
    }

    #[test]
    fn lookup_and_count_check() {
        let mut p = CpuidPage::new_zeroed();
        p.entries[1] = CpuidEntry {
            eax_in: LEAF_SEV_INFO,
            ebx: 0x33,
            ..Default::default()
        };
        p.count = 1;
        assert_eq!(p.find(LEAF_SEV_INFO, 0), Ok(None), "entry 1 is past count");
        p.count = 2;
        let e = p.find(LEAF_SEV_INFO, 0).unwrap().unwrap();
        assert_eq!(c_bit_position(e.ebx), 51);
        p.count = 65;
        assert_eq!(p.find(0, 0), Err(CpuidPageError::TooManyEntries(65)));
    }
}
