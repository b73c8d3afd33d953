//! The locking rules, checked from inside the backend: every backend call
//! of PVALIDATE runs with `pvalidate` held shared, every one of CREATE_VCPU
//! with `vcpus` held and `pvalidate` held exclusively, every one of
//! DELETE_VCPU and REMAP_CA with `vcpus` held.

use super::CoreProtocol;
use crate::backend::{CoreBackend, GpaRange, PvalidateDone, VcpuId};
use crate::error::CallError;
use crate::model::{FakeBackend, MODEL_CA, MODEL_RAM, MODEL_SCRATCH, MODEL_SVSM, ModelMemory};
use crate::registry::Registry;
use crate::regs::CallRegs;
use crate::serve::{CallContext, Outcome, serve};
use alloc::boxed::Box;
use alloc::vec::Vec;
use svsm_defs::svsm::{EntryPageSize, call_rax, core_call};
use svsm_defs::vmsa::{SevFeatures, Vmsa};

struct Watch<'a> {
    inner: FakeBackend,
    core: &'a CoreProtocol,
    seen: spin::Mutex<Vec<(&'static str, bool)>>,
}

impl Watch<'_> {
    fn note(&self, what: &'static str, ok: bool) {
        self.seen.lock().push((what, ok));
    }
    fn pvalidate_shared(&self) -> bool {
        self.core.pvalidate.try_write().is_none() && self.core.pvalidate.try_read().is_some()
    }
    fn pvalidate_exclusive(&self) -> bool {
        self.core.pvalidate.try_read().is_none()
    }
    fn vcpus_held(&self) -> bool {
        self.core.vcpus.try_lock().is_none()
    }
}

impl CoreBackend for Watch<'_> {
    fn guest_vmpl(&self) -> u8 {
        self.inner.guest_vmpl()
    }
    fn sev_features(&self, vcpu: VcpuId) -> SevFeatures {
        self.inner.sev_features(vcpu)
    }
    fn svsm_ranges(&self) -> &[GpaRange] {
        self.inner.svsm_ranges()
    }
    fn pvalidate(
        &self,
        gpa: u64,
        size: EntryPageSize,
        v: bool,
    ) -> Result<PvalidateDone, CallError> {
        self.note("pvalidate", self.pvalidate_shared() && !self.vcpus_held());
        self.inner.pvalidate(gpa, size, v)
    }
    fn grant_guest(&self, gpa: u64, size: EntryPageSize) -> Result<(), CallError> {
        self.inner.grant_guest(gpa, size)
    }
    fn seal_vmsa(&self, gpa: u64) -> Result<(), CallError> {
        self.note("seal_vmsa", self.vcpus_held() && self.pvalidate_exclusive());
        self.inner.seal_vmsa(gpa)
    }
    fn unseal_vmsa(&self, gpa: u64) {
        self.note(
            "unseal_vmsa",
            self.vcpus_held() && self.pvalidate_exclusive(),
        );
        self.inner.unseal_vmsa(gpa)
    }
    fn create_vcpu(&self, v: u64, c: u64, a: u32, vmsa: Box<Vmsa>) -> Result<(), CallError> {
        self.note(
            "create_vcpu",
            self.vcpus_held() && self.pvalidate_exclusive(),
        );
        self.inner.create_vcpu(v, c, a, vmsa)
    }
    fn delete_vcpu(&self, gpa: u64) -> Result<(), CallError> {
        self.note("delete_vcpu", self.vcpus_held());
        self.inner.delete_vcpu(gpa)
    }
    fn remap_ca(&self, vcpu: VcpuId, gpa: u64) -> Result<(), CallError> {
        self.note("remap_ca", self.vcpus_held());
        self.inner.remap_ca(vcpu, gpa)
    }
    fn deposit(&self, gpa: u64, size: EntryPageSize) -> Result<(), CallError> {
        self.inner.deposit(gpa, size)
    }
    fn withdraw(&self) -> Option<(u64, EntryPageSize)> {
        self.inner.withdraw()
    }
}

#[test]
fn backend_calls_run_under_the_spec_locks() {
    let core = CoreProtocol::default();
    let w = Watch {
        inner: FakeBackend::new(MODEL_RAM, &[MODEL_SVSM]),
        core: &core,
        seen: spin::Mutex::new(Vec::new()),
    };
    w.inner.validate_range(MODEL_CA, MODEL_SCRATCH + 0x10000);
    let mut reg = Registry::new();
    reg.register(&core).unwrap();
    reg.apply(&svsm_bootdefs::channel::ChannelConfig::default())
        .unwrap();
    let mut mem = ModelMemory::new(MODEL_RAM, &[MODEL_SVSM]);
    let (list, vmsa, caa) = (
        MODEL_SCRATCH,
        MODEL_SCRATCH + 0x3000,
        MODEL_SCRATCH + 0x4000,
    );
    mem.poke(list, &[1, 0, 0, 0, 0, 0, 0, 0]);
    mem.poke(list + 8, &(MODEL_SCRATCH + 0x1000).to_le_bytes());
    mem.poke(vmsa + 0xca, &[1]);
    mem.poke(vmsa + 0xd0, &0x1d00u64.to_le_bytes());
    mem.poke(vmsa + 0x3b0, &1u64.to_le_bytes());
    let calls = [
        (core_call::PVALIDATE, list, 0),
        (core_call::CREATE_VCPU, vmsa, caa),
        (core_call::CREATE_VCPU, vmsa + 0x2000, caa),
        (core_call::DELETE_VCPU, vmsa, 0),
        (core_call::REMAP_CA, caa, 0),
    ];
    let mut ca = MODEL_CA;
    for (call, rcx, rdx) in calls {
        mem.poke(ca, &[1]);
        let regs = CallRegs {
            rax: call_rax(0, call),
            rcx,
            rdx,
            r8: 1,
            r9: 0,
        };
        let ctx = CallContext {
            vcpu: VcpuId(0),
            ca_gpa: ca,
        };
        assert!(matches!(
            serve(ctx, &regs, &mut mem, &w, &reg),
            Outcome::Served(_)
        ));
        if call == core_call::REMAP_CA {
            ca = rcx;
        }
    }
    let seen = w.seen.lock();
    let names: Vec<&str> = seen.iter().map(|s| s.0).collect();
    assert_eq!(
        names,
        [
            "pvalidate",
            "seal_vmsa",
            "create_vcpu",
            "seal_vmsa",
            "unseal_vmsa",
            "delete_vcpu",
            "remap_ca"
        ]
    );
    assert!(seen.iter().all(|s| s.1), "{seen:?}");
    // Nothing stays locked after a call.
    assert!(core.vcpus.try_lock().is_some() && core.pvalidate.try_write().is_some());
}
