//! The native platform's side of the core protocol (`svsm_protocol::
//! CoreBackend`): validation is tracked here and a page is in the guest's
//! nested page tables only while it is validated and the guest may use it
//! (a sealed VMSA page is mapped read-only, a deposited page not at all).
//! New vCPUs are recorded here and started by the run loop.

use super::npt::Npt;
use alloc::boxed::Box;
use alloc::vec::Vec;
use spin::Mutex;
use svsm_bootdefs::layout::PAGE_SIZE;
use svsm_defs::svsm::{EntryPageSize, pvalidate_rc};
use svsm_defs::vmsa::{SevFeatures, Vmsa};
use svsm_kernel::guest_pages::{PageStates, SizeMismatch};
use svsm_protocol::{CallError, CoreBackend, GpaRange, PvalidateDone, VcpuId};

/// APIC IDs the guest may use: 0 (the boot vCPU) up to this bound.
pub const MAX_VCPUS: u32 = 4;

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

pub struct Shared {
    pub npt: Npt,
    /// Validation and sealing of every guest RAM page.
    pages: PageStates,
    pub slots: Vec<Slot>,
    deposited: Vec<(u64, EntryPageSize)>,
    /// A guest translation was removed or narrowed: flush before VMRUN.
    pub flush: bool,
}

impl Shared {
    /// The validated page covering `gpa`.
    pub fn covering(&self, gpa: u64) -> Option<(u64, EntryPageSize)> {
        self.pages.covering(gpa)
    }

    pub fn is_sealed(&self, page: u64) -> bool {
        self.pages.is_sealed(page)
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
        Self {
            shared: Mutex::new(Shared {
                npt,
                pages: PageStates::new(svsm_end, ram_end, prevalidated_end),
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
        match s.pages.pvalidate(gpa, size, validate) {
            Err(SizeMismatch) => Err(CallError::pvalidate(pvalidate_rc::FAIL_SIZEMISMATCH)),
            Ok(false) => Ok(PvalidateDone::Unchanged),
            Ok(true) => {
                if !validate {
                    s.set_access(gpa, size, None);
                }
                Ok(PvalidateDone::Changed)
            }
        }
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
        s.pages.set_sealed(vmsa_gpa, true);
        s.set_access(vmsa_gpa, EntryPageSize::Size4K, Some(false));
        Ok(())
    }

    fn unseal_vmsa(&self, vmsa_gpa: u64) {
        let mut s = self.shared.lock();
        if s.is_sealed(vmsa_gpa) {
            s.pages.set_sealed(vmsa_gpa, false);
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
        let slot = Slot {
            caa: caa_gpa,
            vmsa_gpa: Some(vmsa_gpa),
            apic_id,
            start: Some(vmsa),
            deleted: false,
        };
        // A deleted vCPU's slot is reused (the run loop replaces its VMCB),
        // so the slots never outnumber the APIC IDs.
        match s.slots.iter_mut().find(|v| v.deleted) {
            Some(free) => *free = slot,
            None => s.slots.push(slot),
        }
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
        s.pages.set_sealed(vmsa_gpa, false);
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
        s.pages.invalidate(gpa, size);
        Some((gpa, size))
    }
}
