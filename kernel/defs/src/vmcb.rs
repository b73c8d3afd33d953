//! The VMCB (AMD APM vol. 2, appendix B): one 4 KiB page, the control area
//! (table B-1) at offset 0 and the state save area from offset 0x400. The
//! save area is the first [`VMCB_SAVE_SIZE`] bytes of the VMSA
//! (`vmsa::Vmsa`, the same layout SEV-ES extends): a VMCB is built and read
//! as `VmcbControl` followed by that prefix of a `Vmsa`. The SEV-ES-only
//! fields beyond it (the general-purpose registers other than RAX and RSP)
//! are not part of a plain VMCB; the run loop keeps them itself. The IOIO
//! exit's EXITINFO1 is `crate::ioio`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Offset of the state save area in the VMCB page.
pub const VMCB_SAVE_OFFSET: usize = 0x400;
/// Bytes of the save area inside the VMCB page.
pub const VMCB_SAVE_SIZE: usize = 0x1000 - VMCB_SAVE_OFFSET;
/// Size of the I/O permission map (3 pages: one bit per port, plus one page).
pub const IOPM_SIZE: usize = 3 * 4096;
/// Size of the MSR permission map (2 pages: two bits per MSR).
pub const MSRPM_SIZE: usize = 2 * 4096;

/// The VMCB control area.
#[repr(C)]
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VmcbControl {
    /// Bits 15..0 intercept reads of CR0..CR15, bits 31..16 writes.
    pub intercept_cr: u32,
    /// Bits 15..0 intercept reads of DR0..DR15, bits 31..16 writes.
    pub intercept_dr: u32,
    /// Bit n intercepts exception vector n.
    pub intercept_exceptions: u32,
    /// `Intercept1` bits.
    pub intercept_misc1: u32,
    /// `Intercept2` bits.
    pub intercept_misc2: u32,
    pub intercept_misc3: u32,
    pub _reserved_018: [u8; 36],
    pub pause_filter_threshold: u16,
    pub pause_filter_count: u16,
    pub iopm_base_pa: u64,
    pub msrpm_base_pa: u64,
    pub tsc_offset: u64,
    pub guest_asid: u32,
    /// `TLB_CONTROL_*`.
    pub tlb_control: u8,
    pub _reserved_05d: [u8; 3],
    /// V_TPR, V_IRQ, ..., bit 24 V_INTR_MASKING.
    pub vintr: u64,
    pub interrupt_shadow: u64,
    pub exit_code: u64,
    pub exit_info_1: u64,
    pub exit_info_2: u64,
    pub exit_int_info: u64,
    /// Bit 0 enables nested paging.
    pub np_enable: u64,
    pub avic_apic_bar: u64,
    pub ghcb_gpa: u64,
    pub event_inj: u64,
    /// Nested page table root (host-physical PML4).
    pub n_cr3: u64,
    pub lbr_virtualization_enable: u64,
    pub vmcb_clean: u32,
    pub _reserved_0c4: u32,
    /// The next RIP (decode assists; never written by QEMU's emulation).
    pub next_rip: u64,
    pub bytes_fetched: u8,
    pub guest_instruction_bytes: [u8; 15],
    pub avic_backing_page: u64,
    pub _reserved_0e8: u64,
    pub avic_logical_table: u64,
    pub avic_physical_table: u64,
    pub _reserved_100: u64,
    pub vmsa_pa: u64,
    pub _reserved_110: [u8; 0x2f0],
}

const _: () = assert!(core::mem::size_of::<VmcbControl>() == VMCB_SAVE_OFFSET);

/// `VmcbControl::intercept_misc1` bits.
pub mod intercept1 {
    pub const INTR: u32 = 1 << 0;
    pub const NMI: u32 = 1 << 1;
    pub const SMI: u32 = 1 << 2;
    pub const INIT: u32 = 1 << 3;
    pub const CPUID: u32 = 1 << 18;
    pub const HLT: u32 = 1 << 24;
    pub const IOIO_PROT: u32 = 1 << 27;
    pub const MSR_PROT: u32 = 1 << 28;
    pub const SHUTDOWN: u32 = 1 << 31;
}

/// `VmcbControl::intercept_misc2` bits.
pub mod intercept2 {
    /// Must be set: VMRUN refuses a VMCB that does not intercept VMRUN.
    pub const VMRUN: u32 = 1 << 0;
    pub const VMMCALL: u32 = 1 << 1;
    pub const VMLOAD: u32 = 1 << 2;
    pub const VMSAVE: u32 = 1 << 3;
    pub const STGI: u32 = 1 << 4;
    pub const CLGI: u32 = 1 << 5;
    pub const SKINIT: u32 = 1 << 6;
    pub const XSETBV: u32 = 1 << 13;
}

/// `VmcbControl::tlb_control` values.
pub const TLB_CONTROL_DO_NOTHING: u8 = 0;
/// Flush the whole TLB (every ASID) on the next VMRUN.
pub const TLB_CONTROL_FLUSH_ALL: u8 = 1;
/// `VmcbControl::vintr` bit: virtual interrupt masking (the host's RFLAGS.IF
/// keeps controlling physical interrupts while the guest runs).
pub const V_INTR_MASKING: u64 = 1 << 24;
/// `VmcbControl::np_enable` bit 0.
pub const NP_ENABLE: u64 = 1 << 0;

/// #VMEXIT codes (APM vol. 2, appendix C).
pub mod exit {
    /// Exception vector n exits with `EXCP_BASE + n`.
    pub const EXCP_BASE: u64 = 0x40;
    pub const INTR: u64 = 0x60;
    pub const NMI: u64 = 0x61;
    pub const CPUID: u64 = 0x72;
    pub const HLT: u64 = 0x78;
    pub const IOIO: u64 = 0x7b;
    pub const MSR: u64 = 0x7c;
    pub const SHUTDOWN: u64 = 0x7f;
    pub const VMRUN: u64 = 0x80;
    pub const VMMCALL: u64 = 0x81;
    pub const NPF: u64 = 0x400;
    /// VMRUN found invalid guest state in the VMCB.
    pub const INVALID: u64 = u64::MAX;

    /// A short name for reports.
    pub fn name(code: u64) -> &'static str {
        match code {
            0x40..=0x5f => "exception",
            INTR => "INTR",
            NMI => "NMI",
            CPUID => "CPUID",
            HLT => "HLT",
            IOIO => "IOIO",
            MSR => "MSR",
            SHUTDOWN => "SHUTDOWN",
            VMRUN => "VMRUN",
            VMMCALL => "VMMCALL",
            NPF => "NPF",
            INVALID => "INVALID",
            _ => "other",
        }
    }
}

/// EXITINFO1 bits of a nested page fault (the #PF error-code layout).
pub mod npf {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const FETCH: u64 = 1 << 4;
    /// The fault hit the final guest-physical address (not a guest table walk).
    pub const FINAL_ADDRESS: u64 = 1 << 32;
    /// The fault hit while walking the guest's own page tables.
    pub const TABLE_WALK: u64 = 1 << 33;
}

/// Where the permission bits of MSR `msr` live in the MSR permission map:
/// (byte offset, bit of the read intercept; the write bit follows it), or
/// `None` for an MSR outside the three ranges the map covers (always
/// intercepted).
pub fn msrpm_position(msr: u32) -> Option<(usize, u8)> {
    let (base, first) = match msr {
        0x0000_0000..=0x0000_1fff => (0x000, 0x0000_0000),
        0xc000_0000..=0xc000_1fff => (0x800, 0xc000_0000),
        0xc001_0000..=0xc001_1fff => (0x1000, 0xc001_0000),
        _ => return None,
    };
    let bit = (msr - first) as usize * 2;
    Some((base + bit / 8, (bit % 8) as u8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn control_offsets_match_the_apm_table() {
        // (field offset, APM vol. 2 table B-1 offset)
        let expected = [
            (offset_of!(VmcbControl, intercept_exceptions), 0x008),
            (offset_of!(VmcbControl, intercept_misc1), 0x00c),
            (offset_of!(VmcbControl, intercept_misc2), 0x010),
            (offset_of!(VmcbControl, pause_filter_threshold), 0x03c),
            (offset_of!(VmcbControl, iopm_base_pa), 0x040),
            (offset_of!(VmcbControl, msrpm_base_pa), 0x048),
            (offset_of!(VmcbControl, tsc_offset), 0x050),
            (offset_of!(VmcbControl, guest_asid), 0x058),
            (offset_of!(VmcbControl, tlb_control), 0x05c),
            (offset_of!(VmcbControl, vintr), 0x060),
            (offset_of!(VmcbControl, interrupt_shadow), 0x068),
            (offset_of!(VmcbControl, exit_code), 0x070),
            (offset_of!(VmcbControl, exit_info_1), 0x078),
            (offset_of!(VmcbControl, exit_info_2), 0x080),
            (offset_of!(VmcbControl, exit_int_info), 0x088),
            (offset_of!(VmcbControl, np_enable), 0x090),
            (offset_of!(VmcbControl, ghcb_gpa), 0x0a0),
            (offset_of!(VmcbControl, event_inj), 0x0a8),
            (offset_of!(VmcbControl, n_cr3), 0x0b0),
            (offset_of!(VmcbControl, vmcb_clean), 0x0c0),
            (offset_of!(VmcbControl, next_rip), 0x0c8),
            (offset_of!(VmcbControl, bytes_fetched), 0x0d0),
            (offset_of!(VmcbControl, avic_backing_page), 0x0e0),
            (offset_of!(VmcbControl, avic_physical_table), 0x0f8),
            (offset_of!(VmcbControl, vmsa_pa), 0x108),
        ];
        for (got, want) in expected {
            assert_eq!(got, want, "offset {got:#x}, APM {want:#x}");
        }
    }

    #[test]
    fn the_plain_svm_save_area_fits_in_the_page() {
        use crate::vmsa::Vmsa;
        // Every field VMRUN loads on a non-SEV-ES guest lies inside the
        // VMCB page; the ES-only GPR block begins after it.
        assert!(offset_of!(Vmsa, last_excp_to) + 8 <= VMCB_SAVE_SIZE);
        assert!(offset_of!(Vmsa, g_pat) < VMCB_SAVE_SIZE);
        assert_eq!(VMCB_SAVE_OFFSET + VMCB_SAVE_SIZE, 4096);
    }

    #[test]
    fn msr_permission_positions() {
        assert_eq!(msrpm_position(0), Some((0, 0)));
        assert_eq!(msrpm_position(0x1b), Some((6, 6)));
        assert_eq!(msrpm_position(0xc000_0080), Some((0x800 + 0x20, 0)));
        // The GHCB MSR: 0x130 * 2 bits = byte 0x4c of the third range.
        assert_eq!(msrpm_position(0xc001_0130), Some((0x1000 + 0x4c, 0)));
        assert_eq!(msrpm_position(0xc001_1fff), Some((0x17ff, 6)));
        assert_eq!(msrpm_position(0x4000_0000), None);
    }
}
