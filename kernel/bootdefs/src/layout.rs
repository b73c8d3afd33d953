//! Guest-physical and virtual layout decided on the host by igvm-build.
//!
//! Physical (native platform):
//! ```text
//! 0x0000_8000  AP start-up trampoline (1 page, written by the kernel)
//! 0x0010_0000  boot-info page (BootInfo, written by igvm-build)
//! 0x0010_1000  SVSM configuration page: command line (page data, see `config`)
//! 0x0010_2000  MEMORY_MAP parameter area (1 page, filled by the loader)
//! 0x0010_4000  stage2 stack lower guard (unmapped)   STAGE2_GUARD_SIZE
//! 0x0010_8000  stage2 stack                          STAGE2_STACK_SIZE
//! 0x0010_c000  stage2 stack upper guard (unmapped)   STAGE2_GUARD_SIZE
//! 0x0011_0000  stage2 image (linked here, identity mapped)
//! 0x001f_d000  SNP only: GHCB page (shared, not in the launch digest)
//! 0x001f_e000  SNP only: CPUID page (filled by the VMM, checked by the firmware)
//! 0x001f_f000  SNP only: secrets page (written by the firmware)
//! 0x0100_0000  kernel region: page tables, kernel image, symbol table,
//!              boot stack, then free memory for the kernel page allocator
//! 0x0500_0000  end of the kernel region
//! ```
//! Virtual: the low 4 GiB are identity mapped for stage2 and the reset ROM
//! hand-off (the kernel drops that mapping); the kernel image is linked at
//! `KERNEL_VIRT_BASE`; all of guest-physical 0..4 GiB is direct mapped (NX) at
//! `DIRECT_MAP_BASE`; stacks live in the guarded stack area (see the guards crate).

pub const PAGE_SIZE: u64 = 4096;
pub const LARGE_PAGE_SIZE: u64 = 2 * 1024 * 1024;

/// The page application processors start in (real mode, SIPI vector
/// `AP_TRAMPOLINE_GPA >> 12`): it must lie below 1 MiB and outside the
/// legacy VGA/BIOS hole (0xA_0000..0x10_0000), in RAM that nothing else is
/// loaded into (igvm-build places no page data below `BOOT_INFO_GPA`; the
/// memory map reports 0..640 KiB as RAM). The kernel writes the trampoline
/// there through the direct map before each start-up.
pub const AP_TRAMPOLINE_GPA: u64 = 0x0000_8000;

pub const BOOT_INFO_GPA: u64 = 0x0010_0000;
/// The SVSM configuration page (`crate::config`), written by igvm-build.
pub const CONFIG_PAGE_GPA: u64 = 0x0010_1000;
pub const MEMORY_MAP_GPA: u64 = 0x0010_2000;
pub const MEMORY_MAP_SIZE: u64 = PAGE_SIZE;

pub const STAGE2_GUARD_SIZE: u64 = 0x4000;
pub const STAGE2_STACK_SIZE: u64 = 0x4000;
pub const STAGE2_STACK_BOTTOM: u64 = 0x0010_8000;
pub const STAGE2_STACK_TOP: u64 = STAGE2_STACK_BOTTOM + STAGE2_STACK_SIZE;
/// stage2 is linked (and loaded) here.
pub const STAGE2_BASE: u64 = 0x0011_0000;
/// Upper bound for stage2's flat image (checked by `make test`).
pub const STAGE2_MAX_SIZE: u64 = 8 * 1024;

/// SEV-SNP: the boot CPU's GHCB page. It is not part of the IGVM file (so
/// never validated: it is the hypervisor's), and igvm-build maps it shared
/// (no C-bit) at `SNP_GHCB_VIRT` in the SNP page tables.
pub const SNP_GHCB_GPA: u64 = 0x001f_d000;
/// SEV-SNP: where the kernel reaches its GHCB page (just below the kernel).
pub const SNP_GHCB_VIRT: u64 = KERNEL_VIRT_BASE - PAGE_SIZE;
/// SEV-SNP: the CPUID page (IGVM page data of type CPUID_DATA).
pub const SNP_CPUID_PAGE_GPA: u64 = 0x001f_e000;
/// SEV-SNP: the secrets page (IGVM page data of type SECRETS).
pub const SNP_SECRETS_PAGE_GPA: u64 = 0x001f_f000;
/// SEV-SNP: where KVM puts (and the launch digest records) the boot CPU's
/// VMSA; an IGVM file for KVM names this GPA in its SNP VP context.
pub const SNP_VMSA_GPA: u64 = 0xffff_ffff_f000;
/// SEV-SNP: the C-bit position the page tables are built for (CPUID
/// 0x8000_001F EBX[5:0] on every SNP part so far); the kernel checks it
/// against the CPUID page before trusting the tables.
pub const SNP_C_BIT: u32 = 51;

pub const KERNEL_REGION_START: u64 = 0x0100_0000;
pub const KERNEL_REGION_END: u64 = 0x0500_0000;

/// The kernel ELF is linked at this virtual address (top 2 GiB, code-model=kernel).
pub const KERNEL_VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
/// Direct map of guest-physical memory (NX, RW).
pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;
pub const DIRECT_MAP_SIZE: u64 = 4 << 30;
/// The identity map covering stage2 and the reset ROM (0 .. 4 GiB).
pub const IDENTITY_MAP_SIZE: u64 = 4 << 30;

/// Guest RAM the test/run configuration gives QEMU.
pub const DEFAULT_GUEST_RAM: u64 = 512 << 20;

/// The reset-vector ROM occupies the top of the 4 GiB space; the page tables
/// must map it executable, identity, for the hand-off to long mode.
pub const ROM_WINDOW_START: u64 = 0xffe0_0000;
pub const ROM_WINDOW_END: u64 = 0x1_0000_0000;

pub const fn align_up(v: u64, a: u64) -> u64 {
    (v + a - 1) & !(a - 1)
}

pub const fn align_down(v: u64, a: u64) -> u64 {
    v & !(a - 1)
}

/// Physical address -> direct-map virtual address.
pub const fn phys_to_virt(pa: u64) -> u64 {
    DIRECT_MAP_BASE + pa
}

// The regions must not overlap; checked at compile time.
const _: () = {
    assert!(AP_TRAMPOLINE_GPA.is_multiple_of(PAGE_SIZE));
    assert!(AP_TRAMPOLINE_GPA + PAGE_SIZE <= 0xa_0000);
    assert!(AP_TRAMPOLINE_GPA + PAGE_SIZE <= BOOT_INFO_GPA);
    assert!(MEMORY_MAP_GPA + MEMORY_MAP_SIZE <= STAGE2_STACK_BOTTOM - STAGE2_GUARD_SIZE);
    assert!(STAGE2_STACK_TOP + STAGE2_GUARD_SIZE <= STAGE2_BASE);
    assert!(STAGE2_BASE + STAGE2_MAX_SIZE <= SNP_GHCB_GPA);
    assert!(SNP_GHCB_GPA + PAGE_SIZE == SNP_CPUID_PAGE_GPA);
    assert!(SNP_CPUID_PAGE_GPA + PAGE_SIZE == SNP_SECRETS_PAGE_GPA);
    assert!(SNP_SECRETS_PAGE_GPA + PAGE_SIZE <= LARGE_PAGE_SIZE);
    assert!(LARGE_PAGE_SIZE <= KERNEL_REGION_START);
    assert!(KERNEL_REGION_END <= DEFAULT_GUEST_RAM);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_helpers() {
        assert_eq!(align_up(0x1001, PAGE_SIZE), 0x2000);
        assert_eq!(align_down(0x1fff, PAGE_SIZE), 0x1000);
    }
}
