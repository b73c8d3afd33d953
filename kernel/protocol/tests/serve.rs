//! The request loop step and the core handlers on the model: exact
//! registers, memory bytes and backend state.

use svsm_defs::svsm::{call_rax, core_call, result};
use svsm_protocol::conformance::Caller;
use svsm_protocol::model::{MODEL_CA, MODEL_SCRATCH, ModelGuest};
use svsm_protocol::{CallRegs, OutRegs, Outcome};

fn core(call: u32, rcx: u64, rdx: u64, r8: u64) -> CallRegs {
    CallRegs {
        rax: call_rax(0, call),
        rcx,
        rdx,
        r8,
        r9: 0,
    }
}

fn peek(g: &ModelGuest, gpa: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    g.mem.peek(gpa, &mut v);
    v
}

#[test]
fn no_call_pending_means_no_call() {
    let mut g = ModelGuest::new(0);
    let regs = core(core_call::QUERY_PROTOCOL, 1, 0, 0);
    assert_eq!(g.exit(&regs), Outcome::NoCall);
    g.write(MODEL_CA, &[1]);
    assert_eq!(
        g.exit(&regs),
        Outcome::Served(OutRegs {
            rax: 0,
            rcx: 0x1_0000_0001,
            rdx: 0,
            r8: 0
        })
    );
    // call_pending cleared by the SVSM.
    assert_eq!(peek(&g, MODEL_CA, 1), [0]);
}

#[test]
fn pvalidate_budget_returns_incomplete_and_resumes() {
    let mut g = ModelGuest::new(2);
    let list = MODEL_SCRATCH;
    let mut bytes = vec![5u8, 0, 0, 0, 0, 0, 0, 0];
    for i in 0..5u64 {
        bytes.extend_from_slice(&(MODEL_SCRATCH + 0x1000 * (i + 1)).to_le_bytes());
    }
    g.write(list, &bytes);
    let regs = core(core_call::PVALIDATE, list, 0, 0);
    for next in [2u8, 4] {
        assert_eq!(g.call(&regs).rax, result::INCOMPLETE);
        assert_eq!(peek(&g, list + 2, 2), [next, 0]);
    }
    assert_eq!(g.call(&regs).rax, result::SUCCESS);
    assert_eq!(peek(&g, list + 2, 2), [5, 0]);
    let s = g.backend.state.lock();
    assert!((1..=5).all(|i| !s.validated.contains_key(&(MODEL_SCRATCH + 0x1000 * i))));
    assert!(!s.guest_access.contains(&(MODEL_SCRATCH + 0x1000)));
}

#[test]
fn create_vcpu_busy_when_no_cpu_is_free_and_unseals() {
    let mut g = ModelGuest::new(0);
    let (v1, v2, v3, caa) = (
        MODEL_SCRATCH + 0x3000,
        MODEL_SCRATCH + 0x5000,
        MODEL_SCRATCH + 0x6000,
        MODEL_SCRATCH + 0x4000,
    );
    for v in [v1, v2, v3] {
        g.init_vmsa(v);
    }
    assert_eq!(g.call(&core(core_call::CREATE_VCPU, v1, caa, 1)).rax, 0);
    assert_eq!(
        g.call(&core(core_call::CREATE_VCPU, v2, caa + 0x8000, 2))
            .rax,
        0
    );
    assert_eq!(
        g.call(&core(core_call::CREATE_VCPU, v3, caa + 0x9000, 3))
            .rax,
        result::BUSY
    );
    let s = g.backend.state.lock();
    assert!(s.sealed.contains(&v1) && s.sealed.contains(&v2) && !s.sealed.contains(&v3));
    assert!(!s.guest_access.contains(&v1) && s.guest_access.contains(&v3));
    assert_eq!(s.vcpus.get(&v1), Some(&(caa, 1)));
}

#[test]
fn disabled_core_protocol_is_unsupported() {
    let mut g = ModelGuest::new(0);
    g.core_versions = None;
    let out = g.call(&core(core_call::QUERY_PROTOCOL, 1, 7, 9));
    assert_eq!(
        out,
        OutRegs {
            rax: result::UNSUPPORTED_PROTOCOL,
            rcx: 1,
            rdx: 7,
            r8: 9
        }
    );
}

#[test]
fn calling_area_outside_ram_is_the_platforms_fault() {
    let mut g = ModelGuest::new(0);
    g.ca = 0x1_0000_0000;
    assert!(matches!(
        g.exit(&core(core_call::QUERY_PROTOCOL, 1, 0, 0)),
        Outcome::CallingAreaFault(_)
    ));
}
