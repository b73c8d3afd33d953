//! A model of guest memory and a fake backend: the host's stand-ins for the
//! kernel's, used by the host tests, the fuzz targets and the host run of
//! the conformance suite.
//!
//! The fake backend keeps the state a native backend keeps (which pages are
//! validated and at which size, which the guest may access, the VMSAs and
//! Calling Areas of the vCPUs, the deposited pages) in plain maps, so a
//! test can check what a call did to it.

use crate::backend::{CoreBackend, GpaRange, PvalidateDone, VcpuId};
use crate::error::CallError;
use crate::memory::{GuestMemory, MemError};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use core::cell::RefCell;
use svsm_defs::svsm::{EntryPageSize, pvalidate_rc};
use svsm_defs::vmsa::{SevFeatures, Vmsa};

const PAGE: u64 = 0x1000;
const PAGE_2M: u64 = 0x20_0000;

/// Guest RAM `[0, size)` minus the SVSM's ranges, stored sparsely (a page
/// never written reads as zeros), with a log of every range read so a test
/// can check that no byte is read twice by one call.
pub struct ModelMemory {
    size: u64,
    pages: BTreeMap<u64, Box<[u8]>>,
    holes: Vec<GpaRange>,
    reads: RefCell<Vec<(u64, u64)>>,
}

impl ModelMemory {
    pub fn new(size: u64, svsm: &[GpaRange]) -> Self {
        Self {
            size,
            pages: BTreeMap::new(),
            holes: svsm.to_vec(),
            reads: RefCell::new(Vec::new()),
        }
    }

    fn check(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        let err = MemError { gpa, len };
        let end = gpa.checked_add(len).ok_or(err)?;
        if end > self.size || self.holes.iter().any(|h| h.overlaps(gpa, len)) {
            return Err(err);
        }
        Ok(())
    }

    /// The pieces of `[gpa, gpa + len)` in each page: (page, offset in
    /// page, offset in the range, length).
    fn pieces(gpa: u64, len: u64) -> impl Iterator<Item = (u64, usize, usize, usize)> {
        let mut done = 0u64;
        core::iter::from_fn(move || {
            if done >= len {
                return None;
            }
            let a = gpa + done;
            let off = a % PAGE;
            let n = (PAGE - off).min(len - done);
            let piece = (a - off, off as usize, done as usize, n as usize);
            done += n;
            Some(piece)
        })
    }

    fn page_mut(&mut self, page: u64) -> &mut [u8] {
        self.pages
            .entry(page)
            .or_insert_with(|| alloc::vec![0u8; PAGE as usize].into_boxed_slice())
    }

    /// Takes the log of reads since the last call: (gpa, len) pairs.
    pub fn take_reads(&self) -> Vec<(u64, u64)> {
        core::mem::take(&mut *self.reads.borrow_mut())
    }

    /// The first guest byte read twice in `reads`, if any.
    pub fn double_fetch(reads: &[(u64, u64)]) -> Option<u64> {
        let mut spans: Vec<(u64, u64)> = reads.to_vec();
        spans.sort_unstable();
        spans
            .windows(2)
            .find(|w| w[0].0 + w[0].1 > w[1].0)
            .map(|w| w[1].0)
    }

    /// Copies bytes out without the checks or the log (test setup and
    /// checks; not the SVSM's path).
    pub fn peek(&self, gpa: u64, buf: &mut [u8]) {
        for (page, off, at, n) in Self::pieces(gpa, buf.len() as u64) {
            match self.pages.get(&page) {
                Some(p) => buf[at..at + n].copy_from_slice(&p[off..off + n]),
                None => buf[at..at + n].fill(0),
            }
        }
    }

    /// Copies bytes in without the checks.
    pub fn poke(&mut self, gpa: u64, data: &[u8]) {
        for (page, off, at, n) in Self::pieces(gpa, data.len() as u64) {
            self.page_mut(page)[off..off + n].copy_from_slice(&data[at..at + n]);
        }
    }
}

impl GuestMemory for ModelMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.check(gpa, buf.len() as u64)?;
        self.peek(gpa, buf);
        self.reads.borrow_mut().push((gpa, buf.len() as u64));
        Ok(())
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.check(gpa, data.len() as u64)?;
        self.poke(gpa, data);
        Ok(())
    }

    fn zero(&mut self, gpa: u64, len: u64) -> Result<(), MemError> {
        self.check(gpa, len)?;
        for (page, off, _, n) in Self::pieces(gpa, len) {
            if let Some(p) = self.pages.get_mut(&page) {
                p[off..off + n].fill(0);
            }
        }
        Ok(())
    }
}

/// The fake backend's state.
#[derive(Clone, Debug, Default)]
pub struct FakeState {
    /// Validated pages by start GPA, with their size.
    pub validated: BTreeMap<u64, EntryPageSize>,
    /// Pages (4 KiB granules) the guest may access.
    pub guest_access: BTreeSet<u64>,
    /// Sealed VMSA pages.
    pub sealed: BTreeSet<u64>,
    /// Running vCPUs created by CREATE_VCPU: VMSA GPA -> (CAA GPA, APIC ID).
    pub vcpus: BTreeMap<u64, (u64, u32)>,
    /// The Calling Area of each calling vCPU.
    pub caas: BTreeMap<VcpuId, u64>,
    /// Deposited pages, in order.
    pub deposited: Vec<(u64, EntryPageSize)>,
    /// Count of backend calls that changed state (for sequence checks).
    pub ops: u64,
}

/// A backend over a [`FakeState`] for guest RAM `[0, ram_size)`.
pub struct FakeBackend {
    pub ram_size: u64,
    pub guest_vmpl: u8,
    pub features: SevFeatures,
    pub svsm: Vec<GpaRange>,
    /// APIC IDs below this exist.
    pub apic_ids: u32,
    /// CREATE_VCPU answers BUSY once this many vCPUs run.
    pub max_vcpus: usize,
    /// Whether the backend itself refuses SVSM-owned pages (off: a backend
    /// that relies on the protocol layer's checks alone).
    pub check_owned: bool,
    pub state: spin::Mutex<FakeState>,
}

impl FakeBackend {
    pub fn new(ram_size: u64, svsm: &[GpaRange]) -> Self {
        Self {
            ram_size,
            guest_vmpl: 1,
            features: SevFeatures::SNP_ACTIVE,
            svsm: svsm.to_vec(),
            apic_ids: 4,
            max_vcpus: 2,
            check_owned: true,
            state: spin::Mutex::new(FakeState::default()),
        }
    }

    /// Marks `[start, end)` validated in 4 KiB pages and guest-accessible
    /// (the guest's memory as it starts).
    pub fn validate_range(&self, start: u64, end: u64) {
        let mut s = self.state.lock();
        for p in (start..end).step_by(PAGE as usize) {
            s.validated.insert(p, EntryPageSize::Size4K);
            s.guest_access.insert(p);
        }
    }

    fn in_ram(&self, gpa: u64, len: u64) -> bool {
        gpa.checked_add(len).is_some_and(|e| e <= self.ram_size)
    }

    /// The validated page covering `gpa`, if any.
    fn covering(s: &FakeState, gpa: u64) -> Option<(u64, EntryPageSize)> {
        let (&start, &size) = s.validated.range(..=gpa).next_back()?;
        (gpa < start + size.bytes()).then_some((start, size))
    }

    /// Whether `[gpa, gpa + len)` holds a sealed VMSA or deposited memory.
    fn svsm_owned(&self, s: &FakeState, gpa: u64, len: u64) -> bool {
        if !self.check_owned {
            return false;
        }
        let hit = |start: u64, n: u64| start < gpa + len && gpa < start + n;
        s.sealed.iter().any(|&v| hit(v, PAGE))
            || s.deposited.iter().any(|&(d, z)| hit(d, z.bytes()))
    }

    fn pages(gpa: u64, size: EntryPageSize) -> impl Iterator<Item = u64> {
        (gpa..gpa + size.bytes()).step_by(PAGE as usize)
    }
}

impl CoreBackend for FakeBackend {
    fn guest_vmpl(&self) -> u8 {
        self.guest_vmpl
    }

    fn sev_features(&self, _vcpu: VcpuId) -> SevFeatures {
        self.features
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
        let mut s = self.state.lock();
        if self.svsm_owned(&s, gpa, size.bytes()) {
            return Err(CallError::InvalidAddress);
        }
        let mismatch = Err(CallError::pvalidate(pvalidate_rc::FAIL_SIZEMISMATCH));
        let current = match size {
            EntryPageSize::Size4K => match Self::covering(&s, gpa) {
                Some((_, EntryPageSize::Size2M)) => return mismatch,
                c => c,
            },
            EntryPageSize::Size2M => {
                let inside = s
                    .validated
                    .range(gpa..gpa + PAGE_2M)
                    .next()
                    .map(|(&g, &z)| (g, z));
                match inside {
                    Some((g, EntryPageSize::Size2M)) if g == gpa => inside,
                    Some(_) => return mismatch,
                    None => None,
                }
            }
        };
        if current.is_some() == validate {
            return Ok(PvalidateDone::Unchanged);
        }
        s.ops += 1;
        if validate {
            s.validated.insert(gpa, size);
        } else {
            s.validated.remove(&gpa);
            for p in Self::pages(gpa, size) {
                s.guest_access.remove(&p);
            }
        }
        Ok(PvalidateDone::Changed)
    }

    fn grant_guest(&self, gpa: u64, size: EntryPageSize) -> Result<(), CallError> {
        let mut s = self.state.lock();
        for p in Self::pages(gpa, size) {
            s.guest_access.insert(p);
        }
        Ok(())
    }

    fn seal_vmsa(&self, vmsa_gpa: u64) -> Result<(), CallError> {
        let mut s = self.state.lock();
        let is_caa = s
            .caas
            .values()
            .chain(s.vcpus.values().map(|v| &v.0))
            .any(|&c| c == vmsa_gpa);
        if !self.in_ram(vmsa_gpa, PAGE)
            || Self::covering(&s, vmsa_gpa).is_none()
            || self.svsm_owned(&s, vmsa_gpa, PAGE)
            || is_caa
        {
            return Err(CallError::InvalidAddress);
        }
        s.sealed.insert(vmsa_gpa);
        s.guest_access.remove(&vmsa_gpa);
        Ok(())
    }

    fn unseal_vmsa(&self, vmsa_gpa: u64) {
        let mut s = self.state.lock();
        s.sealed.remove(&vmsa_gpa);
        s.guest_access.insert(vmsa_gpa);
    }

    fn create_vcpu(
        &self,
        vmsa_gpa: u64,
        caa_gpa: u64,
        apic_id: u32,
        _vmsa: Box<Vmsa>,
    ) -> Result<(), CallError> {
        let mut s = self.state.lock();
        if !self.in_ram(caa_gpa, PAGE) || self.svsm_owned(&s, caa_gpa, PAGE) {
            return Err(CallError::InvalidAddress);
        }
        if apic_id >= self.apic_ids || s.vcpus.values().any(|v| v.1 == apic_id) {
            return Err(CallError::InvalidParameter);
        }
        if s.vcpus.len() >= self.max_vcpus {
            return Err(CallError::Busy);
        }
        s.ops += 1;
        s.vcpus.insert(vmsa_gpa, (caa_gpa, apic_id));
        Ok(())
    }

    fn delete_vcpu(&self, vmsa_gpa: u64) -> Result<(), CallError> {
        let mut s = self.state.lock();
        if s.vcpus.remove(&vmsa_gpa).is_none() {
            return Err(CallError::InvalidParameter);
        }
        s.ops += 1;
        s.sealed.remove(&vmsa_gpa);
        s.guest_access.insert(vmsa_gpa);
        Ok(())
    }

    fn remap_ca(&self, vcpu: VcpuId, caa_gpa: u64) -> Result<(), CallError> {
        let mut s = self.state.lock();
        if !self.in_ram(caa_gpa, PAGE) || self.svsm_owned(&s, caa_gpa, PAGE) {
            return Err(CallError::InvalidAddress);
        }
        s.ops += 1;
        s.caas.insert(vcpu, caa_gpa);
        Ok(())
    }

    fn deposit(&self, gpa: u64, size: EntryPageSize) -> Result<(), CallError> {
        if !self.in_ram(gpa, size.bytes()) {
            return Err(CallError::InvalidAddress);
        }
        let mut s = self.state.lock();
        let range = gpa..gpa + size.bytes();
        let holds_caa = s
            .caas
            .values()
            .chain(s.vcpus.values().map(|v| &v.0))
            .any(|c| range.contains(c));
        if self.svsm_owned(&s, gpa, size.bytes()) || holds_caa {
            return Err(CallError::InvalidAddress);
        }
        s.ops += 1;
        for p in Self::pages(gpa, size) {
            s.guest_access.remove(&p);
        }
        s.deposited.push((gpa, size));
        Ok(())
    }

    fn withdraw(&self) -> Option<(u64, EntryPageSize)> {
        let mut s = self.state.lock();
        let (gpa, size) = s.deposited.pop()?;
        s.ops += 1;
        // The page goes back invalidated: the guest validates it again.
        s.validated.remove(&gpa);
        Some((gpa, size))
    }
}

mod caller;
pub use caller::{MODEL_CA, MODEL_RAM, MODEL_SCRATCH, MODEL_SVSM, ModelGuest};
