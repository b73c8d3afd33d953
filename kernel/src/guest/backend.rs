//! The native platform's side of the core protocol (`svsm_protocol::
//! CoreBackend`): validation is tracked here and a page is in the guest's
//! nested page tables only while it is validated and the guest may use it
//! (a sealed VMSA page is mapped read-only, a deposited page not at all).
//! New vCPUs are recorded here and started by the run loop.

use super::npt::Npt;
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use spin::Mutex;
use svsm_bootdefs::layout::PAGE_SIZE;
use svsm_defs::svsm::{EntryPageSize, pvalidate_rc};
use svsm_defs::vmsa::{SevFeatures, Vmsa};
use svsm_protocol::{CallError, CoreBackend, GpaRange, PvalidateDone, VcpuId};

/// APIC IDs the guest may use: 0 (the boot vCPU) up to this bound.
pub const MAX_VCPUS: u32 = 4;
const PAGE_2M: u64 = 0x20_0000;

/// A guest vCPU as the backend knows it.
pub struct Slot {
    pub caa: u64,
    /// The VMSA page of a vCPU created by CREATE_VCPU.
    pub vmsa_gpa: Option<u64>,
    pub apic_id: u32,
    /// Its first state, until the run loop builds its VMCB.
    pub start: Option<Box<Vmsa>>,
    /// Deleted (DELETE_VCPU): the run loop drops its VMCB.
    pub deleted: bool,
}

/// Per-page state bits of guest RAM.
mod page {
    /// Validated as a 4 KiB page.
    pub const VALID_4K: u8 = 1 << 0;
    /// Part of a page validated as 2 MiB (every one of its 512 pages).
    pub const VALID_2M: u8 = 1 << 1;
    /// A VMSA page (read-only for the guest until DELETE_VCPU).
    pub const SEALED: u8 = 1 << 2;
    pub const VALID: u8 = VALID_4K | VALID_2M;
}

const PAGES_2M: usize = (PAGE_2M / PAGE_SIZE) as usize;

pub struct Shared {
    pub npt: Npt,
    /// First GPA of guest RAM; `pages[i]` is the state of the page at
    /// `start + i * 4 KiB` (one byte per page, no tree: O(1), no recursion).
    start: u64,
    pages: Vec<u8>,
    pub slots: Vec<Slot>,
    deposited: Vec<(u64, EntryPageSize)>,
    /// A guest translation was removed or narrowed: flush before VMRUN.
    pub flush: bool,
}

impl Shared {
    fn index(&self, gpa: u64) -> Option<usize> {
        let i = usize::try_from(gpa.checked_sub(self.start)? / PAGE_SIZE).ok()?;
        (i < self.pages.len()).then_some(i)
    }

    fn state(&self, gpa: u64) -> u8 {
        self.index(gpa).map_or(0, |i| self.pages[i])
    }

    /// Sets (`on`) or clears `bits` on every page of [gpa, gpa + size).
    fn mark(&mut self, gpa: u64, size: EntryPageSize, bits: u8, on: bool) {
        let Some(first) = self.index(gpa) else { return };
        let n = (size.bytes() / PAGE_SIZE) as usize;
        for p in self.pages[first..].iter_mut().take(n) {
            if on {
                *p |= bits;
            } else {
                *p &= !bits;
            }
        }
    }

    /// The validated page covering `gpa`.
    pub fn covering(&self, gpa: u64) -> Option<(u64, EntryPageSize)> {
        let st = self.state(gpa);
        if st & page::VALID_4K != 0 {
            Some((gpa & !(PAGE_SIZE - 1), EntryPageSize::Size4K))
        } else if st & page::VALID_2M != 0 {
            Some((gpa & !(PAGE_2M - 1), EntryPageSize::Size2M))
        } else {
            None
        }
    }

    pub fn is_sealed(&self, page: u64) -> bool {
        self.state(page) & page::SEALED != 0
    }

    fn set_access(&mut self, gpa: u64, size: EntryPageSize, access: Option<bool>) {
        for p in (gpa..gpa + size.bytes()).step_by(PAGE_SIZE as usize) {
            match access {
                Some(writable) => {
                    // Guest RAM was checked by the caller; cannot fail but
                    // for memory, which leaves the page inaccessible.
                    let _ = self.npt.map(p, writable);
                }
                None => {
                    self.npt.unmap(p);
                }
            }
        }
        self.flush = true;
    }

    fn is_caa(&self, gpa: u64) -> bool {
        self.slots.iter().any(|s| !s.deleted && s.caa == gpa)
    }

    /// The state PVALIDATE finds for a page of `size` at `gpa`: validated
    /// (as that size) or not, or a size mismatch (a 4 KiB request inside a
    /// 2 MiB page, a 2 MiB request over 4 KiB pages).
    fn pvalidate_current(&self, gpa: u64, size: EntryPageSize) -> Result<bool, ()> {
        match size {
            EntryPageSize::Size4K => match self.state(gpa) & page::VALID {
                0 => Ok(false),
                page::VALID_4K => Ok(true),
                _ => Err(()),
            },
            EntryPageSize::Size2M => {
                let Some(first) = self.index(gpa) else {
                    return Ok(false);
                };
                let range = &self.pages[first..(first + PAGES_2M).min(self.pages.len())];
                match range[0] & page::VALID {
                    page::VALID_2M => Ok(true),
                    0 if range.iter().all(|p| p & page::VALID == 0) => Ok(false),
                    _ => Err(()),
                }
            }
        }
    }
}

pub struct NativeBackend {
    pub shared: Mutex<Shared>,
    svsm: [GpaRange; 1],
    ram_end: u64,
    guest_vmpl: u8,
}

impl NativeBackend {
    /// Guest RAM is [svsm_end, ram_end); [prevalidated_start, end) starts
    /// validated (4 KiB pages) and mapped.
    pub fn new(
        npt: Npt,
        svsm_end: u64,
        ram_end: u64,
        prevalidated_end: u64,
        guest_vmpl: u8,
    ) -> Self {
        let count = (ram_end.saturating_sub(svsm_end) / PAGE_SIZE) as usize;
        let mut pages = vec![0u8; count];
        let pre = (prevalidated_end.saturating_sub(svsm_end) / PAGE_SIZE) as usize;
        pages[..pre.min(count)].fill(page::VALID_4K);
        Self {
            shared: Mutex::new(Shared {
                npt,
                start: svsm_end,
                pages,
                slots: Vec::new(),
                deposited: Vec::new(),
                flush: false,
            }),
            svsm: [GpaRange {
                start: 0,
                end: svsm_end,
            }],
            ram_end,
            guest_vmpl,
        }
    }

    fn in_ram(&self, gpa: u64, len: u64) -> bool {
        gpa >= self.svsm[0].end && gpa.checked_add(len).is_some_and(|e| e <= self.ram_end)
    }
}

impl CoreBackend for NativeBackend {
    fn guest_vmpl(&self) -> u8 {
        self.guest_vmpl
    }

    fn sev_features(&self, _vcpu: VcpuId) -> SevFeatures {
        // No SEV natively: every vCPU runs with none.
        SevFeatures::empty()
    }

    fn svsm_ranges(&self) -> &[GpaRange] {
        &self.svsm
    }

    fn pvalidate(
        &self,
        gpa: u64,
        size: EntryPageSize,
        validate: bool,
    ) -> Result<PvalidateDone, CallError> {
        if !self.in_ram(gpa, size.bytes()) {
            return Err(CallError::InvalidAddress);
        }
        let mut s = self.shared.lock();
        let Ok(current) = s.pvalidate_current(gpa, size) else {
            return Err(CallError::pvalidate(pvalidate_rc::FAIL_SIZEMISMATCH));
        };
        if current == validate {
            return Ok(PvalidateDone::Unchanged);
        }
        let bit = match size {
            EntryPageSize::Size4K => page::VALID_4K,
            EntryPageSize::Size2M => page::VALID_2M,
        };
        s.mark(gpa, size, bit, validate);
        if !validate {
            s.set_access(gpa, size, None);
        }
        Ok(PvalidateDone::Changed)
    }

    fn grant_guest(&self, gpa: u64, size: EntryPageSize) -> Result<(), CallError> {
        self.shared.lock().set_access(gpa, size, Some(true));
        Ok(())
    }

    fn seal_vmsa(&self, vmsa_gpa: u64) -> Result<(), CallError> {
        let mut s = self.shared.lock();
        if !self.in_ram(vmsa_gpa, PAGE_SIZE)
            || s.covering(vmsa_gpa).is_none()
            || s.is_sealed(vmsa_gpa)
            || s.is_caa(vmsa_gpa)
        {
            return Err(CallError::InvalidAddress);
        }
        s.mark(vmsa_gpa, EntryPageSize::Size4K, page::SEALED, true);
        s.set_access(vmsa_gpa, EntryPageSize::Size4K, Some(false));
        Ok(())
    }

    fn unseal_vmsa(&self, vmsa_gpa: u64) {
        let mut s = self.shared.lock();
        if s.is_sealed(vmsa_gpa) {
            s.mark(vmsa_gpa, EntryPageSize::Size4K, page::SEALED, false);
            s.set_access(vmsa_gpa, EntryPageSize::Size4K, Some(true));
        }
    }

    fn create_vcpu(
        &self,
        vmsa_gpa: u64,
        caa_gpa: u64,
        apic_id: u32,
        vmsa: Box<Vmsa>,
    ) -> Result<(), CallError> {
        let mut s = self.shared.lock();
        if !self.in_ram(caa_gpa, PAGE_SIZE) || s.is_sealed(caa_gpa) {
            return Err(CallError::InvalidAddress);
        }
        let live = || s.slots.iter().filter(|v| !v.deleted);
        if apic_id >= MAX_VCPUS || live().any(|v| v.apic_id == apic_id) {
            return Err(CallError::InvalidParameter);
        }
        s.slots.push(Slot {
            caa: caa_gpa,
            vmsa_gpa: Some(vmsa_gpa),
            apic_id,
            start: Some(vmsa),
            deleted: false,
        });
        Ok(())
    }

    fn delete_vcpu(&self, vmsa_gpa: u64) -> Result<(), CallError> {
        let mut s = self.shared.lock();
        let slot = s
            .slots
            .iter_mut()
            .find(|v| !v.deleted && v.vmsa_gpa == Some(vmsa_gpa))
            .ok_or(CallError::InvalidParameter)?;
        slot.deleted = true;
        s.mark(vmsa_gpa, EntryPageSize::Size4K, page::SEALED, false);
        s.set_access(vmsa_gpa, EntryPageSize::Size4K, Some(true));
        Ok(())
    }

    fn remap_ca(&self, vcpu: VcpuId, caa_gpa: u64) -> Result<(), CallError> {
        let mut s = self.shared.lock();
        if !self.in_ram(caa_gpa, PAGE_SIZE) || s.is_sealed(caa_gpa) {
            return Err(CallError::InvalidAddress);
        }
        let slot = s
            .slots
            .get_mut(vcpu.0 as usize)
            .ok_or(CallError::InvalidParameter)?;
        slot.caa = caa_gpa;
        Ok(())
    }

    fn deposit(&self, gpa: u64, size: EntryPageSize) -> Result<(), CallError> {
        if !self.in_ram(gpa, size.bytes()) {
            return Err(CallError::InvalidAddress);
        }
        let mut s = self.shared.lock();
        if s.deposited.iter().any(|&(g, _)| g == gpa) || s.is_sealed(gpa) {
            return Err(CallError::InvalidAddress);
        }
        s.set_access(gpa, size, None);
        s.deposited.push((gpa, size));
        Ok(())
    }

    fn withdraw(&self) -> Option<(u64, EntryPageSize)> {
        let mut s = self.shared.lock();
        let (gpa, size) = s.deposited.pop()?;
        // The page goes back invalidated: the guest validates it again.
        s.mark(gpa, size, page::VALID, false);
        Some((gpa, size))
    }
}
