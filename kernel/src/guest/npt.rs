//! The guest's nested page tables: 4 KiB leaves only, reached through the
//! direct map. A guest page is validated exactly when it is present here
//! (the native stand-in for the RMP's validated bit); SVSM memory is never
//! mapped: `map` refuses anything outside the guest's RAM range.

use crate::mm::frames;
use svsm_bootdefs::layout::{PAGE_SIZE, phys_to_virt};
use svsm_defs::paging::{PteFlags, index};

/// Table entries: the nested walk treats every access as a user access.
const TABLE: PteFlags = PteFlags::PRESENT
    .union(PteFlags::WRITABLE)
    .union(PteFlags::USER);
const ADDR: u64 = 0x000f_ffff_ffff_f000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NptError {
    /// The page is not guest RAM (SVSM memory, or beyond RAM).
    NotGuestMemory,
    OutOfMemory,
}

pub struct Npt {
    root: u64,
    /// Guest RAM: [start, end).
    start: u64,
    end: u64,
}

/// The table page at `pa`.
///
/// # Safety
/// `pa` is a table page of an `Npt` the caller holds mutably (or shared,
/// for reads only).
unsafe fn table(pa: u64) -> &'static mut [u64; 512] {
    // SAFETY: table pages come from the frame allocator and are only
    // reached through their `Npt`; the direct map covers them.
    unsafe { &mut *(phys_to_virt(pa) as *mut [u64; 512]) }
}

impl Npt {
    pub fn new(start: u64, end: u64) -> Result<Self, NptError> {
        let root = frames::alloc_frame().ok_or(NptError::OutOfMemory)?.as_u64();
        Ok(Self { root, start, end })
    }

    /// The host-physical root for `VmcbControl::n_cr3`.
    pub fn root(&self) -> u64 {
        self.root
    }

    pub fn is_guest_ram(&self, gpa: u64, len: u64) -> bool {
        gpa >= self.start && gpa.checked_add(len).is_some_and(|e| e <= self.end)
    }

    /// The leaf entry of `gpa`, creating missing tables when `create`.
    fn leaf(&mut self, gpa: u64, create: bool) -> Result<Option<&'static mut u64>, NptError> {
        // SAFETY: `root` is this table's root, held mutably.
        let mut t = unsafe { table(self.root) };
        for level in (1..4).rev() {
            let e = &mut t[index(gpa, level)];
            if *e & PteFlags::PRESENT.bits() == 0 {
                if !create {
                    return Ok(None);
                }
                let new = frames::alloc_frame().ok_or(NptError::OutOfMemory)?;
                *e = new.as_u64() | TABLE.bits();
            }
            // SAFETY: a present entry of this table names one of its pages.
            t = unsafe { table(*e & ADDR) };
        }
        Ok(Some(&mut t[index(gpa, 0)]))
    }

    /// Maps the guest page `gpa` (identity: guest-physical = host-physical),
    /// writable or read-only.
    pub fn map(&mut self, gpa: u64, writable: bool) -> Result<(), NptError> {
        let gpa = gpa & !(PAGE_SIZE - 1);
        if !self.is_guest_ram(gpa, PAGE_SIZE) {
            return Err(NptError::NotGuestMemory);
        }
        let mut flags = PteFlags::PRESENT | PteFlags::USER;
        if writable {
            flags |= PteFlags::WRITABLE;
        }
        let e = self.leaf(gpa, true)?.expect("created");
        *e = gpa | flags.bits();
        Ok(())
    }

    /// Unmaps `gpa`; whether it was mapped. The caller flushes the guest's
    /// TLB (TLB_CONTROL) before the guest runs again.
    pub fn unmap(&mut self, gpa: u64) -> bool {
        match self.leaf(gpa, false) {
            Ok(Some(e)) if *e & PteFlags::PRESENT.bits() != 0 => {
                *e = 0;
                true
            }
            _ => false,
        }
    }

    /// (mapped, writable) of `gpa`.
    pub fn state(&self, gpa: u64) -> (bool, bool) {
        let mut t: &[u64; 512] =
            // SAFETY: reads only, of this table's pages.
            unsafe { table(self.root) };
        for level in (1..4).rev() {
            let e = t[index(gpa, level)];
            if e & PteFlags::PRESENT.bits() == 0 {
                return (false, false);
            }
            // SAFETY: a present entry of this table names one of its pages.
            t = unsafe { table(e & ADDR) };
        }
        let e = t[index(gpa, 0)];
        (
            e & PteFlags::PRESENT.bits() != 0,
            e & PteFlags::WRITABLE.bits() != 0,
        )
    }
}
