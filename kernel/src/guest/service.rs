//! The guest's SVSM calls: VMGEXIT with the MSR-protocol Run VMPL request.
//! Until the protocol crate is wired in, a pending call is answered with
//! UNSUPPORTED_PROTOCOL.

use super::{Guest, memory};

const UNSUPPORTED_PROTOCOL: u64 = 0x8000_0001;

/// Serves the SVSM call vCPU `vcpu` made; its registers carry the request.
pub fn svsm_call(g: &mut Guest, vcpu: usize) {
    let caa = g.vcpus[vcpu].caa_gpa;
    let mut pending = [0u8; 1];
    if memory::read(&g.npt, caa, &mut pending).is_err() || pending[0] == 0 {
        return;
    }
    if memory::write(&g.npt, caa, &[0]).is_ok() {
        *g.vcpus[vcpu].rax() = UNSUPPORTED_PROTOCOL;
    }
}
