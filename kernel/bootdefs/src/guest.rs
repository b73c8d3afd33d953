//! The hosted guest's launch layout (native platform with AMD-V): where
//! igvm-build puts the guest and its boot state, and what the SVSM gives it.
//!
//! ```text
//! SVSM memory (never in the guest's nested page tables):
//! 0x0010_3000  GUEST_VMSA_GPA: the guest's boot VMSA (svsm_defs::vmsa::Vmsa),
//!              measured page data written by igvm-build when a guest is
//!              packaged; all zero (EFER.SVME clear) when none is
//! Guest memory (from KERNEL_REGION_END to the end of RAM):
//! 0x0500_0000  guest page tables: PML4, PDPT, PD (identity, 2 MiB pages, 0..1 GiB)
//! 0x0500_3000  secrets page: the SVSM fills its SVSM fields (0x140..0x15F)
//! 0x0500_4000  the boot vCPU's calling area
//! 0x0500_5000  the guest command line (NUL-terminated), copied in by the SVSM
//! 0x0501_0000  guest stack (64 KiB, grows down from GUEST_STACK_TOP)
//! 0x0520_0000  the guest image (ELF linked here, identity mapped)
//! 0x0600_0000  end of the memory validated at launch; the rest of RAM
//!              starts unvalidated (absent from the nested page tables)
//! ```
//! The boot VMSA's RSI holds `GUEST_SECRETS_GPA` and RDI `GUEST_CMDLINE_GPA`.

use crate::layout::{KERNEL_REGION_END, LARGE_PAGE_SIZE, MEMORY_MAP_GPA, MEMORY_MAP_SIZE};

pub const GUEST_VMSA_GPA: u64 = MEMORY_MAP_GPA + MEMORY_MAP_SIZE;
pub const GUEST_RAM_START: u64 = KERNEL_REGION_END;
pub const GUEST_PAGE_TABLES_GPA: u64 = GUEST_RAM_START;
pub const GUEST_PAGE_TABLE_PAGES: u64 = 3;
/// Bytes the guest's identity map covers (one page directory of 2 MiB pages).
pub const GUEST_IDENTITY_SIZE: u64 = 512 * LARGE_PAGE_SIZE;
pub const GUEST_SECRETS_GPA: u64 = GUEST_RAM_START + 0x3000;
pub const GUEST_CAA_GPA: u64 = GUEST_RAM_START + 0x4000;
pub const GUEST_CMDLINE_GPA: u64 = GUEST_RAM_START + 0x5000;
/// Bytes of the command-line page the SVSM copies (with its NUL).
pub const GUEST_CMDLINE_SIZE: u64 = 256;
pub const GUEST_STACK_BOTTOM: u64 = GUEST_RAM_START + 0x1_0000;
pub const GUEST_STACK_TOP: u64 = GUEST_STACK_BOTTOM + 0x1_0000;
pub const GUEST_IMAGE_BASE: u64 = GUEST_RAM_START + 0x20_0000;
/// Guest memory below this is validated (mapped) when the guest starts.
pub const GUEST_PREVALIDATED_END: u64 = GUEST_RAM_START + 0x100_0000;
/// Upper bound of the guest image.
pub const GUEST_IMAGE_MAX_SIZE: u64 = GUEST_PREVALIDATED_END - GUEST_IMAGE_BASE;

const _: () = {
    assert!(
        GUEST_VMSA_GPA + 0x1000
            <= crate::layout::STAGE2_STACK_BOTTOM - crate::layout::STAGE2_GUARD_SIZE
    );
    assert!(GUEST_PAGE_TABLES_GPA + GUEST_PAGE_TABLE_PAGES * 0x1000 <= GUEST_SECRETS_GPA);
    assert!(GUEST_CMDLINE_GPA + 0x1000 <= GUEST_STACK_BOTTOM);
    assert!(GUEST_STACK_TOP <= GUEST_IMAGE_BASE);
    assert!(GUEST_IMAGE_BASE.is_multiple_of(LARGE_PAGE_SIZE));
    assert!(GUEST_PREVALIDATED_END <= GUEST_IDENTITY_SIZE);
};
