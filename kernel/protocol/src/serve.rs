//! One step of a vCPU's request loop.

use crate::backend::{CoreBackend, VcpuId};
use crate::memory::{GuestMemory, MemError, read_obj};
use crate::registry::{Registry, Request};
use crate::regs::{CallRegs, OutRegs};
use svsm_defs::svsm::{CallingAreaHeader, result};

/// Which vCPU calls, and where its Calling Area is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallContext {
    pub vcpu: VcpuId,
    pub ca_gpa: u64,
}

/// What became of a guest's exit to the SVSM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `call_pending` was 0: no call. The guest's registers stay as they are
    /// (the guest sees `call_pending` still 0 and no result).
    NoCall,
    /// The call was handled and `call_pending` cleared: write these into the
    /// guest's RAX, RCX, RDX and R8.
    Served(OutRegs),
    /// The Calling Area itself is not readable or writable guest RAM. The
    /// SVSM chose it (at launch or by a checked REMAP_CA), so this is the
    /// platform's fault to report. When the header could not be read
    /// nothing was handled; when only clearing `call_pending` failed the
    /// call ran but its result is lost: either way the kernel stops the
    /// guest with a report.
    CallingAreaFault(MemError),
}

/// Serves one call of the vCPU `ctx`: reads the Calling Area header once
/// (8 bytes, a copy), handles the call only when `call_pending` is set,
/// dispatches through `registry`, clears `call_pending` and returns the
/// output registers. Buffers a handler needs (lists, the VMSA) are copied
/// by that handler, each byte once, onto the heap when page-sized.
pub fn serve(
    ctx: CallContext,
    regs: &CallRegs,
    mem: &mut dyn GuestMemory,
    backend: &dyn CoreBackend,
    registry: &Registry<'_>,
) -> Outcome {
    let header: CallingAreaHeader = match read_obj(mem, ctx.ca_gpa) {
        Ok(h) => h,
        Err(e) => return Outcome::CallingAreaFault(e),
    };
    if header.call_pending == 0 {
        return Outcome::NoCall;
    }
    let out = dispatch(ctx, regs, mem, backend, registry);
    match mem.write(ctx.ca_gpa, &[0]) {
        Ok(()) => Outcome::Served(out),
        Err(e) => Outcome::CallingAreaFault(e),
    }
}

/// Runs the call in `regs` and returns its registers; RAX is the result.
pub fn dispatch(
    ctx: CallContext,
    regs: &CallRegs,
    mem: &mut dyn GuestMemory,
    backend: &dyn CoreBackend,
    registry: &Registry<'_>,
) -> OutRegs {
    let mut req = Request {
        vcpu: ctx.vcpu,
        ca_gpa: ctx.ca_gpa,
        regs: *regs,
        out: OutRegs::unchanged(regs),
        mem,
        backend,
        registry,
    };
    let res = registry
        .target(regs.protocol())
        .and_then(|p| p.handle(regs.call(), &mut req));
    req.out.rax = match res {
        Ok(()) => result::SUCCESS,
        Err(e) => e.code(),
    };
    req.out
}
