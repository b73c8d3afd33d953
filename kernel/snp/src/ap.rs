//! AP start-up through an SNP VMSA: the AP's initial state in a VMSA page
//! the SVSM owns, that page turned into a VMSA with RMPADJUST (the VMSA bit,
//! with VMPL1 as the target VMPL: RMPADJUST only acts on lower VMPLs), then
//! the hypervisor asked to run it (GHCB AP creation). A refused creation
//! turns the page back into a plain page, so it can be reused or freed.

use crate::ghcb::{GhcbError, GhcbPage};
use crate::hw::SnpHardware;
use crate::pvalidate::{RmpadjustError, rmpadjust};
use svsm_defs::cr::Efer;
use svsm_defs::vmsa::{SevFeatures, Vmsa, VmsaSegment};

/// The SEV features of every SVSM vCPU (the boot CPU's VMSA, which
/// igvm-build writes, and each AP's): SNP, and restricted injection (the
/// SVSM takes no event the hypervisor injects; start-up refuses to run
/// without it).
pub const SVSM_SEV_FEATURES: SevFeatures =
    SevFeatures::SNP_ACTIVE.union(SevFeatures::RESTRICTED_INJECTION);

/// The AP's 64-bit entry state (the same shape as the boot CPU's VMSA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApEntry {
    pub rip: u64,
    pub rsp: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub gdtr_base: u64,
    pub gdtr_limit: u16,
    pub cs: VmsaSegment,
    pub ds: VmsaSegment,
    pub sev_features: SevFeatures,
}

/// Writes the AP's initial state into `v` (a zeroed VMSA page): VMPL0,
/// EFER.SVME set, the architectural reset values of PAT and the FPU.
pub fn fill_vmsa(v: &mut Vmsa, e: &ApEntry) {
    v.cs = e.cs;
    for s in [&mut v.ds, &mut v.es, &mut v.ss, &mut v.fs, &mut v.gs] {
        *s = e.ds;
    }
    v.gdtr = VmsaSegment {
        limit: u32::from(e.gdtr_limit),
        base: e.gdtr_base,
        ..Default::default()
    };
    v.ldtr = VmsaSegment {
        attrib: 0x82,
        limit: 0xffff,
        ..Default::default()
    };
    v.tr = VmsaSegment {
        attrib: 0x8b,
        limit: 0xffff,
        ..Default::default()
    };
    v.vmpl = 0;
    v.efer = e.efer | Efer::SVME.bits();
    v.cr0 = e.cr0;
    v.cr3 = e.cr3;
    v.cr4 = e.cr4;
    v.rip = e.rip;
    v.rsp = e.rsp;
    v.rflags = 2;
    v.dr6 = 0xffff_0ff0;
    v.dr7 = 0x400;
    v.xcr0 = 1;
    v.g_pat = 0x0007_0406_0007_0406;
    v.mxcsr = 0x1f80;
    v.x87_fcw = 0x37f;
    v.sev_features = e.sev_features.bits();
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApError {
    /// RMPADJUST refused to make the page a VMSA.
    MakeVmsa(RmpadjustError),
    /// The hypervisor refused the creation (the page is a plain page again).
    Create(GhcbError),
    /// The creation failed and the page could not be turned back either: it
    /// stays a VMSA page and must not be reused.
    Stuck(GhcbError, RmpadjustError),
}

/// Starts the AP with `apic_id` on the VMSA page mapped at `vmsa_va`
/// (guest-physical `vmsa_gpa`), filled by `fill_vmsa`.
pub fn start<H: SnpHardware>(
    hw: &mut H,
    ghcb: &mut GhcbPage<'_>,
    apic_id: u32,
    vmsa_va: u64,
    vmsa_gpa: u64,
    sev_features: SevFeatures,
) -> Result<(), ApError> {
    rmpadjust(hw, vmsa_va, 1, 0, true).map_err(ApError::MakeVmsa)?;
    match ghcb.ap_create(hw, apic_id, vmsa_gpa, sev_features.bits(), false) {
        Ok(()) => Ok(()),
        Err(e) => match rmpadjust(hw, vmsa_va, 1, 0, false) {
            Ok(()) => Err(ApError::Create(e)),
            Err(r) => Err(ApError::Stuck(e, r)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{Event, FakeHw};
    use crate::hw::RmpPageSize;
    use std::boxed::Box;
    use svsm_defs::ghcb::Ghcb;
    use zerocopy::FromZeros;

    fn entry() -> ApEntry {
        ApEntry {
            rip: 0xffff_ffff_8000_1000,
            rsp: 0xffff_ff00_0010_0000,
            cr0: 0x8005_0033,
            cr3: 0x100_0000 | (1 << 51),
            cr4: 0x6a0,
            efer: 0xd00,
            gdtr_base: 0xffff_ffff_8010_0000,
            gdtr_limit: 0x37,
            cs: VmsaSegment {
                selector: 8,
                attrib: 0x29b,
                limit: 0xffff_ffff,
                base: 0,
            },
            ds: VmsaSegment {
                selector: 0x10,
                attrib: 0xc93,
                limit: 0xffff_ffff,
                base: 0,
            },
            sev_features: SevFeatures::SNP_ACTIVE | SevFeatures::RESTRICTED_INJECTION,
        }
    }

    #[test]
    fn the_vmsa_passes_the_create_vcpu_checks() {
        let mut v = Box::new(Vmsa::new_zeroed());
        fill_vmsa(&mut v, &entry());
        assert_eq!(v.efer, 0x1d00, "SVME added");
        assert_eq!(
            (v.rip, v.rsp, v.cr3),
            (entry().rip, entry().rsp, entry().cr3)
        );
        assert_eq!(v.ss, entry().ds);
        // The checks a VMSA for a new vCPU must pass (VMPL0, SVME, features).
        assert_eq!(
            v.check_new_vcpu(0x8_1000, 0x8_2000, 0, entry().sev_features),
            Ok(())
        );
    }

    #[test]
    fn start_makes_the_page_a_vmsa_then_creates_the_ap() {
        let mut hw = FakeHw::new();
        let seen = std::rc::Rc::new(core::cell::Cell::new((0u64, 0u64)));
        let s = seen.clone();
        hw.hypervisor = Box::new(move |g| {
            s.set((g.sw_exit_info_1, g.sw_exit_info_2));
            g.sw_exit_info_1 = 0;
        });
        let mut g = Box::new(Ghcb::new_zeroed());
        let mut page = GhcbPage {
            ghcb: &mut g,
            gpa: 0x7000,
        };
        let f = entry().sev_features;
        start(&mut hw, &mut page, 2, 0xffff_8000_0008_1000, 0x8_1000, f).unwrap();
        assert_eq!(
            hw.events[0],
            Event::Rmpadjust {
                va: 0xffff_8000_0008_1000,
                size: RmpPageSize::Size4K,
                attrs: 0x1_0001
            }
        );
        assert_eq!(g.sw_exit_code, 0x8000_0013);
        assert_eq!(seen.get(), ((2 << 32) | 1, 0x8_1000));
        assert_eq!(g.rax, f.bits());
    }

    #[test]
    fn a_refused_creation_turns_the_page_back() {
        let mut hw = FakeHw::new();
        hw.hypervisor = Box::new(|g| {
            g.sw_exit_info_1 = 2;
            g.sw_exit_info_2 = 2;
        });
        let mut g = Box::new(Ghcb::new_zeroed());
        let mut page = GhcbPage {
            ghcb: &mut g,
            gpa: 0x7000,
        };
        let f = entry().sev_features;
        assert_eq!(
            start(&mut hw, &mut page, 2, 0x5000, 0x8_1000, f),
            Err(ApError::Create(GhcbError::InvalidRequest(2)))
        );
        let adjust: std::vec::Vec<u64> = hw
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Rmpadjust { attrs, .. } => Some(*attrs),
                _ => None,
            })
            .collect();
        assert_eq!(adjust, [0x1_0001, 0x1], "VMSA bit set, then cleared");
        // RMPADJUST refusing the VMSA bit: no creation is requested.
        let mut hw = FakeHw::new();
        hw.rmpadjust = Box::new(|_, _, _| 2);
        assert_eq!(
            start(&mut hw, &mut page, 2, 0x5000, 0x8_1000, f),
            Err(ApError::MakeVmsa(RmpadjustError::FailPermission(0x5000)))
        );
        assert!(!hw.events.contains(&Event::Vmgexit { page: true }));
        // And when the page cannot be turned back, it is reported stuck.
        let mut hw = FakeHw::new();
        hw.hypervisor = Box::new(|g| g.sw_exit_info_1 = 2);
        hw.rmpadjust = Box::new(|_, _, attrs| if attrs & (1 << 16) != 0 { 0 } else { 6 });
        assert!(matches!(
            start(&mut hw, &mut page, 2, 0x5000, 0x8_1000, f),
            Err(ApError::Stuck(_, RmpadjustError::SizeMismatch(0x5000)))
        ));
    }
}
