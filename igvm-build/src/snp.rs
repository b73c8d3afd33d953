//! The SEV-SNP part of the IGVM file: the supported-platform header, the
//! guest policy, the CPUID and secrets pages and the boot CPU's VMSA, next
//! to the native part in the same file (one compatibility-mask bit each).
//!
//! KVM (through QEMU's loader) takes the VMSA only at `SNP_VMSA_GPA`, as the
//! last directive, and only with the fields it can set through its register
//! interface non-zero (`kvm_refusal`); the firmware measures it after all
//! pages, so a digest computed in directive order agrees with the hardware.

use crate::build::{Image, NATIVE_COMPAT_MASK};
use anyhow::{Result, anyhow};
use igvm::snp_defs::SevVmsa;
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader};
use igvm::{IgvmRevision, snp_defs};
use igvm_defs::{
    IGVM_VHS_SUPPORTED_PLATFORM, IgvmNativeVpContextX64, IgvmPageDataFlags, IgvmPageDataType,
    IgvmPlatformType, SnpPolicy,
};
use svsm_bootdefs::layout::*;
use svsm_defs::cpuid::{CpuidEntry, CpuidPage};
use svsm_defs::desc::SegmentDescriptor;
use svsm_defs::vmsa::{SevFeatures, Vmsa, VmsaSegment};
use svsm_snp::ap::{ApEntry, fill_vmsa};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// Compatibility mask of the SEV-SNP platform in the files we write.
pub const SNP_COMPAT_MASK: u32 = 2;

/// SEV features of the boot CPU: those of every SVSM vCPU.
pub const BOOT_SEV_FEATURES: SevFeatures = svsm_snp::ap::SVSM_SEV_FEATURES;

/// The guest policy (SNP firmware ABI, GUEST_POLICY): ABI 0.0 or later,
/// SMT allowed, the reserved bit 17 set, no debugging, no migration agent.
pub fn guest_policy() -> u64 {
    SnpPolicy::new().with_smt(1).into_bits()
}

/// The CPUID leaves the SVSM asks the firmware to fill (function, index).
/// The firmware checks and completes each entry; the kernel answers CPUID
/// from this page and refuses any other leaf.
pub const CPUID_LEAVES: [(u32, u32); 14] = [
    (0x0, 0),
    (0x1, 0),
    (0x7, 0),
    (0xb, 0),
    (0xb, 1),
    (0xd, 0),
    (0xd, 1),
    (0x8000_0000, 0),
    (0x8000_0001, 0),
    (0x8000_0007, 0),
    (0x8000_0008, 0),
    (0x8000_001e, 0),
    (0x8000_001f, 0),
    (0x8000_0021, 0),
];

/// The CPUID page template: the leaves, values left to the firmware.
pub fn cpuid_page() -> Vec<u8> {
    let mut p = CpuidPage::new_zeroed();
    for (e, &(eax_in, ecx_in)) in p.entries.iter_mut().zip(CPUID_LEAVES.iter()) {
        *e = CpuidEntry {
            eax_in,
            ecx_in,
            // XCR0 for leaf 0xD: x87 (bit 0) is always on.
            xcr0_in: u64::from(eax_in == 0xd),
            ..Default::default()
        };
    }
    p.count = CPUID_LEAVES.len() as u32;
    p.as_bytes().to_vec()
}

fn segment(selector: u16, d: SegmentDescriptor) -> VmsaSegment {
    VmsaSegment {
        selector,
        attrib: d.vmcb_attributes(),
        limit: 0xffff_ffff,
        base: 0,
    }
}

/// The boot CPU's VMSA: the same state as the native VP context (64-bit
/// mode on stage2's stack), written the way every SVSM vCPU's VMSA is
/// (`svsm_snp::ap::fill_vmsa`: EFER.SVME, the SEV features, the reset
/// values of PAT and the FPU), plus stage2's arguments.
pub fn boot_vmsa(ctx: &IgvmNativeVpContextX64) -> Vmsa {
    let mut v = Vmsa::new_zeroed();
    let entry = ApEntry {
        rip: ctx.rip,
        rsp: ctx.rsp,
        cr0: ctx.cr0,
        cr3: ctx.cr3,
        cr4: ctx.cr4,
        efer: ctx.efer,
        gdtr_base: ctx.gdtr_base,
        gdtr_limit: ctx.gdtr_limit,
        cs: segment(ctx.code_selector, SegmentDescriptor::CODE64),
        ds: segment(ctx.data_selector, SegmentDescriptor::DATA),
        sev_features: BOOT_SEV_FEATURES,
    };
    fill_vmsa(&mut v, &entry);
    v.idtr = VmsaSegment {
        limit: 0xffff,
        ..Default::default()
    };
    v.rflags = ctx.rflags;
    v.rdi = ctx.rdi;
    // stage2 learns its platform from RSI before it trusts the boot info
    // (native: 0, from the zeroed VP context).
    v.rsi = svsm_bootdefs::PlatformKind::Snp as u64;
    v
}

/// Why KVM would refuse `v` as an initial VMSA, if it would: it takes only
/// the state it can set through its register interface (segments and
/// descriptor tables, EFER, CR0/3/4, XCR0, DR6/7, the general registers,
/// RIP, RFLAGS, G_PAT, the x87 control word, MXCSR) plus SEV_FEATURES,
/// which must have SNP_ACTIVE. QEMU 10.2's `check_vmsa_supported` applies
/// the same list before it hands the VMSA to KVM.
pub fn kvm_refusal(gpa: u64, v: &Vmsa) -> Option<String> {
    if gpa != SNP_VMSA_GPA {
        return Some(format!(
            "the SNP VMSA is at {gpa:#x}; KVM takes it only at {SNP_VMSA_GPA:#x}"
        ));
    }
    if v.sev_features & SevFeatures::SNP_ACTIVE.bits() == 0 {
        return Some("the SNP VMSA's SEV features lack SNP_ACTIVE".into());
    }
    let mut rest = v.clone();
    let seg = VmsaSegment::default();
    for s in [
        &mut rest.es,
        &mut rest.cs,
        &mut rest.ss,
        &mut rest.ds,
        &mut rest.fs,
        &mut rest.gs,
        &mut rest.gdtr,
        &mut rest.idtr,
        &mut rest.ldtr,
        &mut rest.tr,
    ] {
        *s = seg;
    }
    for r in [
        &mut rest.efer,
        &mut rest.cr0,
        &mut rest.cr3,
        &mut rest.cr4,
        &mut rest.xcr0,
        &mut rest.dr6,
        &mut rest.dr7,
        &mut rest.rax,
        &mut rest.rcx,
        &mut rest.rdx,
        &mut rest.rbx,
        &mut rest.rsp,
        &mut rest.rbp,
        &mut rest.rsi,
        &mut rest.rdi,
        &mut rest.r8,
        &mut rest.r9,
        &mut rest.r10,
        &mut rest.r11,
        &mut rest.r12,
        &mut rest.r13,
        &mut rest.r14,
        &mut rest.r15,
        &mut rest.rip,
        &mut rest.rflags,
        &mut rest.g_pat,
        &mut rest.sev_features,
    ] {
        *r = 0;
    }
    rest.x87_fcw = 0;
    rest.mxcsr = 0;
    let bytes = rest.as_bytes();
    let first = bytes.iter().position(|&b| b != 0)?;
    Some(format!(
        "the SNP VMSA has state KVM cannot set at offset {first:#x}"
    ))
}

/// A copy of the IGVM file `bytes` with an SNP ID block for its SNP launch
/// digest and guest policy, signed with `key`, right before the VMSA (the
/// block is not measured, the VMSA stays last).
pub fn with_id_block(bytes: &[u8], key: &p384::ecdsa::SigningKey) -> Result<Vec<u8>> {
    let (ld, _) = crate::measure::snp_digest(bytes)?;
    let file = IgvmFile::new_from_binary(bytes, None).map_err(|e| anyhow!("igvm: {e}"))?;
    let mut d = file.directives().to_vec();
    let vmsa = d
        .pop()
        .ok_or_else(|| anyhow!("the IGVM file has no directives"))?;
    d.push(crate::idblock::directive(
        key,
        SNP_COMPAT_MASK,
        &ld,
        guest_policy(),
    ));
    d.push(vmsa);
    let out = IgvmFile::new(
        IgvmRevision::V1,
        file.platforms().to_vec(),
        file.initializations().to_vec(),
        d,
    )
    .map_err(|e| anyhow!("igvm: {e}"))?;
    let mut v = Vec::new();
    out.serialize(&mut v)
        .map_err(|e| anyhow!("igvm serialize: {e}"))?;
    Ok(v)
}

fn page(gpa: u64, mask: u32, data_type: IgvmPageDataType, data: Vec<u8>) -> IgvmDirectiveHeader {
    IgvmDirectiveHeader::PageData {
        gpa,
        compatibility_mask: mask,
        flags: IgvmPageDataFlags::new(),
        data_type,
        data,
    }
}

/// One IGVM file for the native and the SNP platform. Pages whose bytes
/// are the same on both platforms are one directive with both mask bits;
/// the SNP VMSA is the last directive.
pub fn to_igvm(native: &Image, snp: &Image) -> Result<IgvmFile> {
    const BOTH: u32 = NATIVE_COMPAT_MASK | SNP_COMPAT_MASK;
    let platform = |mask, platform_type| {
        IgvmPlatformHeader::SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM {
            compatibility_mask: mask,
            highest_vtl: 0,
            platform_type,
            platform_version: 1,
            shared_gpa_boundary: 0,
        })
    };
    let platforms = vec![
        platform(NATIVE_COMPAT_MASK, IgvmPlatformType::NATIVE),
        platform(SNP_COMPAT_MASK, IgvmPlatformType::SEV_SNP),
    ];
    let inits = vec![IgvmInitializationHeader::GuestPolicy {
        policy: guest_policy(),
        compatibility_mask: SNP_COMPAT_MASK,
    }];
    let mut d = Vec::new();
    let gpas: std::collections::BTreeSet<u64> = native
        .pages
        .0
        .keys()
        .chain(snp.pages.0.keys())
        .copied()
        .collect();
    for gpa in gpas {
        match (native.pages.0.get(&gpa), snp.pages.0.get(&gpa)) {
            (Some(a), Some(b)) if a == b => {
                d.push(page(gpa, BOTH, IgvmPageDataType::NORMAL, a.clone()))
            }
            (a, b) => {
                if let Some(a) = a {
                    d.push(page(
                        gpa,
                        NATIVE_COMPAT_MASK,
                        IgvmPageDataType::NORMAL,
                        a.clone(),
                    ));
                }
                if let Some(b) = b {
                    d.push(page(
                        gpa,
                        SNP_COMPAT_MASK,
                        IgvmPageDataType::NORMAL,
                        b.clone(),
                    ));
                }
            }
        }
    }
    d.push(page(
        SNP_CPUID_PAGE_GPA,
        SNP_COMPAT_MASK,
        IgvmPageDataType::CPUID_DATA,
        cpuid_page(),
    ));
    d.push(page(
        SNP_SECRETS_PAGE_GPA,
        SNP_COMPAT_MASK,
        IgvmPageDataType::SECRETS,
        vec![],
    ));
    // The memory map: filled by the loader, unmeasured on SNP.
    crate::build::memory_map_directives(&mut d, BOTH);
    d.push(IgvmDirectiveHeader::X64NativeVpContext {
        compatibility_mask: NATIVE_COMPAT_MASK,
        vp_index: 0,
        context: Box::new(native.vp_context),
    });
    let vmsa = boot_vmsa(&snp.vp_context);
    if let Some(why) = kvm_refusal(SNP_VMSA_GPA, &vmsa) {
        return Err(anyhow!("internal error: {why}"));
    }
    let vmsa: SevVmsa = snp_defs::SevVmsa::read_from_bytes(vmsa.as_bytes())
        .map_err(|_| anyhow!("internal error: VMSA size"))?;
    d.push(IgvmDirectiveHeader::SnpVpContext {
        gpa: SNP_VMSA_GPA,
        compatibility_mask: SNP_COMPAT_MASK,
        vp_index: 0,
        vmsa: Box::new(vmsa),
    });
    IgvmFile::new(IgvmRevision::V1, platforms, inits, d).map_err(|e| anyhow!("igvm: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::tests::{kernel, stage2};
    use crate::build::{assemble, assemble_for};
    use crate::paging::ADDR_MASK;
    use svsm_bootdefs::{BootInfo, PlatformKind};

    fn both() -> (Image, Image) {
        (
            assemble(&stage2(), &kernel(), "").unwrap(),
            assemble_for(&stage2(), &kernel(), "", PlatformKind::Snp).unwrap(),
        )
    }

    #[test]
    fn boot_vmsa_is_one_kvm_takes() {
        let (_, s) = both();
        let v = boot_vmsa(&s.vp_context);
        assert_eq!(kvm_refusal(SNP_VMSA_GPA, &v), None);
        assert_eq!(v.rip, STAGE2_BASE);
        assert_eq!(v.rsp, STAGE2_STACK_TOP);
        assert_eq!(v.rsi, PlatformKind::Snp as u64);
        assert_eq!(s.vp_context.rsi, PlatformKind::Native as u64);
        assert_eq!(v.cr3, s.boot_info.page_table_root);
        assert_ne!(v.efer & svsm_defs::cr::Efer::SVME.bits(), 0);
        assert_eq!(v.sev_features(), BOOT_SEV_FEATURES);
        assert_eq!(v.vmpl, 0);
        // Each refusal names its cause.
        assert!(kvm_refusal(0x1000, &v).unwrap().contains("only at"));
        let mut w = v.clone();
        w.sev_features = 0;
        assert!(
            kvm_refusal(SNP_VMSA_GPA, &w)
                .unwrap()
                .contains("SNP_ACTIVE")
        );
        let mut w = v.clone();
        w.cr2 = 1;
        assert!(
            kvm_refusal(SNP_VMSA_GPA, &w)
                .unwrap()
                .contains("offset 0x240")
        );
        let mut w = v.clone();
        w.vmpl = 1;
        assert!(
            kvm_refusal(SNP_VMSA_GPA, &w)
                .unwrap()
                .contains("offset 0xca")
        );
    }

    #[test]
    fn policy_and_cpuid_template() {
        // SMT allowed (bit 16) and the must-be-one bit 17; nothing else.
        assert_eq!(guest_policy(), 0x3_0000);
        let p = CpuidPage::read_from_bytes(&cpuid_page()).unwrap();
        assert_eq!(p.count as usize, CPUID_LEAVES.len());
        let sev = p.find(0x8000_001f, 0).unwrap().unwrap();
        assert_eq!((sev.eax, sev.ebx), (0, 0), "values are the firmware's");
        assert_eq!(p.find(0xd, 1).unwrap().unwrap().xcr0_in, 1);
    }

    #[test]
    fn snp_image_differs_only_in_tables_and_boot_info() {
        let (n, s) = both();
        // The SNP tables have the GHCB page's two extra table pages.
        let extra: Vec<u64> = s
            .pages
            .0
            .keys()
            .filter(|g| !n.pages.0.contains_key(g))
            .copied()
            .collect();
        assert_eq!(extra.len(), 2);
        assert!(
            extra
                .iter()
                .all(|g| (s.boot_info.page_table_start..s.boot_info.page_table_end).contains(g))
        );
        let bi =
            BootInfo::read_from_bytes(&s.pages.0[&BOOT_INFO_GPA][..size_of::<BootInfo>()]).unwrap();
        assert_eq!(bi.platform, PlatformKind::Snp as u32);
        let pt = n.boot_info.page_table_start..n.boot_info.page_table_end;
        for (gpa, data) in &n.pages.0 {
            let same = data == &s.pages.0[gpa];
            assert_eq!(
                same,
                !(pt.contains(gpa) || *gpa == BOOT_INFO_GPA),
                "page {gpa:#x}"
            );
        }
        // Every present entry of the SNP tables carries the C-bit, but the
        // GHCB page's: it is shared.
        let walk = |va| {
            svsm_defs::paging::translate(
                s.boot_info.page_table_root,
                va,
                svsm_defs::paging::PageEncryption::snp(SNP_C_BIT).unwrap(),
                |t, i| {
                    let p = s.pages.0.get(&t)?;
                    Some(u64::from_le_bytes(p[i * 8..i * 8 + 8].try_into().unwrap()))
                },
            )
        };
        let (ghcb_pa, _) = walk(SNP_GHCB_VIRT).unwrap();
        assert_eq!(ghcb_pa, SNP_GHCB_GPA);
        let (kernel_pa, _) = walk(KERNEL_VIRT_BASE).unwrap();
        assert_eq!(kernel_pa, s.layout.kernel_image_phys);
        assert!(!s.pages.0.contains_key(&SNP_GHCB_GPA), "not in the launch");
        for gpa in pt.step_by(PAGE_SIZE as usize) {
            for e in s.pages.0[&gpa].chunks(8) {
                let e = u64::from_le_bytes(e.try_into().unwrap());
                let shared = e & ADDR_MASK & !(1 << SNP_C_BIT) == SNP_GHCB_GPA;
                assert!(
                    e & 1 == 0 || (e & (1 << SNP_C_BIT) != 0) != shared,
                    "{gpa:#x}: {e:#x}"
                );
            }
        }
    }

    #[test]
    fn one_file_for_both_platforms_with_the_vmsa_last() {
        let (n, s) = both();
        let mut bytes = Vec::new();
        to_igvm(&n, &s).unwrap().serialize(&mut bytes).unwrap();
        let f = IgvmFile::new_from_binary(&bytes, None).unwrap();
        let types: Vec<_> = f
            .platforms()
            .iter()
            .map(|p| {
                let IgvmPlatformHeader::SupportedPlatform(sp) = p;
                (sp.platform_type, sp.compatibility_mask)
            })
            .collect();
        assert_eq!(
            types,
            [
                (IgvmPlatformType::NATIVE, NATIVE_COMPAT_MASK),
                (IgvmPlatformType::SEV_SNP, SNP_COMPAT_MASK)
            ]
        );
        assert!(matches!(
            f.directives().last(),
            Some(IgvmDirectiveHeader::SnpVpContext {
                gpa: SNP_VMSA_GPA,
                compatibility_mask: SNP_COMPAT_MASK,
                vp_index: 0,
                ..
            })
        ));
        let typed = |t: IgvmPageDataType| {
            f.directives()
                .iter()
                .filter(|d| matches!(d, IgvmDirectiveHeader::PageData { data_type, compatibility_mask: SNP_COMPAT_MASK, .. } if *data_type == t))
                .count()
        };
        assert_eq!(typed(IgvmPageDataType::CPUID_DATA), 1);
        assert_eq!(typed(IgvmPageDataType::SECRETS), 1);
        // Upstream QEMU handles every header type in it (it checks them
        // whatever the mask), and the adapter takes its native part.
        assert_eq!(
            crate::qemu::loaders::upstream_refusals(&bytes).unwrap(),
            Vec::<String>::new()
        );
        let plan = crate::qemu::plan::plan(&bytes, "", DEFAULT_GUEST_RAM).unwrap();
        assert_eq!(plan.context.rip, STAGE2_BASE);
        // One configuration page serves both platforms.
        assert_eq!(crate::configpage::config_pages(&bytes).unwrap().len(), 1);
    }
}
