//! The attestation protocol through the request path: registered in the
//! protocol registry, called with guest registers, answering in RAX, RCX,
//! RDX and R8 (the buffer-too-small answer included).

use svsm_attest::guid::VTPM;
use svsm_attest::{AttestationProtocol, DevelopmentReports, Service};
use svsm_defs::svsm::{call_rax, protocol::ATTESTATION, result};
use svsm_protocol::model::{FakeBackend, ModelMemory};
use svsm_protocol::serve::dispatch;
use svsm_protocol::{CallContext, CallRegs, GpaRange, GuestMemory, Registry, VcpuId, VersionRange};

static SERVICES: [Service<'static>; 1] = [Service {
    guid: VTPM,
    data: b"ek",
}];
const SVSM: GpaRange = GpaRange {
    start: 0x80_0000,
    end: 0x90_0000,
};

fn request(report: (u64, u32), nonce: (u64, u32), manifest: (u64, u32)) -> Vec<u8> {
    let mut b = Vec::new();
    for (gpa, len) in [report, nonce, manifest, (0, 0)] {
        b.extend_from_slice(&gpa.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
    }
    b
}

#[test]
fn services_call_through_the_registry() {
    let proto =
        AttestationProtocol::new(&SERVICES, DevelopmentReports::new([1; 48], 1, 0)).unwrap();
    let mut reg = Registry::new();
    reg.register(&proto).unwrap();
    reg.enable(ATTESTATION, VersionRange::new(1, 1)).unwrap();
    let backend = FakeBackend::new(0x100_0000, &[SVSM]);
    let mut mem = ModelMemory::new(0x100_0000, &[SVSM]);
    mem.write(0x3000, b"nonce").unwrap();
    let ctx = CallContext {
        vcpu: VcpuId(0),
        ca_gpa: 0x1000,
    };

    // Buffers too small: INVALID_PARAMETER with the sizes needed.
    mem.write(
        0x2000,
        &request((0x10_0000, 0x100), (0x3000, 5), (0x20_0000, 0)),
    )
    .unwrap();
    let regs = CallRegs {
        rax: call_rax(ATTESTATION, 0),
        rcx: 0x2000,
        rdx: u64::MAX,
        r8: u64::MAX,
        r9: 0,
    };
    let out = dispatch(ctx, &regs, &mut mem, &backend, &reg);
    assert_eq!(out.rax, result::INVALID_PARAMETER);
    assert_eq!((out.rcx, out.rdx, out.r8), (24 + 24 + 2, 0, 0x4A0));

    // Retried with those sizes: success.
    mem.write(
        0x2000,
        &request((0x10_0000, 0x4A0), (0x3000, 5), (0x20_0000, 50)),
    )
    .unwrap();
    let out = dispatch(ctx, &regs, &mut mem, &backend, &reg);
    assert_eq!(out.rax, result::SUCCESS);
    assert_eq!((out.rcx, out.rdx, out.r8), (50, 0, 0x4A0));
    let mut version = [0u8; 4];
    mem.read(0x10_0000, &mut version).unwrap();
    assert_eq!(
        u32::from_le_bytes(version),
        3,
        "a report landed in the guest's buffer"
    );

    // A report buffer inside the SVSM: INVALID_ADDRESS.
    mem.write(
        0x2000,
        &request((SVSM.start, 0x1000), (0x3000, 5), (0x20_0000, 50)),
    )
    .unwrap();
    assert_eq!(
        dispatch(ctx, &regs, &mut mem, &backend, &reg).rax,
        result::INVALID_ADDRESS
    );
    // An unknown call.
    let bad = CallRegs {
        rax: call_rax(ATTESTATION, 7),
        ..regs
    };
    assert_eq!(
        dispatch(ctx, &bad, &mut mem, &backend, &reg).rax,
        result::UNSUPPORTED_CALL
    );
}
