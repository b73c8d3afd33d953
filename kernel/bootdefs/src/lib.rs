//! The boot ABI between igvm-build (which does all layout work on the host),
//! stage2 and the kernel.
//!
//! Everything here is plain data and pure functions so that the host can
//! build, and unit-test, the exact layout the guest will see.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod channel;
pub mod config;
pub mod layout;
pub mod memmap;
pub mod symtab;

pub use igvm_defs::IGVM_VHS_MEMORY_MAP_ENTRY as MemoryMapEntry;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `BootInfo::magic`: "SVSMBOOT" little-endian.
pub const BOOT_INFO_MAGIC: u64 = u64::from_le_bytes(*b"SVSMBOOT");
/// Bumped whenever `BootInfo` changes shape.
pub const BOOT_INFO_VERSION: u32 = 2;

/// The platform the image was packaged for.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformKind {
    Native = 0,
    Snp = 1,
    Tdx = 2,
}

impl PlatformKind {
    pub fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(Self::Native),
            1 => Some(Self::Snp),
            2 => Some(Self::Tdx),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Snp => "snp",
            Self::Tdx => "tdx",
        }
    }
}

/// Written by igvm-build into the boot-info page (`layout::BOOT_INFO_GPA`),
/// handed by stage2 to the kernel in `rdi`. All addresses are 64-bit; "phys"
/// means guest-physical, "virt" means the kernel's virtual address space.
#[repr(C)]
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout, PartialEq, Eq)]
pub struct BootInfo {
    pub magic: u64,
    pub version: u32,
    /// A `PlatformKind` value.
    pub platform: u32,
    /// Guest-physical memory owned by the SVSM kernel: [start, end).
    pub kernel_region_start: u64,
    pub kernel_region_end: u64,
    /// Where the kernel image (all PT_LOAD segments, page aligned) lives.
    pub kernel_image_phys: u64,
    pub kernel_image_virt: u64,
    pub kernel_image_size: u64,
    /// The kernel ELF entry point (virtual).
    pub kernel_entry: u64,
    /// CR3 value (physical address of the PML4) built by igvm-build.
    pub page_table_root: u64,
    /// Page-table pages used by igvm-build: [start, end) physical.
    pub page_table_start: u64,
    pub page_table_end: u64,
    /// First physical byte of the kernel region not used by the image, the
    /// page tables, the symbol table or the boot stack; the kernel's page
    /// allocator owns [free_phys_start, kernel_region_end).
    pub free_phys_start: u64,
    /// Virtual base of the direct map of guest-physical memory.
    pub direct_map_base: u64,
    /// Size of the direct map in bytes (from physical 0).
    pub direct_map_size: u64,
    /// The kernel boot stack (virtual, guarded by unmapped pages on both sides).
    pub boot_stack_bottom: u64,
    pub boot_stack_top: u64,
    /// stage2's stack (identity mapped, guarded on both sides).
    pub stage2_stack_bottom: u64,
    pub stage2_stack_top: u64,
    /// The command line: NUL-terminated UTF-8 of at most `cmdline_size`
    /// bytes, inside the configuration page (`config`).
    pub cmdline_gpa: u64,
    pub cmdline_size: u64,
    /// IGVM MEMORY_MAP parameter area: `MemoryMapEntry` array, ended by a
    /// zero-page entry, filled by the loader.
    pub memory_map_gpa: u64,
    pub memory_map_size: u64,
    /// Compact kernel symbol table (see `symtab`), mapped read-only.
    pub symtab_virt: u64,
    pub symtab_size: u64,
    /// GNU build id of the kernel ELF (first 20 bytes, zero padded).
    pub build_id: [u8; 20],
    pub build_id_len: u32,
    /// Compact unwind table of the kernel (svsm-unwinder's `table` format),
    /// mapped read-only right after the symbol table; size 0 if absent.
    pub unwind_virt: u64,
    pub unwind_size: u64,
}

impl BootInfo {
    /// Checks magic and version; returns a static reason on mismatch.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.magic != BOOT_INFO_MAGIC {
            return Err("bad boot info magic");
        }
        if self.version != BOOT_INFO_VERSION {
            return Err("boot info version mismatch");
        }
        if PlatformKind::from_u32(self.platform).is_none() {
            return Err("unknown platform");
        }
        if self.kernel_region_start >= self.kernel_region_end
            || self.free_phys_start < self.kernel_region_start
            || self.free_phys_start > self.kernel_region_end
        {
            return Err("inconsistent kernel region");
        }
        Ok(())
    }

    pub fn build_id(&self) -> &[u8] {
        let n = (self.build_id_len as usize).min(self.build_id.len());
        &self.build_id[..n]
    }
}

/// isa-debug-exit port used for a clean shutdown (native/QEMU).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;

/// Values the kernel writes to isa-debug-exit. QEMU exits with `(v << 1) | 1`.
/// Exit status 0 from QEMU means a triple fault (with `-no-reboot`): always a failure.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// Normal shutdown / test passed (QEMU status 33).
    Success = 0x10,
    /// A named in-kernel test case failed (QEMU status 35).
    TestFailure = 0x11,
    /// Rust panic (QEMU status 37).
    Panic = 0x12,
    /// Unexpected CPU exception (QEMU status 39).
    Exception = 0x13,
    /// Stack overflow or underflow caught by a guard page (QEMU status 41).
    StackOverflow = 0x14,
    /// Bad boot info / configuration detected at boot (QEMU status 43).
    BootError = 0x15,
}

impl ExitCode {
    pub const ALL: [ExitCode; 6] = [
        ExitCode::Success,
        ExitCode::TestFailure,
        ExitCode::Panic,
        ExitCode::Exception,
        ExitCode::StackOverflow,
        ExitCode::BootError,
    ];

    /// The exit status QEMU reports for this code.
    pub const fn qemu_status(self) -> i32 {
        ((self as i32) << 1) | 1
    }

    pub fn from_qemu_status(status: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.qemu_status() == status)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::TestFailure => "test-failure",
            Self::Panic => "panic",
            Self::Exception => "exception",
            Self::StackOverflow => "stack-overflow",
            Self::BootError => "boot-error",
        }
    }
}

/// The kernel prints this line when it is fully up.
pub const READY_MARKER: &str = "SVSM: ready";

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn qemu_status_roundtrip() {
        for c in ExitCode::ALL {
            assert_eq!(ExitCode::from_qemu_status(c.qemu_status()), Some(c));
            assert_ne!(c.qemu_status(), 0);
        }
        assert_eq!(ExitCode::Success.qemu_status(), 33);
        assert_eq!(ExitCode::from_qemu_status(0), None);
    }

    #[test]
    fn boot_info_validate() {
        let mut bi = BootInfo::new_zeroed();
        assert!(bi.validate().is_err());
        bi.magic = BOOT_INFO_MAGIC;
        bi.version = BOOT_INFO_VERSION;
        bi.kernel_region_start = 0x100_0000;
        bi.kernel_region_end = 0x200_0000;
        bi.free_phys_start = 0x180_0000;
        assert_eq!(bi.validate(), Ok(()));
        bi.platform = 7;
        assert!(bi.validate().is_err());
    }
}
