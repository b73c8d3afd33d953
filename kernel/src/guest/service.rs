//! The guest's SVSM calls (VMGEXIT with the MSR-protocol Run VMPL request):
//! one step of the vCPU's request loop, `svsm_protocol::serve`, with the
//! native backend and copy-only guest memory.

use super::Guest;
use super::memory::ProtocolMem;
use svsm_protocol::{CallContext, CallRegs, Outcome, VcpuId, serve};

/// Why a call could not be served.
pub struct CallingAreaFault(pub u64);

/// Serves the SVSM call vCPU `vcpu` made; its registers carry the request
/// and receive RAX, RCX, RDX and R8.
pub fn svsm_call(g: &mut Guest, vcpu: usize) -> Result<(), CallingAreaFault> {
    let caa = g.backend.shared.lock().slots[vcpu].caa;
    let v = g.vcpus[vcpu].as_mut().expect("a running vCPU");
    let regs = CallRegs {
        rax: *v.rax(),
        rcx: v.gprs.rcx,
        rdx: v.gprs.rdx,
        r8: v.gprs.r8,
        r9: v.gprs.r9,
    };
    let ctx = CallContext {
        vcpu: VcpuId(vcpu as u32),
        ca_gpa: caa,
    };
    let mut mem = ProtocolMem(&g.backend.shared);
    match serve(ctx, &regs, &mut mem, &g.backend, &g.registry) {
        Outcome::NoCall => Ok(()),
        Outcome::Served(out) => {
            *v.rax() = out.rax;
            v.gprs.rcx = out.rcx;
            v.gprs.rdx = out.rdx;
            v.gprs.r8 = out.r8;
            Ok(())
        }
        Outcome::CallingAreaFault(e) => Err(CallingAreaFault(e.gpa)),
    }
}
