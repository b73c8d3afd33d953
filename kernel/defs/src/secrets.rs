//! The SEV-SNP secrets page (SNP firmware ABI 56860, "Secrets Page
//! Format"), with the SVSM fields at 0x140-0x15F that the SVSM
//! specification 58019 adds for the guest. Read as untrusted input.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const VMPCK_SIZE: usize = 32;

#[repr(C)]
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SecretsPage {
    pub version: u32,
    /// Bit 0: IMI_EN (the guest was launched by a migration agent).
    pub imien: u32,
    /// Family, model, stepping of the CPU.
    pub fms: u32,
    pub _reserved_00c: u32,
    pub gosvw: [u8; 16],
    /// VM platform communication keys, one per VMPL.
    pub vmpck: [[u8; VMPCK_SIZE]; 4],
    /// Area the guest OS may use for its own bookkeeping.
    pub os_area: [u8; 96],
    pub vmsa_tweak_bitmap: [u8; 64],
    pub svsm_base: u64,
    pub svsm_size: u64,
    /// GPA of the calling area of the boot vCPU.
    pub svsm_caa: u64,
    pub svsm_max_version: u32,
    pub svsm_guest_vmpl: u8,
    pub _reserved_15d: [u8; 3],
    pub tsc_factor: u32,
    pub _reserved_164: [u8; 3740],
}

const _: () = assert!(core::mem::size_of::<SecretsPage>() == 4096);

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn offsets_match_the_abi_tables() {
        let expected = [
            (offset_of!(SecretsPage, version), 0x000),
            (offset_of!(SecretsPage, imien), 0x004),
            (offset_of!(SecretsPage, fms), 0x008),
            (offset_of!(SecretsPage, gosvw), 0x010),
            (offset_of!(SecretsPage, vmpck), 0x020),
            (offset_of!(SecretsPage, os_area), 0x0a0),
            (offset_of!(SecretsPage, vmsa_tweak_bitmap), 0x100),
            (offset_of!(SecretsPage, svsm_base), 0x140),
            (offset_of!(SecretsPage, svsm_size), 0x148),
            (offset_of!(SecretsPage, svsm_caa), 0x150),
            (offset_of!(SecretsPage, svsm_max_version), 0x158),
            (offset_of!(SecretsPage, svsm_guest_vmpl), 0x15c),
            (offset_of!(SecretsPage, tsc_factor), 0x160),
        ];
        for (got, want) in expected {
            assert_eq!(got, want, "offset {got:#x}, ABI {want:#x}");
        }
    }

    #[test]
    fn vmpck_n_is_at_0x20_plus_32n() {
        let mut page = [0u8; 4096];
        page[0x60] = 0xaa; // VMPCK2
        page[0x15c] = 1;
        let s = SecretsPage::read_from_bytes(&page).unwrap();
        assert_eq!(s.vmpck[2][0], 0xaa);
        assert_eq!(s.svsm_guest_vmpl, 1);
    }
}
