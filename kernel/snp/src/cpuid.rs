//! The CPUID page (SNP firmware ABI 56860, CPUID page format) as untrusted
//! input: the firmware checked the values it let through, but the page is
//! the hypervisor's request, so its structure is checked here before the
//! SVSM answers CPUID from a copy of it (the #VC handler never reads guest
//! memory in place).

use svsm_defs::cpuid::{
    CPUID_PAGE_MAX_ENTRIES, CpuidEntry, CpuidPage, CpuidPageError, LEAF_SEV_INFO, SEV_INFO_EAX_SNP,
    c_bit_position,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuidCheckError {
    /// The count field is out of range.
    Page(CpuidPageError),
    /// Reserved bytes of the header or of entry `index` are not zero.
    ReservedNotZero(usize),
    /// Entry `index` repeats an earlier (function, index) pair.
    Duplicate(usize),
    /// A leaf the SVSM needs is absent.
    Missing(u32),
    /// Leaf 0x8000_001F does not report SEV-SNP.
    NoSnp,
    /// The C-bit the page reports differs from the one the page tables
    /// were built for.
    CBit { page: u32, expected: u32 },
}

impl core::fmt::Display for CpuidCheckError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Page(e) => write!(f, "{e}"),
            Self::ReservedNotZero(i) => write!(f, "CPUID page entry {i}: reserved bytes set"),
            Self::Duplicate(i) => write!(f, "CPUID page entry {i} repeats an earlier leaf"),
            Self::Missing(l) => write!(f, "CPUID page has no leaf {l:#x}"),
            Self::NoSnp => write!(f, "CPUID page leaf 0x8000001f does not report SEV-SNP"),
            Self::CBit { page, expected } => {
                write!(
                    f,
                    "CPUID page C-bit {page}, page tables built for {expected}"
                )
            }
        }
    }
}

/// Leaves whose ECX input selects a sub-leaf; for the others ECX is
/// ignored and the page holds them with ECX_IN 0.
const SUBLEAF_LEAVES: [u32; 11] = [
    0x4,
    0x7,
    0xb,
    0xd,
    0xf,
    0x10,
    0x12,
    0x14,
    0x1f,
    0x8000_001d,
    0x8000_0020,
];

/// Leaves the SVSM cannot run without.
pub const REQUIRED_LEAVES: [u32; 3] = [0x0, 0x1, LEAF_SEV_INFO];

/// A checked copy of the CPUID page's entries. It is filled in place
/// (`check_into`): a copy is 3 KiB, too much to move around on a stack.
#[derive(Clone, Debug)]
pub struct CheckedCpuid {
    entries: [CpuidEntry; CPUID_PAGE_MAX_ENTRIES],
    count: usize,
}

const EMPTY: CpuidEntry = CpuidEntry {
    eax_in: 0,
    ecx_in: 0,
    xcr0_in: 0,
    xss_in: 0,
    eax: 0,
    ebx: 0,
    ecx: 0,
    edx: 0,
    _reserved: 0,
};

impl Default for CheckedCpuid {
    fn default() -> Self {
        Self::new()
    }
}

impl CheckedCpuid {
    /// No entries: every lookup misses.
    pub const fn new() -> Self {
        Self {
            entries: [EMPTY; CPUID_PAGE_MAX_ENTRIES],
            count: 0,
        }
    }

    /// Checks `page` and copies its entries (host tests' convenience).
    #[cfg(test)]
    pub fn check(page: &CpuidPage, expected_c_bit: u32) -> Result<Self, CpuidCheckError> {
        let mut c = Self::new();
        c.check_into(page, expected_c_bit)?;
        Ok(c)
    }

    /// Checks `page` and copies its entries into `self`; on an error
    /// `self` is left empty.
    pub fn check_into(
        &mut self,
        page: &CpuidPage,
        expected_c_bit: u32,
    ) -> Result<(), CpuidCheckError> {
        self.count = 0;
        let valid = page.valid_entries().map_err(CpuidCheckError::Page)?;
        if page._reserved_004 != 0 || page._reserved_008 != 0 {
            return Err(CpuidCheckError::ReservedNotZero(0));
        }
        for (i, e) in valid.iter().enumerate() {
            if e._reserved != 0 {
                return Err(CpuidCheckError::ReservedNotZero(i));
            }
            if valid[..i]
                .iter()
                .any(|p| p.eax_in == e.eax_in && p.ecx_in == e.ecx_in && p.xcr0_in == e.xcr0_in)
            {
                return Err(CpuidCheckError::Duplicate(i));
            }
        }
        self.entries[..valid.len()].copy_from_slice(valid);
        self.count = valid.len();
        let r = self.check_contents(expected_c_bit);
        if r.is_err() {
            self.count = 0;
        }
        r
    }

    fn check_contents(&self, expected_c_bit: u32) -> Result<(), CpuidCheckError> {
        for leaf in REQUIRED_LEAVES {
            if self.lookup(leaf, 0).is_none() {
                return Err(CpuidCheckError::Missing(leaf));
            }
        }
        let sev = self.lookup(LEAF_SEV_INFO, 0).unwrap_or_default();
        if sev[0] & SEV_INFO_EAX_SNP == 0 {
            return Err(CpuidCheckError::NoSnp);
        }
        let page_c_bit = c_bit_position(sev[1]);
        if page_c_bit != expected_c_bit {
            return Err(CpuidCheckError::CBit {
                page: page_c_bit,
                expected: expected_c_bit,
            });
        }
        Ok(())
    }

    /// EAX, EBX, ECX, EDX of (leaf, subleaf), or `None` for a leaf the page
    /// does not hold. XSAVE-dependent leaves use the entry for XCR0 = x87
    /// only (the SVSM enables no other XSAVE state).
    pub fn lookup(&self, leaf: u32, subleaf: u32) -> Option<[u32; 4]> {
        let ecx = if SUBLEAF_LEAVES.contains(&leaf) {
            subleaf
        } else {
            0
        };
        self.entries[..self.count]
            .iter()
            .find(|e| e.eax_in == leaf && e.ecx_in == ecx)
            .map(|e| [e.eax, e.ebx, e.ecx, e.edx])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    fn entry(eax_in: u32, ecx_in: u32, out: [u32; 4]) -> CpuidEntry {
        CpuidEntry {
            eax_in,
            ecx_in,
            eax: out[0],
            ebx: out[1],
            ecx: out[2],
            edx: out[3],
            ..Default::default()
        }
    }

    fn good() -> CpuidPage {
        let mut p = CpuidPage::new_zeroed();
        p.entries[0] = entry(0, 0, [0xd, 0x6874_7541, 0x444d_4163, 0x6974_6e65]);
        p.entries[1] = entry(1, 0, [0xa10f11, 0, 0, 0]);
        p.entries[2] = entry(7, 0, [0, 0x219c_95a9, 0, 0]);
        p.entries[3] = entry(7, 1, [0x10, 0, 0, 0]);
        p.entries[4] = entry(LEAF_SEV_INFO, 0, [0x1_b, 0x1_33, 0, 0]);
        p.count = 5;
        p
    }

    #[test]
    fn a_good_page_answers_lookups() {
        let c = CheckedCpuid::check(&good(), 51).unwrap();
        assert_eq!(c.lookup(7, 1), Some([0x10, 0, 0, 0]));
        assert_eq!(c.lookup(7, 0).unwrap()[1], 0x219c_95a9);
        // ECX is ignored for leaves without sub-leaves.
        assert_eq!(c.lookup(1, 5), Some([0xa10f11, 0, 0, 0]));
        assert_eq!(c.lookup(0x4000_0000, 0), None);
        assert_eq!(c.lookup(7, 2), None);
    }

    #[test]
    fn bad_pages_are_refused_with_their_reason() {
        type Edit = fn(&mut CpuidPage);
        let cases: [(Edit, CpuidCheckError); 8] = [
            (
                |p| p.count = 65,
                CpuidCheckError::Page(CpuidPageError::TooManyEntries(65)),
            ),
            (|p| p._reserved_008 = 1, CpuidCheckError::ReservedNotZero(0)),
            (
                |p| p.entries[2]._reserved = 1,
                CpuidCheckError::ReservedNotZero(2),
            ),
            (|p| p.entries[3].ecx_in = 0, CpuidCheckError::Duplicate(3)),
            (|p| p.count = 4, CpuidCheckError::Missing(LEAF_SEV_INFO)),
            (|p| p.entries[1].eax_in = 2, CpuidCheckError::Missing(1)),
            (|p| p.entries[4].eax = 0xb, CpuidCheckError::NoSnp),
            (
                |p| p.entries[4].ebx = 0x2f,
                CpuidCheckError::CBit {
                    page: 47,
                    expected: 51,
                },
            ),
        ];
        for (edit, want) in cases {
            let mut p = good();
            edit(&mut p);
            let mut c = CheckedCpuid::check(&good(), 51).unwrap();
            let e = c.check_into(&p, 51).unwrap_err();
            assert_eq!(e, want);
            assert_eq!(c.lookup(0, 0), None, "a refused page leaves no entry");
            assert!(!std::format!("{e}").is_empty());
        }
    }
}
