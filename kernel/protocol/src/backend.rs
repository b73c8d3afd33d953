//! What the platform does for the core protocol.
//!
//! The native platform runs the guest with AMD-V: it tracks validation
//! itself and maps a page into the guest's nested page tables only while it
//! is validated and guest-accessible. SNP uses PVALIDATE and RMPADJUST; TDX
//! will come later. The protocol code decides *what* to do and in which
//! order (checks, zeroing, locking); a backend only performs the steps.
//!
//! A backend is shared by every CPU that serves calls: its methods take
//! `&self` and do their own locking for their own state. The ordering rules
//! between calls (PVALIDATE against CREATE_VCPU; CREATE_VCPU, DELETE_VCPU and
//! REMAP_CA against each other) are kept by [`crate::CoreProtocol`]'s locks,
//! not by the backend.

use crate::error::CallError;
use alloc::boxed::Box;
use svsm_defs::svsm::EntryPageSize;
use svsm_defs::vmsa::{SevFeatures, Vmsa};

/// The guest vCPU a call comes from (the platform's index of it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct VcpuId(pub u32);

/// A half-open range of guest-physical addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpaRange {
    pub start: u64,
    pub end: u64,
}

impl GpaRange {
    /// Whether `[gpa, gpa + len)` shares a byte with this range (a range
    /// that wraps around the address space counts as overlapping).
    pub fn overlaps(&self, gpa: u64, len: u64) -> bool {
        match gpa.checked_add(len) {
            Some(end) => gpa < self.end && self.start < end,
            None => true,
        }
    }
}

/// PVALIDATE's effect: the page changed state, or it already had the
/// requested one (the instruction's CF).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvalidateDone {
    Changed,
    Unchanged,
}

/// The platform's side of the core protocol.
pub trait CoreBackend: Sync {
    /// The VMPL the guest runs at (the channel configuration's value).
    fn guest_vmpl(&self) -> u8;

    /// SEV_FEATURES of the calling vCPU; a new vCPU's VMSA must carry the same.
    fn sev_features(&self, vcpu: VcpuId) -> SevFeatures;

    /// The SVSM's own memory: any guest-supplied GPA inside these ranges is
    /// refused with INVALID_ADDRESS before the backend sees it.
    fn svsm_ranges(&self) -> &[GpaRange];

    /// Validates (`validate`) or invalidates one page. Invalidation removes
    /// every lower-VMPL access first. Validation leaves the page without
    /// guest access: the protocol zeroes it, then calls
    /// [`grant_guest`](Self::grant_guest). A failure is the PVALIDATE
    /// return code as `CallError::pvalidate(rc)` (FAIL_INPUT 1,
    /// FAIL_SIZEMISMATCH 6, e.g. a 2 MiB request on a range tracked as 4 KiB
    /// pages). A page the SVSM owns now (a sealed VMSA, deposited memory) is
    /// refused with INVALID_ADDRESS: the guest must not change its state.
    fn pvalidate(
        &self,
        gpa: u64,
        size: EntryPageSize,
        validate: bool,
    ) -> Result<PvalidateDone, CallError>;

    /// Gives the guest read/write/execute access to a validated page.
    fn grant_guest(&self, gpa: u64, size: EntryPageSize) -> Result<(), CallError>;

    /// Takes the guest's write access to the page at `vmsa_gpa` away (SNP:
    /// RMPADJUST of every lower VMPL; native: out of the nested page tables)
    /// so that the VMSA the protocol then copies and checks is the one that
    /// runs. Fails with INVALID_ADDRESS when the page is not a validated
    /// guest page, or when it is already a VMSA or a Calling Area.
    fn seal_vmsa(&self, vmsa_gpa: u64) -> Result<(), CallError>;

    /// Undoes [`seal_vmsa`](Self::seal_vmsa) after a refused CREATE_VCPU.
    fn unseal_vmsa(&self, vmsa_gpa: u64);

    /// Starts a vCPU from the sealed page at `vmsa_gpa`, whose checked copy
    /// is `vmsa`, with its Calling Area at `caa_gpa`. BUSY when no CPU is free
    /// to run it, INVALID_PARAMETER for an unknown or taken APIC ID. On
    /// success the page stays sealed until DELETE_VCPU.
    fn create_vcpu(
        &self,
        vmsa_gpa: u64,
        caa_gpa: u64,
        apic_id: u32,
        vmsa: Box<Vmsa>,
    ) -> Result<(), CallError>;

    /// Stops the vCPU whose VMSA is at `vmsa_gpa` and gives the page back to
    /// the guest. INVALID_PARAMETER when no vCPU has that VMSA.
    fn delete_vcpu(&self, vmsa_gpa: u64) -> Result<(), CallError>;

    /// Moves `vcpu`'s Calling Area to `caa_gpa` (checked: page aligned, guest
    /// RAM, not SVSM memory). INVALID_ADDRESS when the page is a VMSA.
    fn remap_ca(&self, vcpu: VcpuId, caa_gpa: u64) -> Result<(), CallError>;

    /// Takes a guest page for the SVSM's own use. The guest keeps no access.
    /// INVALID_ADDRESS when it is not guest RAM, already the SVSM's (a VMSA,
    /// deposited) or holds a Calling Area.
    fn deposit(&self, gpa: u64, size: EntryPageSize) -> Result<(), CallError>;

    /// Gives back one deposited page the SVSM no longer needs, or `None`.
    fn withdraw(&self) -> Option<(u64, EntryPageSize)>;
}
