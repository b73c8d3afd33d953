//! The protocol registry: protocols are modules, each with an id and the
//! version range it implements; the channel configuration enables each one
//! for a sub-range of its versions, or leaves it disabled.

use crate::backend::{CoreBackend, VcpuId};
use crate::error::CallError;
use crate::memory::GuestMemory;
use crate::regs::{CallRegs, OutRegs};
use alloc::vec::Vec;

/// An inclusive range of protocol versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionRange {
    pub min: u32,
    pub max: u32,
}

impl VersionRange {
    pub const fn new(min: u32, max: u32) -> Self {
        Self { min, max }
    }

    pub const fn contains(&self, v: u32) -> bool {
        self.min <= v && v <= self.max
    }

    /// The versions both ranges hold, if any.
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        let r = Self::new(self.min.max(other.min), self.max.min(other.max));
        (r.min <= r.max).then_some(r)
    }

    /// QUERY_PROTOCOL's answer: (max << 32) | min.
    pub const fn query_value(&self) -> u64 {
        ((self.max as u64) << 32) | self.min as u64
    }
}

/// Everything a handler works with for one call.
pub struct Request<'a> {
    /// The calling vCPU.
    pub vcpu: VcpuId,
    /// Its Calling Area (the one this call was read from).
    pub ca_gpa: u64,
    /// The input registers.
    pub regs: CallRegs,
    /// The output registers; RAX is set from the handler's result.
    pub out: OutRegs,
    pub mem: &'a mut dyn GuestMemory,
    pub backend: &'a dyn CoreBackend,
    /// The registry (QUERY_PROTOCOL reads the enabled versions).
    pub registry: &'a Registry<'a>,
}

/// One protocol: the module the registry dispatches to.
pub trait Protocol: Sync {
    /// The protocol number (RAX bits 63:32).
    fn id(&self) -> u32;
    /// The versions this implementation speaks.
    fn versions(&self) -> VersionRange;
    /// Handles call `call`; on success RAX is SUCCESS, on error the code.
    /// Outputs go to `req.out` (RCX, RDX, R8).
    fn handle(&self, call: u32, req: &mut Request<'_>) -> Result<(), CallError>;
}

struct Slot<'p> {
    protocol: &'p dyn Protocol,
    /// The enabled versions, `None` when disabled.
    enabled: Option<VersionRange>,
}

/// The registered protocols and which of them the configuration enables.
#[derive(Default)]
pub struct Registry<'p> {
    slots: Vec<Slot<'p>>,
}

/// Why a protocol could not be registered or enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryError {
    /// Another protocol with this id is registered.
    Duplicate(u32),
    /// No protocol with this id is registered.
    Unknown(u32),
    /// The requested versions and the implemented ones have none in common.
    NoCommonVersion { id: u32, requested: VersionRange },
}

impl<'p> Registry<'p> {
    pub fn new() -> Self {
        Self { slots: Vec::new() }
    }

    /// Adds `protocol`, disabled.
    pub fn register(&mut self, protocol: &'p dyn Protocol) -> Result<(), RegistryError> {
        let id = protocol.id();
        if self.slot(id).is_some() {
            return Err(RegistryError::Duplicate(id));
        }
        self.slots.push(Slot {
            protocol,
            enabled: None,
        });
        Ok(())
    }

    /// Enables protocol `id` for the versions of `requested` it implements.
    pub fn enable(&mut self, id: u32, requested: VersionRange) -> Result<(), RegistryError> {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.protocol.id() == id)
            .ok_or(RegistryError::Unknown(id))?;
        let r = slot
            .protocol
            .versions()
            .intersect(&requested)
            .ok_or(RegistryError::NoCommonVersion { id, requested })?;
        slot.enabled = Some(r);
        Ok(())
    }

    /// Enables exactly the protocols the channel configuration lists, for
    /// the versions it gives; every other protocol is disabled. A listed
    /// protocol this SVSM does not implement (or not at those versions)
    /// stays disabled and is the error returned (the first one), after the
    /// rest have been applied: the kernel reports it.
    pub fn apply(
        &mut self,
        channel: &svsm_bootdefs::channel::ChannelConfig,
    ) -> Result<(), RegistryError> {
        for s in &mut self.slots {
            s.enabled = None;
        }
        let mut first = Ok(());
        for p in channel.protocols() {
            let r = self.enable(p.id, VersionRange::new(p.min_version, p.max_version));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Disables protocol `id` (calls to it answer UNSUPPORTED_PROTOCOL).
    pub fn disable(&mut self, id: u32) {
        if let Some(s) = self.slots.iter_mut().find(|s| s.protocol.id() == id) {
            s.enabled = None;
        }
    }

    /// The enabled versions of protocol `id`, `None` if it is unknown or
    /// disabled.
    pub fn enabled(&self, id: u32) -> Option<VersionRange> {
        self.slot(id).and_then(|s| s.enabled)
    }

    /// The highest enabled version of the core protocol (the secrets page's
    /// `svsm_max_version`), 0 when it is disabled.
    pub fn core_max_version(&self) -> u32 {
        self.enabled(svsm_defs::svsm::protocol::CORE)
            .map_or(0, |r| r.max)
    }

    fn slot(&self, id: u32) -> Option<&Slot<'p>> {
        self.slots.iter().find(|s| s.protocol.id() == id)
    }

    /// The enabled protocol a call goes to.
    pub(crate) fn target(&self, id: u32) -> Result<&'p dyn Protocol, CallError> {
        match self.slot(id) {
            Some(Slot {
                protocol,
                enabled: Some(_),
            }) => Ok(*protocol),
            _ => Err(CallError::UnsupportedProtocol),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core_protocol::CoreProtocol;
    use svsm_bootdefs::channel::{ChannelConfig, ProtocolEntry};

    #[test]
    fn apply_enables_what_the_channel_lists() {
        let core = CoreProtocol::default();
        let mut r = Registry::new();
        r.register(&core).unwrap();
        assert_eq!(r.register(&core), Err(RegistryError::Duplicate(0)));
        assert_eq!(r.enabled(0), None);
        r.apply(&ChannelConfig::default()).unwrap();
        assert_eq!(r.enabled(0), Some(VersionRange::new(1, 1)));
        assert_eq!(r.core_max_version(), 1);
        // Versions 1-5 asked: the implemented 1 is enabled.
        let c = ChannelConfig::new(1, &[ProtocolEntry::new(0, 1, 5)], 0, 0).unwrap();
        r.apply(&c).unwrap();
        assert_eq!(r.enabled(0), Some(VersionRange::new(1, 1)));
        // Core at version 2 only: nothing in common, disabled.
        let c = ChannelConfig::new(1, &[ProtocolEntry::new(0, 2, 2)], 0, 0).unwrap();
        assert_eq!(
            r.apply(&c),
            Err(RegistryError::NoCommonVersion {
                id: 0,
                requested: VersionRange::new(2, 2)
            })
        );
        assert_eq!(r.enabled(0), None);
        assert_eq!(r.core_max_version(), 0);
        // An unimplemented protocol is reported; core still enabled.
        let c = ChannelConfig::new(
            1,
            &[ProtocolEntry::new(1, 1, 1), ProtocolEntry::new(0, 1, 1)],
            0,
            0,
        )
        .unwrap();
        assert_eq!(r.apply(&c), Err(RegistryError::Unknown(1)));
        assert_eq!(r.enabled(0), Some(VersionRange::new(1, 1)));
        assert!(r.target(1).is_err());
    }

    #[test]
    fn version_ranges() {
        let a = VersionRange::new(1, 3);
        assert_eq!(
            a.intersect(&VersionRange::new(2, 9)),
            Some(VersionRange::new(2, 3))
        );
        assert_eq!(a.intersect(&VersionRange::new(4, 9)), None);
        assert_eq!(a.query_value(), 0x3_0000_0001);
        assert!(a.contains(1) && a.contains(3) && !a.contains(0) && !a.contains(4));
    }
}
