//! Packaging a guest (e.g. the test guest) into the SVSM's IGVM file for the
//! native platform's AMD-V hosting: its ELF segments at their (identity)
//! addresses in guest memory, a page-table set that identity maps the first
//! GiB of guest-physical memory, and its boot VMSA in the SVSM page the
//! kernel loads it from (`svsm_bootdefs::guest`). All of it is page data,
//! so a launch digest covers it.

use crate::build::Pages;
use crate::elf::ElfImage;
use anyhow::{Result, bail};
use svsm_bootdefs::guest::*;
use svsm_bootdefs::layout::{LARGE_PAGE_SIZE, PAGE_SIZE, align_up};
use svsm_defs::cr::{Cr0, Cr4, Efer, RFlags};
use svsm_defs::desc::{KERNEL_CS, KERNEL_DS, SegmentDescriptor};
use svsm_defs::paging::PteFlags;
use svsm_defs::vmsa::{Vmsa, VmsaSegment};
use zerocopy::{FromZeros, IntoBytes};

/// The PAT value after reset.
const PAT_RESET: u64 = 0x0007_0406_0007_0406;

/// Writes the guest's segments, page tables and boot VMSA (running at
/// `vmpl`, the channel configuration's guest VMPL) into `pages`.
pub fn package(pages: &mut Pages, guest: &ElfImage, vmpl: u8) -> Result<()> {
    let (lo, hi) = guest.span();
    if guest.segments.is_empty() {
        bail!("guest ELF has no loadable segment");
    }
    if lo < GUEST_IMAGE_BASE || hi > GUEST_IMAGE_BASE + GUEST_IMAGE_MAX_SIZE {
        bail!(
            "guest ELF spans {lo:#x}..{hi:#x}, outside its image range {GUEST_IMAGE_BASE:#x}..{:#x}",
            GUEST_IMAGE_BASE + GUEST_IMAGE_MAX_SIZE
        );
    }
    if !(lo..hi).contains(&guest.entry) {
        bail!("guest entry {:#x} lies outside its segments", guest.entry);
    }
    for s in &guest.segments {
        pages.write(s.vaddr, &s.data, align_up(s.memsz, PAGE_SIZE));
    }
    write_page_tables(pages);
    pages.write(
        GUEST_VMSA_GPA,
        boot_vmsa(guest.entry, vmpl).as_bytes(),
        PAGE_SIZE,
    );
    Ok(())
}

/// PML4 -> PDPT -> PD of 2 MiB pages: guest-virtual = guest-physical over
/// `GUEST_IDENTITY_SIZE`. (SVSM memory in that range is simply absent from
/// the nested page tables.)
fn write_page_tables(pages: &mut Pages) {
    let table = (PteFlags::PRESENT | PteFlags::WRITABLE).bits();
    let pml4 = GUEST_PAGE_TABLES_GPA;
    let pdpt = pml4 + PAGE_SIZE;
    let pd = pdpt + PAGE_SIZE;
    pages.write(pml4, &(pdpt | table).to_le_bytes(), PAGE_SIZE);
    pages.write(pdpt, &(pd | table).to_le_bytes(), PAGE_SIZE);
    let entries: Vec<u8> = (0..GUEST_IDENTITY_SIZE / LARGE_PAGE_SIZE)
        .flat_map(|i| ((i * LARGE_PAGE_SIZE) | table | PteFlags::HUGE.bits()).to_le_bytes())
        .collect();
    pages.write(pd, &entries, PAGE_SIZE);
}

fn segment(selector: u16, d: SegmentDescriptor) -> VmsaSegment {
    VmsaSegment {
        selector,
        attrib: d.vmcb_attributes(),
        limit: 0xffff_ffff,
        base: 0,
    }
}

/// The boot vCPU's state: 64-bit mode, paging on the tables above,
/// RIP at the ELF entry, RSP at the guest stack (as after a call, so the
/// entry function sees a SysV-aligned stack), RDI = the command-line page,
/// RSI = the secrets page.
pub fn boot_vmsa(entry: u64, vmpl: u8) -> Vmsa {
    let mut v = Vmsa::new_zeroed();
    v.cs = segment(KERNEL_CS, SegmentDescriptor::CODE64);
    let data = segment(KERNEL_DS, SegmentDescriptor::DATA);
    (v.ds, v.es, v.ss, v.fs, v.gs) = (data, data, data, data, data);
    v.vmpl = vmpl;
    v.efer = (Efer::SVME | Efer::NXE | Efer::LMA | Efer::LME).bits();
    v.cr0 = (Cr0::PG | Cr0::WP | Cr0::NE | Cr0::ET | Cr0::MP | Cr0::PE).bits();
    v.cr3 = GUEST_PAGE_TABLES_GPA;
    v.cr4 = Cr4::PAE.bits();
    v.rflags = RFlags::RESERVED_1.bits();
    v.rip = entry;
    v.rsp = GUEST_STACK_TOP - 8;
    v.rdi = GUEST_CMDLINE_GPA;
    v.rsi = GUEST_SECRETS_GPA;
    v.g_pat = PAT_RESET;
    v.dr6 = 0xffff_0ff0;
    v.dr7 = 0x400;
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{Perms, Segment};

    fn image(vaddr: u64, entry: u64) -> ElfImage {
        ElfImage {
            entry,
            segments: vec![Segment {
                vaddr,
                memsz: 0x1800,
                data: vec![0x90; 0x10],
                perms: Perms {
                    read: true,
                    write: false,
                    exec: true,
                },
            }],
            functions: vec![],
            build_id: None,
            cfi: None,
        }
    }

    #[test]
    fn packages_segments_tables_and_vmsa() {
        let mut pages = Pages::default();
        package(
            &mut pages,
            &image(GUEST_IMAGE_BASE, GUEST_IMAGE_BASE + 4),
            2,
        )
        .unwrap();
        assert_eq!(pages.0[&GUEST_IMAGE_BASE][0], 0x90);
        assert!(
            pages.0.contains_key(&(GUEST_IMAGE_BASE + PAGE_SIZE)),
            "memsz is zero-filled"
        );
        let pd = &pages.0[&(GUEST_PAGE_TABLES_GPA + 2 * PAGE_SIZE)];
        let e1 = u64::from_le_bytes(pd[8..16].try_into().unwrap());
        assert_eq!(e1 & !0xfff, LARGE_PAGE_SIZE);
        assert_ne!(e1 & PteFlags::HUGE.bits(), 0);
        let vmsa = &pages.0[&GUEST_VMSA_GPA];
        let v = <Vmsa as zerocopy::FromBytes>::read_from_bytes(vmsa).unwrap();
        assert_eq!(v.rip, GUEST_IMAGE_BASE + 4);
        assert_eq!(v.vmpl, 2);
        assert_ne!(
            v.efer & Efer::SVME.bits(),
            0,
            "VMRUN needs EFER.SVME in the guest"
        );
        assert_eq!((v.rsp + 8) % 16, 0);
    }

    #[test]
    fn refuses_a_guest_outside_its_range() {
        let mut pages = Pages::default();
        let e = package(&mut pages, &image(0x0100_0000, 0x0100_0000), 1).unwrap_err();
        assert!(e.to_string().contains("outside its image range"), "{e}");
        let e = package(&mut pages, &image(GUEST_IMAGE_BASE, 0x10), 1).unwrap_err();
        assert!(e.to_string().contains("entry"), "{e}");
    }
}
