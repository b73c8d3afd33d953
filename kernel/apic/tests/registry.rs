//! The APIC protocol through the request path: two vCPUs, each calling
//! with its own registers; an IPI from one lands in the other's model and
//! kicks it.

use std::sync::atomic::{AtomicU32, Ordering};
use svsm_apic::{ApicProtocol, regs};
use svsm_defs::svsm::{call_rax, protocol::APIC, result};
use svsm_protocol::model::{FakeBackend, ModelMemory};
use svsm_protocol::serve::dispatch;
use svsm_protocol::{CallContext, CallRegs, OutRegs, Registry, VcpuId, VersionRange};

static KICKS: AtomicU32 = AtomicU32::new(0);

fn kick(v: VcpuId) {
    KICKS.fetch_add(1 << (8 * v.0), Ordering::SeqCst);
}

fn clock() -> u64 {
    1000
}

struct Setup {
    mem: ModelMemory,
    backend: FakeBackend,
}

fn call(s: &mut Setup, reg: &Registry<'_>, vcpu: u32, id: u32, rcx: u64, rdx: u64) -> OutRegs {
    let ctx = CallContext {
        vcpu: VcpuId(vcpu),
        ca_gpa: 0x1000,
    };
    let regs = CallRegs {
        rax: call_rax(APIC, id),
        rcx,
        rdx,
        r8: 0,
        r9: 0,
    };
    dispatch(ctx, &regs, &mut s.mem, &s.backend, reg)
}

#[test]
fn calls_and_ipis_through_the_registry() {
    let proto = ApicProtocol::new(clock, kick);
    proto.add_vcpu(VcpuId(0), 0);
    proto.add_vcpu(VcpuId(1), 1);
    let mut reg = Registry::new();
    reg.register(&proto).unwrap();
    reg.enable(APIC, VersionRange::new(1, 1)).unwrap();
    let mut s = Setup {
        mem: ModelMemory::new(0x10_0000, &[]),
        backend: FakeBackend::new(0x10_0000, &[]),
    };

    assert_eq!(
        call(&mut s, &reg, 1, 2, u64::from(regs::ID), 0).rdx,
        1,
        "READ_REGISTER: RDX"
    );
    for v in [0, 1] {
        assert_eq!(
            call(&mut s, &reg, v, 3, u64::from(regs::SVR), 0x1FF).rax,
            result::SUCCESS
        );
    }
    // vCPU 0 sends vector 0x40 to APIC ID 1.
    let out = call(&mut s, &reg, 0, 3, u64::from(regs::ICR), 0x40 | (1 << 32));
    assert_eq!(out.rax, result::SUCCESS);
    assert_eq!(KICKS.load(Ordering::SeqCst), 1 << 8, "vCPU 1 kicked once");
    assert_eq!(
        proto.with_apic(VcpuId(1), |g| g.apic.pending_interrupt()),
        Some(Some(0x40))
    );
    assert_eq!(
        proto.with_apic(VcpuId(0), |g| g.apic.pending_interrupt()),
        Some(None)
    );
    // Errors come back as result codes.
    assert_eq!(
        call(&mut s, &reg, 0, 3, u64::from(regs::PPR), 0).rax,
        result::INVALID_PARAMETER
    );
    assert_eq!(
        call(&mut s, &reg, 0, 4, 0x105, 0).rax,
        result::INVALID_PARAMETER,
        "vector 5 not allowable"
    );
    assert_eq!(call(&mut s, &reg, 0, 9, 0, 0).rax, result::UNSUPPORTED_CALL);
    assert_eq!(
        call(&mut s, &reg, 7, 0, 0, 0).rax,
        result::UNSUPPORTED_PROTOCOL,
        "a vCPU without an APIC"
    );
    assert_eq!(
        call(&mut s, &reg, 0, 1, 2, 0).rax,
        result::SUCCESS,
        "locked"
    );
    assert_eq!(
        call(&mut s, &reg, 0, 1, 0, 0).rax,
        result::PROTOCOL_BASE,
        "cannot disable once locked"
    );
}
