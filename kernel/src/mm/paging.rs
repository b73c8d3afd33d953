//! Run-time page-table edits. The tables igvm-build built are adopted as they
//! are; every table page is reached through the direct map.

use crate::cpu;
use svsm_bootdefs::layout::{PAGE_SIZE, phys_to_virt};

use svsm_bootdefs::pagetable::{ADDR_MASK, HUGE, index};
pub use svsm_bootdefs::pagetable::{NO_EXECUTE, PRESENT, WRITABLE};

/// Leaf flags for kernel data (stacks, heap): present, writable, NX.
pub const DATA_RW: u64 = PRESENT | WRITABLE | NO_EXECUTE;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    OutOfMemory,
    AlreadyMapped,
    /// The range is covered by a large page we do not split.
    LargePage,
}

fn table(pa: u64) -> &'static mut [u64; 512] {
    // SAFETY: `pa` is a page-table page owned by the kernel; the direct map
    // covers it. Callers serialise table edits (single CPU, interrupts off).
    unsafe { &mut *(phys_to_virt(pa) as *mut [u64; 512]) }
}

/// Maps one 4 KiB page. `alloc_table` returns a zeroed physical page.
pub fn map_page(
    va: u64,
    pa: u64,
    flags: u64,
    alloc_table: &mut dyn FnMut() -> Option<u64>,
) -> Result<(), MapError> {
    let mut t = table(cpu::read_cr3() & ADDR_MASK);
    for level in (1..4).rev() {
        let e = &mut t[index(va, level)];
        if *e & PRESENT == 0 {
            let new = alloc_table().ok_or(MapError::OutOfMemory)?;
            table(new).fill(0);
            *e = new | PRESENT | WRITABLE;
        } else if *e & HUGE != 0 {
            return Err(MapError::LargePage);
        }
        let next = *e & ADDR_MASK;
        t = table(next);
    }
    let e = &mut t[index(va, 0)];
    if *e & PRESENT != 0 {
        return Err(MapError::AlreadyMapped);
    }
    *e = (pa & ADDR_MASK) | flags;
    cpu::invlpg(va);
    Ok(())
}

/// Unmaps one 4 KiB page; returns the physical address it mapped.
pub fn unmap_page(va: u64) -> Option<u64> {
    let mut t = table(cpu::read_cr3() & ADDR_MASK);
    for level in (1..4).rev() {
        let e = t[index(va, level)];
        if e & PRESENT == 0 || e & HUGE != 0 {
            return None;
        }
        t = table(e & ADDR_MASK);
    }
    let e = &mut t[index(va, 0)];
    if *e & PRESENT == 0 {
        return None;
    }
    let pa = *e & ADDR_MASK;
    *e = 0;
    cpu::invlpg(va);
    Some(pa)
}

/// Translates `va` to (physical address, leaf flags).
pub fn translate(va: u64) -> Option<(u64, u64)> {
    svsm_bootdefs::pagetable::translate(cpu::read_cr3(), va, |t, i| Some(table(t)[i]))
}

/// Whether every byte of [va, va+len) is mapped.
pub fn is_mapped(va: u64, len: u64) -> bool {
    let mut p = va & !(PAGE_SIZE - 1);
    while p < va.saturating_add(len) {
        if translate(p).is_none() {
            return false;
        }
        p += PAGE_SIZE;
    }
    true
}

/// Drops the low identity map that stage2 and the reset ROM needed.
pub fn drop_identity_map() {
    table(cpu::read_cr3() & ADDR_MASK)[0] = 0;
    cpu::flush_tlb_all();
}
