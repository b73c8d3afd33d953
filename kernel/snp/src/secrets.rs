//! The SNP secrets page (SNP firmware ABI 56860, secrets page format) as
//! untrusted input, and the SVSM fields (0x140-0x15F) the SVSM fills for
//! the guest (SVSM specification: base, size, calling area, maximum
//! protocol version, guest VMPL). The page is copied once; the SVSM keeps
//! the VMPCKs, the guest's copy gets VMPCK0 cleared (the SVSM's key).

use svsm_defs::secrets::{SecretsPage, VMPCK_SIZE};

/// Secrets page versions this SVSM reads (2: SNP ABI 1.51+, 3: 1.55+).
pub const VERSIONS: core::ops::RangeInclusive<u32> = 2..=3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretsError {
    Version(u32),
    /// VMPCK `n` is all zeros: the firmware gave no key.
    EmptyVmpck(usize),
    /// The SVSM fields are not empty at launch (someone wrote them).
    SvsmAreaNotEmpty,
    /// SVSM base or size not page aligned, empty, or wrapping.
    SvsmRegion {
        base: u64,
        size: u64,
    },
    /// The calling area is not page aligned or lies in the SVSM's region.
    CallingArea(u64),
    /// A guest VMPL outside 1..=3.
    GuestVmpl(u8),
}

impl core::fmt::Display for SecretsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Version(v) => write!(f, "secrets page version {v} is not 2 or 3"),
            Self::EmptyVmpck(n) => write!(f, "secrets page VMPCK{n} is empty"),
            Self::SvsmAreaNotEmpty => write!(f, "secrets page SVSM fields are set at launch"),
            Self::SvsmRegion { base, size } => {
                write!(
                    f,
                    "SVSM region {base:#x}+{size:#x} is not a page-aligned range"
                )
            }
            Self::CallingArea(a) => write!(f, "calling area {a:#x} is unaligned or in the SVSM"),
            Self::GuestVmpl(v) => write!(f, "guest VMPL {v} is not 1, 2 or 3"),
        }
    }
}

/// What the SVSM keeps from the secrets page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvsmSecrets {
    pub version: u32,
    pub vmpck: [[u8; VMPCK_SIZE]; 4],
}

/// Checks a copy of the secrets page as the firmware hands it over.
pub fn check(page: &SecretsPage) -> Result<SvsmSecrets, SecretsError> {
    if !VERSIONS.contains(&page.version) {
        return Err(SecretsError::Version(page.version));
    }
    if let Some(n) = page.vmpck.iter().position(|k| k.iter().all(|&b| b == 0)) {
        return Err(SecretsError::EmptyVmpck(n));
    }
    if page.svsm_base != 0
        || page.svsm_size != 0
        || page.svsm_caa != 0
        || page.svsm_max_version != 0
        || page.svsm_guest_vmpl != 0
    {
        return Err(SecretsError::SvsmAreaNotEmpty);
    }
    Ok(SvsmSecrets {
        version: page.version,
        vmpck: page.vmpck,
    })
}

/// What the guest learns about the SVSM through its copy of the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SvsmFields {
    pub base: u64,
    pub size: u64,
    pub caa: u64,
    pub max_version: u32,
    pub guest_vmpl: u8,
}

/// The guest's copy: the SVSM fields filled (range-checked) and VMPCK0,
/// the SVSM's own key, cleared.
pub fn fill_for_guest(page: &mut SecretsPage, f: &SvsmFields) -> Result<(), SecretsError> {
    let aligned = |v: u64| v.is_multiple_of(0x1000);
    let end = f.base.checked_add(f.size);
    if !aligned(f.base) || !aligned(f.size) || f.size == 0 || end.is_none() {
        return Err(SecretsError::SvsmRegion {
            base: f.base,
            size: f.size,
        });
    }
    if !aligned(f.caa) || (f.base..end.unwrap_or(u64::MAX)).contains(&f.caa) {
        return Err(SecretsError::CallingArea(f.caa));
    }
    if !(1..=3).contains(&f.guest_vmpl) {
        return Err(SecretsError::GuestVmpl(f.guest_vmpl));
    }
    page.vmpck[0] = [0; VMPCK_SIZE];
    page.svsm_base = f.base;
    page.svsm_size = f.size;
    page.svsm_caa = f.caa;
    page.svsm_max_version = f.max_version;
    page.svsm_guest_vmpl = f.guest_vmpl;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::{FromZeros, IntoBytes};

    fn firmware_page() -> std::boxed::Box<SecretsPage> {
        let mut p = std::boxed::Box::new(SecretsPage::new_zeroed());
        p.version = 3;
        for (i, k) in p.vmpck.iter_mut().enumerate() {
            *k = [i as u8 + 1; VMPCK_SIZE];
        }
        p
    }

    const FIELDS: SvsmFields = SvsmFields {
        base: 0x100_0000,
        size: 0x400_0000,
        caa: 0x8000_0000,
        max_version: 1,
        guest_vmpl: 2,
    };

    #[test]
    fn a_firmware_page_is_kept_and_filled_for_the_guest() {
        let mut p = firmware_page();
        let s = check(&p).unwrap();
        assert_eq!(s.vmpck[0], [1; 32]);
        fill_for_guest(&mut p, &FIELDS).unwrap();
        let b = p.as_bytes();
        assert_eq!(&b[0x20..0x40], &[0; 32], "VMPCK0 cleared");
        assert_eq!(&b[0x40..0x60], &[2; 32], "VMPCK1 kept");
        assert_eq!(
            u64::from_le_bytes(b[0x140..0x148].try_into().unwrap()),
            0x100_0000
        );
        assert_eq!(
            u64::from_le_bytes(b[0x150..0x158].try_into().unwrap()),
            0x8000_0000
        );
        assert_eq!(b[0x15c], 2);
        // A filled page is no longer a launch page.
        assert_eq!(check(&p), Err(SecretsError::EmptyVmpck(0)));
    }

    #[test]
    fn bad_pages_are_refused_with_their_reason() {
        type Edit = fn(&mut SecretsPage);
        let cases: [(Edit, SecretsError); 4] = [
            (|p| p.version = 1, SecretsError::Version(1)),
            (|p| p.version = 4, SecretsError::Version(4)),
            (|p| p.vmpck[2] = [0; 32], SecretsError::EmptyVmpck(2)),
            (|p| p.svsm_guest_vmpl = 1, SecretsError::SvsmAreaNotEmpty),
        ];
        for (edit, want) in cases {
            let mut p = firmware_page();
            edit(&mut p);
            assert_eq!(check(&p), Err(want));
        }
    }

    #[test]
    fn svsm_fields_are_range_checked() {
        let cases = [
            (
                SvsmFields {
                    base: 0x100_0001,
                    ..FIELDS
                },
                SecretsError::SvsmRegion {
                    base: 0x100_0001,
                    size: 0x400_0000,
                },
            ),
            (
                SvsmFields { size: 0, ..FIELDS },
                SecretsError::SvsmRegion {
                    base: 0x100_0000,
                    size: 0,
                },
            ),
            (
                SvsmFields {
                    base: u64::MAX - 0xfff,
                    size: 0x2000,
                    ..FIELDS
                },
                SecretsError::SvsmRegion {
                    base: u64::MAX - 0xfff,
                    size: 0x2000,
                },
            ),
            (
                SvsmFields {
                    caa: 0x200_0000,
                    ..FIELDS
                },
                SecretsError::CallingArea(0x200_0000),
            ),
            (
                SvsmFields {
                    caa: 0x8000_0008,
                    ..FIELDS
                },
                SecretsError::CallingArea(0x8000_0008),
            ),
            (
                SvsmFields {
                    guest_vmpl: 0,
                    ..FIELDS
                },
                SecretsError::GuestVmpl(0),
            ),
            (
                SvsmFields {
                    guest_vmpl: 4,
                    ..FIELDS
                },
                SecretsError::GuestVmpl(4),
            ),
        ];
        for (f, want) in cases {
            let mut p = firmware_page();
            let before = p.as_bytes().to_vec();
            assert_eq!(fill_for_guest(&mut p, &f), Err(want));
            assert_eq!(p.as_bytes(), &before[..], "a refused fill changes nothing");
            assert!(!std::format!("{want}").is_empty());
        }
    }
}
