//! The core protocol (0), calls 0-7 (AMD 58019, "Core Protocol"), version 1.
//!
//! Result codes per call (the spec's, with COCONUT-SVSM's reading where the
//! spec leaves the choice open):
//! - REMAP_CA: RCX not page aligned: INVALID_PARAMETER; in the SVSM or not
//!   guest RAM: INVALID_ADDRESS.
//! - PVALIDATE: list GPA not 8-byte aligned or on the Calling Area's
//!   header (offset 0 of the CA), `entries` 0 or more than fit
//!   before the end of the list's page (510 in the Calling Area), `next` >=
//!   `entries`, an entry with page size 2/3, reserved bits 11:4 set, or a
//!   2 MiB page not 2 MiB aligned: INVALID_PARAMETER; list or page in the
//!   SVSM or not guest RAM: INVALID_ADDRESS; the instruction's failure:
//!   0x8000_1000 + its return code (0x10 when nothing changed and ignore_cf
//!   is clear). `next` is written back after every entry, so on any error it
//!   names the failing entry. A page the SVSM owns (a created vCPU's VMSA,
//!   deposited memory), a Calling Area to invalidate, or the page holding
//!   the list to invalidate: INVALID_ADDRESS.
//! - CREATE_VCPU: VMSA or CAA not page aligned, in the SVSM, not guest RAM,
//!   or the same page: INVALID_ADDRESS; a VMSA with the wrong VMPL, EFER.SVME
//!   clear or other SEV_FEATURES: INVALID_PARAMETER; no CPU free: BUSY.
//! - DELETE_VCPU: VMSA GPA not page aligned or in the SVSM: INVALID_ADDRESS;
//!   no vCPU with that VMSA: INVALID_PARAMETER.
//! - DEPOSIT_MEM / WITHDRAW_MEM: the PVALIDATE list rules (entries: bits
//!   1:0 size, 11:2 reserved); a list on an SVSM-owned page, or a deposit
//!   of an owned page, a Calling Area or the list's own page:
//!   INVALID_ADDRESS.
//! - QUERY_PROTOCOL: always SUCCESS; RCX = (max << 32) | min of the enabled
//!   versions if the asked version is among them, else 0.
//! - CONFIGURE_VTOM: vTOM is not supported: the query (RCX bit 0) answers
//!   RCX = 0, a configuration request INVALID_REQUEST.

mod lists;
mod owned;
mod vcpu;

use crate::backend::CoreBackend;
use crate::error::CallError;
use crate::registry::{Protocol, Request, VersionRange};
use spin::{Mutex, RwLock};
use svsm_defs::svsm::{core_call, protocol};

/// The core protocol's implementation.
///
/// Its locks keep the spec's exclusions across CPUs: PVALIDATE holds
/// `pvalidate` shared for each entry and CREATE_VCPU holds it exclusively
/// while it seals and checks the new VMSA (so no PVALIDATE can change a page
/// CREATE_VCPU is deciding about); CREATE_VCPU, DELETE_VCPU and REMAP_CA
/// each hold `vcpus` for their whole call; DEPOSIT_MEM and WITHDRAW_MEM
/// hold `pvalidate` exclusively for each entry. Lock order: `vcpus`, then
/// `pvalidate`, then `owned`.
pub struct CoreProtocol {
    pvalidate: RwLock<()>,
    vcpus: Mutex<()>,
    /// The pages the SVSM owns through this protocol (a leaf lock: taken
    /// last, held briefly). Changed only with `pvalidate` held exclusively,
    /// so a PVALIDATE entry (shared) sees it stable.
    owned: Mutex<owned::Owned>,
    /// At most this many PVALIDATE entries per call before the call returns
    /// INCOMPLETE with `next` advanced (0: no limit), so a long list never
    /// keeps a CPU from its other work.
    pvalidate_budget: u16,
}

impl Default for CoreProtocol {
    fn default() -> Self {
        Self::new(0)
    }
}

impl CoreProtocol {
    pub const VERSIONS: VersionRange = VersionRange::new(1, 1);

    pub const fn new(pvalidate_budget: u16) -> Self {
        Self {
            pvalidate: RwLock::new(()),
            vcpus: Mutex::new(()),
            owned: Mutex::new(owned::Owned::new()),
            pvalidate_budget,
        }
    }

    /// PVALIDATE entries per call before INCOMPLETE (0: no limit).
    pub const fn pvalidate_budget(&self) -> u16 {
        self.pvalidate_budget
    }
}

impl Protocol for CoreProtocol {
    fn id(&self) -> u32 {
        protocol::CORE
    }

    fn versions(&self) -> VersionRange {
        Self::VERSIONS
    }

    fn handle(&self, call: u32, req: &mut Request<'_>) -> Result<(), CallError> {
        match call {
            core_call::REMAP_CA => self.remap_ca(req),
            core_call::PVALIDATE => self.pvalidate_list(req),
            core_call::CREATE_VCPU => self.create_vcpu(req),
            core_call::DELETE_VCPU => self.delete_vcpu(req),
            core_call::DEPOSIT_MEM => self.deposit(req),
            core_call::WITHDRAW_MEM => self.withdraw(req),
            core_call::QUERY_PROTOCOL => {
                query_protocol(req);
                Ok(())
            }
            core_call::CONFIGURE_VTOM => configure_vtom(req),
            _ => Err(CallError::UnsupportedCall),
        }
    }
}

fn query_protocol(req: &mut Request<'_>) {
    let (id, version) = ((req.regs.rcx >> 32) as u32, req.regs.rcx as u32);
    req.out.rcx = req
        .registry
        .enabled(id)
        .filter(|r| r.contains(version))
        .map_or(0, |r| r.query_value());
}

fn configure_vtom(req: &mut Request<'_>) -> Result<(), CallError> {
    if req.regs.rcx & 1 == 1 {
        req.out.rcx = 0;
        Ok(())
    } else {
        Err(CallError::InvalidRequest)
    }
}

/// Refuses a guest-named range that wraps or touches the SVSM's memory.
fn not_svsm(backend: &dyn CoreBackend, gpa: u64, len: u64) -> Result<(), CallError> {
    if gpa.checked_add(len).is_none() || backend.svsm_ranges().iter().any(|r| r.overlaps(gpa, len))
    {
        return Err(CallError::InvalidAddress);
    }
    Ok(())
}

#[cfg(test)]
mod lock_tests;
