//! The VM save area: the SVM state save area of the VMCB (AMD APM vol. 2,
//! appendix B, table B-2) extended to the SEV-ES/SEV-SNP VMSA page (table
//! B-4): general-purpose registers, SEV features and the FPU state follow
//! the fields the plain SVM save area already has, at the same offsets.
//! Offsets are checked below against the APM tables (and were compared with
//! Linux's `struct sev_es_save_area` and COCONUT-SVSM's `VMSA`).

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// One segment register as the save area holds it.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VmsaSegment {
    pub selector: u16,
    /// Access byte in bits 0..7, flags in bits 8..11
    /// (`desc::SegmentDescriptor::vmcb_attributes`).
    pub attrib: u16,
    pub limit: u32,
    pub base: u64,
}

bitflags! {
    /// SEV_FEATURES (VMSA offset 0x3B0; APM vol. 2, section 15.35).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct SevFeatures: u64 {
        const SNP_ACTIVE = 1 << 0;
        const VTOM = 1 << 1;
        const REFLECT_VC = 1 << 2;
        const RESTRICTED_INJECTION = 1 << 3;
        const ALTERNATE_INJECTION = 1 << 4;
        const DEBUG_SWAP = 1 << 5;
        const PREVENT_HOST_IBS = 1 << 6;
        const BTB_ISOLATION = 1 << 7;
        const VMPL_SSS = 1 << 8;
        const SECURE_TSC = 1 << 9;
    }
}

bitflags! {
    /// The SEV_STATUS MSR (`msr::SEV_STATUS`): which SEV features are active.
    /// From bit 2 on, bit n is SEV_FEATURES bit n - 2.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct SevStatus: u64 {
        const SEV = 1 << 0;
        const SEV_ES = 1 << 1;
        const SNP = 1 << 2;
        const VTOM = 1 << 3;
        const REFLECT_VC = 1 << 4;
        const RESTRICTED_INJECTION = 1 << 5;
        const ALTERNATE_INJECTION = 1 << 6;
        const DEBUG_SWAP = 1 << 7;
        const PREVENT_HOST_IBS = 1 << 8;
        const BTB_ISOLATION = 1 << 9;
        const VMPL_SSS = 1 << 10;
        const SECURE_TSC = 1 << 11;
        const _ = !0;
    }
}

/// The SEV-SNP VM save area: one 4 KiB page.
#[repr(C)]
#[derive(Clone, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Vmsa {
    pub es: VmsaSegment,
    pub cs: VmsaSegment,
    pub ss: VmsaSegment,
    pub ds: VmsaSegment,
    pub fs: VmsaSegment,
    pub gs: VmsaSegment,
    pub gdtr: VmsaSegment,
    pub ldtr: VmsaSegment,
    pub idtr: VmsaSegment,
    pub tr: VmsaSegment,
    pub pl0_ssp: u64,
    pub pl1_ssp: u64,
    pub pl2_ssp: u64,
    pub pl3_ssp: u64,
    pub u_cet: u64,
    pub _reserved_0c8: [u8; 2],
    /// The VMPL this VMSA runs at (SNP).
    pub vmpl: u8,
    pub cpl: u8,
    pub _reserved_0cc: u32,
    pub efer: u64,
    pub _reserved_0d8: [u8; 104],
    pub xss: u64,
    pub cr4: u64,
    pub cr3: u64,
    pub cr0: u64,
    pub dr7: u64,
    pub dr6: u64,
    pub rflags: u64,
    pub rip: u64,
    pub dr0: u64,
    pub dr1: u64,
    pub dr2: u64,
    pub dr3: u64,
    pub dr0_addr_mask: u64,
    pub dr1_addr_mask: u64,
    pub dr2_addr_mask: u64,
    pub dr3_addr_mask: u64,
    pub _reserved_1c0: [u8; 24],
    pub rsp: u64,
    pub s_cet: u64,
    pub ssp: u64,
    pub isst_addr: u64,
    pub rax: u64,
    pub star: u64,
    pub lstar: u64,
    pub cstar: u64,
    pub sfmask: u64,
    pub kernel_gs_base: u64,
    pub sysenter_cs: u64,
    pub sysenter_esp: u64,
    pub sysenter_eip: u64,
    pub cr2: u64,
    pub _reserved_248: [u8; 32],
    pub g_pat: u64,
    pub dbgctl: u64,
    pub br_from: u64,
    pub br_to: u64,
    pub last_excp_from: u64,
    pub last_excp_to: u64,
    pub _reserved_298: [u8; 80],
    pub pkru: u32,
    pub tsc_aux: u32,
    pub tsc_scale: u64,
    pub tsc_offset: u64,
    pub reg_prot_nonce: u64,
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
    pub guest_exit_info_1: u64,
    pub guest_exit_info_2: u64,
    pub guest_exit_int_info: u64,
    pub guest_nrip: u64,
    /// `SevFeatures`.
    pub sev_features: u64,
    pub vintr_ctrl: u64,
    pub guest_exit_code: u64,
    pub virtual_tom: u64,
    pub tlb_id: u64,
    pub pcpu_id: u64,
    pub event_inj: u64,
    pub xcr0: u64,
    pub _reserved_3f0: [u8; 16],
    pub x87_dp: u64,
    pub mxcsr: u32,
    pub x87_ftw: u16,
    pub x87_fsw: u16,
    pub x87_fcw: u16,
    pub x87_fop: u16,
    pub x87_ds: u16,
    pub x87_cs: u16,
    pub x87_rip: u64,
    pub fpreg_x87: [u8; 80],
    pub fpreg_xmm: [u8; 256],
    pub fpreg_ymm: [u8; 256],
    pub _reserved_670: [u8; 2448],
}

/// Bytes of the SEV-ES save area proper (everything after it is reserved
/// here): the same size Linux checks `struct sev_es_save_area` against.
pub const SEV_ES_SAVE_AREA_SIZE: usize = 0x670;

const _: () = assert!(core::mem::size_of::<Vmsa>() == 4096);

impl Vmsa {
    pub fn sev_features(&self) -> SevFeatures {
        SevFeatures::from_bits_retain(self.sev_features)
    }

    /// The checks the SVSM protocol's CREATE_VCPU makes on a guest-supplied
    /// VMSA (a copy of it): the VMSA runs at the guest's VMPL, has EFER.SVME
    /// set and the caller's SEV features, and neither it nor the calling
    /// area overlaps the other (both are page-aligned pages).
    pub fn check_new_vcpu(
        &self,
        vmsa_gpa: u64,
        caa_gpa: u64,
        guest_vmpl: u8,
        caller_features: SevFeatures,
    ) -> Result<(), VmsaCheckError> {
        if !vmsa_gpa.is_multiple_of(crate::PAGE_SIZE) || !caa_gpa.is_multiple_of(crate::PAGE_SIZE) {
            return Err(VmsaCheckError::Unaligned);
        }
        if vmsa_gpa == caa_gpa {
            return Err(VmsaCheckError::OverlapsCallingArea);
        }
        if self.vmpl != guest_vmpl {
            return Err(VmsaCheckError::WrongVmpl(self.vmpl));
        }
        if self.efer & crate::cr::Efer::SVME.bits() == 0 {
            return Err(VmsaCheckError::SvmeClear);
        }
        if self.sev_features != caller_features.bits() {
            return Err(VmsaCheckError::SevFeatures(self.sev_features));
        }
        Ok(())
    }
}

/// Why a VMSA was refused for a new vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmsaCheckError {
    /// The VMSA or the calling area is not page aligned.
    Unaligned,
    /// The VMSA and the calling area are the same page.
    OverlapsCallingArea,
    /// The VMSA's VMPL is not the guest's.
    WrongVmpl(u8),
    /// EFER.SVME is clear in the VMSA.
    SvmeClear,
    /// SEV_FEATURES differ from the caller's.
    SevFeatures(u64),
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;
    use zerocopy::FromZeros;

    #[test]
    fn offsets_match_the_apm_tables() {
        // (field offset, APM vol. 2 table B-4 offset)
        let expected = [
            (offset_of!(Vmsa, es), 0x000),
            (offset_of!(Vmsa, cs), 0x010),
            (offset_of!(Vmsa, gdtr), 0x060),
            (offset_of!(Vmsa, idtr), 0x080),
            (offset_of!(Vmsa, tr), 0x090),
            (offset_of!(Vmsa, pl0_ssp), 0x0a0),
            (offset_of!(Vmsa, u_cet), 0x0c0),
            (offset_of!(Vmsa, vmpl), 0x0ca),
            (offset_of!(Vmsa, cpl), 0x0cb),
            (offset_of!(Vmsa, efer), 0x0d0),
            (offset_of!(Vmsa, xss), 0x140),
            (offset_of!(Vmsa, cr4), 0x148),
            (offset_of!(Vmsa, cr3), 0x150),
            (offset_of!(Vmsa, cr0), 0x158),
            (offset_of!(Vmsa, dr7), 0x160),
            (offset_of!(Vmsa, rflags), 0x170),
            (offset_of!(Vmsa, rip), 0x178),
            (offset_of!(Vmsa, dr0), 0x180),
            (offset_of!(Vmsa, dr3_addr_mask), 0x1b8),
            (offset_of!(Vmsa, rsp), 0x1d8),
            (offset_of!(Vmsa, s_cet), 0x1e0),
            (offset_of!(Vmsa, rax), 0x1f8),
            (offset_of!(Vmsa, star), 0x200),
            (offset_of!(Vmsa, kernel_gs_base), 0x220),
            (offset_of!(Vmsa, cr2), 0x240),
            (offset_of!(Vmsa, g_pat), 0x268),
            (offset_of!(Vmsa, dbgctl), 0x270),
            (offset_of!(Vmsa, last_excp_to), 0x290),
            (offset_of!(Vmsa, pkru), 0x2e8),
            (offset_of!(Vmsa, tsc_aux), 0x2ec),
            (offset_of!(Vmsa, tsc_scale), 0x2f0),
            (offset_of!(Vmsa, tsc_offset), 0x2f8),
            (offset_of!(Vmsa, rcx), 0x308),
            (offset_of!(Vmsa, rdx), 0x310),
            (offset_of!(Vmsa, rbx), 0x318),
            (offset_of!(Vmsa, rbp), 0x328),
            (offset_of!(Vmsa, rsi), 0x330),
            (offset_of!(Vmsa, rdi), 0x338),
            (offset_of!(Vmsa, r8), 0x340),
            (offset_of!(Vmsa, r15), 0x378),
            (offset_of!(Vmsa, guest_exit_info_1), 0x390),
            (offset_of!(Vmsa, guest_exit_int_info), 0x3a0),
            (offset_of!(Vmsa, guest_nrip), 0x3a8),
            (offset_of!(Vmsa, sev_features), 0x3b0),
            (offset_of!(Vmsa, vintr_ctrl), 0x3b8),
            (offset_of!(Vmsa, guest_exit_code), 0x3c0),
            (offset_of!(Vmsa, virtual_tom), 0x3c8),
            (offset_of!(Vmsa, tlb_id), 0x3d0),
            (offset_of!(Vmsa, pcpu_id), 0x3d8),
            (offset_of!(Vmsa, event_inj), 0x3e0),
            (offset_of!(Vmsa, xcr0), 0x3e8),
            (offset_of!(Vmsa, x87_dp), 0x400),
            (offset_of!(Vmsa, mxcsr), 0x408),
            (offset_of!(Vmsa, x87_rip), 0x418),
            (offset_of!(Vmsa, fpreg_x87), 0x420),
            (offset_of!(Vmsa, fpreg_xmm), 0x470),
            (offset_of!(Vmsa, fpreg_ymm), 0x570),
            (offset_of!(Vmsa, _reserved_670), SEV_ES_SAVE_AREA_SIZE),
        ];
        for (i, (got, want)) in expected.iter().enumerate() {
            assert_eq!(got, want, "entry {i}: offset {got:#x}, APM {want:#x}");
        }
        assert_eq!(core::mem::size_of::<Vmsa>(), 4096);
        assert_eq!(core::mem::size_of::<VmsaSegment>(), 16);
    }

    #[test]
    fn reads_and_writes_through_bytes() {
        let mut page = [0u8; 4096];
        page[0x3b0] = 0x09; // SNP active + restricted injection
        page[0x0ca] = 1;
        page[0x178..0x180].copy_from_slice(&0xffff_fff0u64.to_le_bytes());
        let v = Vmsa::read_from_bytes(&page).unwrap();
        assert_eq!(v.vmpl, 1);
        assert_eq!(v.rip, 0xffff_fff0);
        assert_eq!(
            v.sev_features(),
            SevFeatures::SNP_ACTIVE | SevFeatures::RESTRICTED_INJECTION
        );
        let mut z = Vmsa::new_zeroed();
        z.efer = 0x1d00;
        assert_eq!(&z.as_bytes()[0xd0..0xd8], &0x1d00u64.to_le_bytes());
        assert!(Vmsa::read_from_bytes(&page[..4095]).is_err());
    }

    #[test]
    fn new_vcpu_checks() {
        let features = SevFeatures::SNP_ACTIVE | SevFeatures::ALTERNATE_INJECTION;
        let mut v = Vmsa::new_zeroed();
        v.vmpl = 1;
        v.efer = 0x1d00; // SVME | NXE | LMA | LME
        v.sev_features = features.bits();
        assert_eq!(v.check_new_vcpu(0x10_0000, 0x20_0000, 1, features), Ok(()));
        assert_eq!(
            v.check_new_vcpu(0x10_0000, 0x10_0000, 1, features),
            Err(VmsaCheckError::OverlapsCallingArea)
        );
        assert_eq!(
            v.check_new_vcpu(0x10_0800, 0x20_0000, 1, features),
            Err(VmsaCheckError::Unaligned)
        );
        assert_eq!(
            v.check_new_vcpu(0x10_0000, 0x20_0000, 2, features),
            Err(VmsaCheckError::WrongVmpl(1))
        );
        assert_eq!(
            v.check_new_vcpu(0x10_0000, 0x20_0000, 1, SevFeatures::SNP_ACTIVE),
            Err(VmsaCheckError::SevFeatures(features.bits()))
        );
        v.efer = 0xd00;
        assert_eq!(
            v.check_new_vcpu(0x10_0000, 0x20_0000, 1, features),
            Err(VmsaCheckError::SvmeClear)
        );
    }

    #[test]
    fn sev_status_bits_follow_sev_features() {
        assert_eq!(SevStatus::SNP.bits() >> 2, SevFeatures::SNP_ACTIVE.bits());
        assert_eq!(
            SevStatus::RESTRICTED_INJECTION.bits() >> 2,
            SevFeatures::RESTRICTED_INJECTION.bits()
        );
        assert_eq!(
            SevStatus::SECURE_TSC.bits() >> 2,
            SevFeatures::SECURE_TSC.bits()
        );
    }
}
