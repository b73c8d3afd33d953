//! The core protocol (0), calls 0-7 (AMD 58019, "Core Protocol").

use crate::error::CallError;
use crate::registry::{Protocol, Request, VersionRange};
use spin::{Mutex, RwLock};
use svsm_defs::svsm::protocol;

/// The core protocol's implementation, version 1.
///
/// Its locks keep the spec's exclusions across CPUs: PVALIDATE holds
/// `pvalidate` shared for each entry and CREATE_VCPU holds it exclusively
/// while it seals and checks the new VMSA (so no PVALIDATE can change a page
/// CREATE_VCPU is deciding about); CREATE_VCPU, DELETE_VCPU and REMAP_CA
/// each hold `vcpus` for their whole call.
pub struct CoreProtocol {
    pvalidate: RwLock<()>,
    vcpus: Mutex<()>,
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
            pvalidate_budget,
        }
    }
}

impl Protocol for CoreProtocol {
    fn id(&self) -> u32 {
        protocol::CORE
    }

    fn versions(&self) -> VersionRange {
        Self::VERSIONS
    }

    fn handle(&self, _call: u32, _req: &mut Request<'_>) -> Result<(), CallError> {
        let _ = (&self.pvalidate, &self.vcpus, self.pvalidate_budget);
        Err(CallError::UnsupportedCall)
    }
}
