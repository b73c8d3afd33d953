//! Run-time page-table edits. The tables igvm-build built are adopted as they
//! are; every table page is reached through the direct map. Entries of
//! SVSM-owned pages carry the platform's encryption bit (the SNP C-bit;
//! nothing natively), set once at boot with `init`.

use crate::arch::x86::{flush_tlb_all, invlpg, read_cr3};
use spin::{Mutex, Once};
use svsm_bootdefs::layout::{PAGE_SIZE, phys_to_virt};
use svsm_defs::paging::{PageEncryption, index};
use svsm_defs::{PhysAddr, VirtAddr};

pub use svsm_defs::paging::PteFlags;

/// Leaf flags for kernel data (stacks, heap): present, writable, NX.
pub const DATA_RW: PteFlags = PteFlags::PRESENT
    .union(PteFlags::WRITABLE)
    .union(PteFlags::NO_EXECUTE);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    OutOfMemory,
    AlreadyMapped,
    /// The range is covered by a large page we do not split.
    LargePage,
}

static ENCRYPTION: Once<PageEncryption> = Once::new();
/// Serialises every table edit.
static EDIT: Mutex<()> = Mutex::new(());

/// Sets the platform's encryption bits for every later entry (once, at boot).
pub fn init(enc: PageEncryption) {
    ENCRYPTION.call_once(|| enc);
}

fn encryption() -> PageEncryption {
    *ENCRYPTION
        .get()
        .expect("paging::init runs before any page-table access")
}

fn root() -> u64 {
    encryption().strip(read_cr3())
}

/// The table page at physical address `pa`.
///
/// # Safety
/// `pa` is a page-table page of the active tables (reached from CR3), and
/// the caller holds `EDIT` when it writes through the result.
unsafe fn table(pa: u64) -> &'static mut [u64; 512] {
    // SAFETY: the caller's obligations; the direct map covers every table page.
    unsafe { &mut *(phys_to_virt(pa) as *mut [u64; 512]) }
}

/// Maps the 4 KiB page at `va` to `pa` with `flags` (plus the platform's
/// encryption bit). `alloc_table` returns a zeroed physical page for a
/// missing intermediate table.
///
/// # Safety
/// `va` lies in a range the caller reserved (nothing else maps it or holds
/// a reference into it), and the caller owns the frame `pa` exclusively.
pub unsafe fn map_page(
    va: VirtAddr,
    pa: PhysAddr,
    flags: PteFlags,
    alloc_table: &mut dyn FnMut() -> Option<PhysAddr>,
) -> Result<(), MapError> {
    let enc = encryption();
    let _edit = EDIT.lock();
    let va = va.as_u64();
    // SAFETY: CR3 names the active PML4; EDIT is held.
    let mut t = unsafe { table(root()) };
    for level in (1..4).rev() {
        let e = &mut t[index(va, level)];
        if *e & PteFlags::PRESENT.bits() == 0 {
            let new = alloc_table().ok_or(MapError::OutOfMemory)?.as_u64();
            // SAFETY: `new` is a fresh page that becomes a table right here.
            let fresh = unsafe { table(new) };
            fresh.fill(0);
            *e = new | enc.private_bits() | (PteFlags::PRESENT | PteFlags::WRITABLE).bits();
        } else if *e & PteFlags::HUGE.bits() != 0 {
            return Err(MapError::LargePage);
        }
        // SAFETY: a present non-leaf entry names a table page; EDIT is held.
        t = unsafe { table(enc.strip(*e)) };
    }
    let e = &mut t[index(va, 0)];
    if *e & PteFlags::PRESENT.bits() != 0 {
        return Err(MapError::AlreadyMapped);
    }
    *e = enc.strip(pa.as_u64()) | enc.private_bits() | flags.bits();
    invlpg(va);
    Ok(())
}

/// Unmaps the 4 KiB page at `va`; returns the frame it mapped. Only this
/// CPU's TLB entry is dropped: before the frame or the address is reused,
/// the caller shoots down the other CPUs' entries (`cpu::tlb::shootdown`).
///
/// # Safety
/// Nothing references the page any more (the caller owns the range).
pub unsafe fn unmap_page(va: VirtAddr) -> Option<PhysAddr> {
    let enc = encryption();
    let _edit = EDIT.lock();
    let va = va.as_u64();
    // SAFETY: CR3 names the active PML4; EDIT is held.
    let mut t = unsafe { table(root()) };
    for level in (1..4).rev() {
        let e = t[index(va, level)];
        if e & PteFlags::PRESENT.bits() == 0 || e & PteFlags::HUGE.bits() != 0 {
            return None;
        }
        // SAFETY: a present non-leaf entry names a table page; EDIT is held.
        t = unsafe { table(enc.strip(e)) };
    }
    let e = &mut t[index(va, 0)];
    if *e & PteFlags::PRESENT.bits() == 0 {
        return None;
    }
    let pa = enc.strip(*e);
    *e = 0;
    invlpg(va);
    Some(PhysAddr::new(pa))
}

/// Translates `va` to (physical address, leaf flags). Reads only; safe on
/// fault paths (it takes no lock).
pub fn translate(va: VirtAddr) -> Option<(PhysAddr, PteFlags)> {
    svsm_defs::paging::translate(read_cr3(), va.as_u64(), encryption(), |t, i| {
        let entry = (phys_to_virt(t) as *const u64).wrapping_add(i);
        // SAFETY: the walk reads entries (i < 512) of table pages reached
        // from CR3, through the direct map; a volatile read takes no reference.
        Some(unsafe { entry.read_volatile() })
    })
    .map(|(pa, f)| (PhysAddr::new(pa), f))
}

/// Whether every byte of [va, va+len) is mapped.
pub fn is_mapped(va: VirtAddr, len: u64) -> bool {
    let mut p = va.align_down(PAGE_SIZE).as_u64();
    while p < va.as_u64().saturating_add(len) {
        if translate(VirtAddr::new(p)).is_none() {
            return false;
        }
        p += PAGE_SIZE;
    }
    true
}

/// Drops the low identity map that stage2 and the reset ROM needed.
///
/// # Safety
/// Nothing runs from or references the identity-mapped low memory any more.
pub unsafe fn drop_identity_map() {
    let _edit = EDIT.lock();
    // SAFETY: CR3 names the active PML4; EDIT is held.
    let pml4 = unsafe { table(root()) };
    pml4[0] = 0;
    flush_tlb_all();
}

/// Page tables an AP starts on: a PML4 with every entry of the active one
/// (the kernel, the direct map, the stacks) plus an identity mapping of the
/// page at `pa` (the AP start-up trampoline, executable). Returns the four
/// new table pages, the PML4 first; `free_ap_startup_tables` frees them.
pub fn ap_startup_tables(
    pa: u64,
    alloc_table: &mut dyn FnMut() -> Option<PhysAddr>,
) -> Result<[PhysAddr; 4], MapError> {
    let enc = encryption();
    let mut pages = [PhysAddr::new(0); 4];
    for p in pages.iter_mut() {
        *p = alloc_table().ok_or(MapError::OutOfMemory)?;
    }
    let _edit = EDIT.lock();
    // SAFETY: CR3 names the active PML4 and the new pages were just
    // allocated (zeroed) as tables for the AP; EDIT is held.
    let (active, new) = unsafe { (table(root()), table(pages[0].as_u64())) };
    new.copy_from_slice(active);
    let next = PteFlags::PRESENT | PteFlags::WRITABLE;
    let mut t = new;
    for level in (1..4).rev() {
        let child = pages[4 - level as usize].as_u64();
        t[index(pa, level)] = child | enc.private_bits() | next.bits();
        // SAFETY: `child` is one of the fresh table pages; EDIT is held.
        t = unsafe { table(child) };
    }
    t[index(pa, 0)] = enc.strip(pa) | enc.private_bits() | PteFlags::PRESENT.bits();
    Ok(pages)
}
