//! The APIC protocol as a module of the SVSM protocol registry, holding
//! every vCPU's emulated APIC: a call works on the calling vCPU's APIC, and
//! an IPI from an ICR write is delivered here to the other vCPUs' models,
//! the platform being asked to kick each target so it notices.

use crate::apic::Ipi;
use crate::protocol::{CallError, GuestApic, handle_call};
use alloc::vec::Vec;
use svsm_defs::svsm::protocol::APIC;
use svsm_protocol::{CallError as ReqError, Protocol, Request, VcpuId, VersionRange};

/// Protocol 3, version 1.
pub struct ApicProtocol {
    vcpus: spin::Mutex<Vec<(VcpuId, GuestApic)>>,
    /// The APIC timer's input clock (the caller's choice of unit).
    clock: fn() -> u64,
    /// Tells the platform that `VcpuId` has a new interrupt pending.
    kick: fn(VcpuId),
}

impl ApicProtocol {
    pub const fn new(clock: fn() -> u64, kick: fn(VcpuId)) -> Self {
        ApicProtocol {
            vcpus: spin::Mutex::new(Vec::new()),
            clock,
            kick,
        }
    }

    /// A vCPU joins with its APIC ID (at launch or CREATE_VCPU).
    pub fn add_vcpu(&self, vcpu: VcpuId, apic_id: u32) {
        let mut v = self.vcpus.lock();
        v.retain(|(id, _)| *id != vcpu);
        v.push((vcpu, GuestApic::new(apic_id)));
    }

    pub fn remove_vcpu(&self, vcpu: VcpuId) {
        self.vcpus.lock().retain(|(id, _)| *id != vcpu);
    }

    /// Runs `f` on `vcpu`'s APIC: the platform's injection path (posting
    /// host interrupts, polling the timer, `pending_interrupt`,
    /// `acknowledge`, the `no_eoi_required` handshake).
    pub fn with_apic<R>(&self, vcpu: VcpuId, f: impl FnOnce(&mut GuestApic) -> R) -> Option<R> {
        let mut v = self.vcpus.lock();
        v.iter_mut().find(|(id, _)| *id == vcpu).map(|(_, g)| f(g))
    }

    /// Delivers `ipi` from `from` to every other vCPU it names; returns
    /// the vCPUs that accepted it.
    fn route(vcpus: &mut [(VcpuId, GuestApic)], from: VcpuId, ipi: Ipi) -> Vec<VcpuId> {
        let mut kicked = Vec::new();
        for (id, g) in vcpus.iter_mut().filter(|(id, _)| *id != from) {
            if !g.apic.accepts(ipi.dest) {
                continue;
            }
            let accepted = if ipi.nmi {
                g.apic.post_nmi();
                true
            } else {
                g.apic.post_ipi(ipi.vector)
            };
            if accepted {
                kicked.push(*id);
            }
        }
        kicked
    }
}

fn to_request_error(e: CallError) -> ReqError {
    match e {
        CallError::UnsupportedCall => ReqError::UnsupportedCall,
        CallError::InvalidParameter => ReqError::InvalidParameter,
        CallError::InvalidRequest => ReqError::InvalidRequest,
        CallError::Protocol(n) => ReqError::Protocol(n),
    }
}

impl Protocol for ApicProtocol {
    fn id(&self) -> u32 {
        APIC
    }

    fn versions(&self) -> VersionRange {
        VersionRange::new(crate::protocol::VERSION_MIN, crate::protocol::VERSION_MAX)
    }

    fn handle(&self, call: u32, req: &mut Request<'_>) -> Result<(), ReqError> {
        let now = (self.clock)();
        let kicked = {
            let mut v = self.vcpus.lock();
            let g = v
                .iter_mut()
                .find(|(id, _)| *id == req.vcpu)
                .map(|(_, g)| g)
                // No emulated APIC for this vCPU: the protocol is not
                // offered to it.
                .ok_or(ReqError::UnsupportedProtocol)?;
            let out =
                handle_call(g, call, req.regs.rcx, req.regs.rdx, now).map_err(to_request_error)?;
            if let Some(rcx) = out.rcx {
                req.out.rcx = rcx;
            }
            if let Some(rdx) = out.rdx {
                req.out.rdx = rdx;
            }
            match out.ipi {
                Some(ipi) => Self::route(&mut v, req.vcpu, ipi),
                None => Vec::new(),
            }
        };
        kicked.into_iter().for_each(self.kick);
        Ok(())
    }
}
