//! A model guest: guest memory, the fake backend and the core protocol,
//! called the way Linux calls (`call_pending = 1`, the exit, `xchg`).

use super::{FakeBackend, ModelMemory};
use crate::backend::{GpaRange, VcpuId};
use crate::conformance::{Caller, Env, SCRATCH_SIZE};
use crate::core_protocol::CoreProtocol;
use crate::registry::{Registry, VersionRange};
use crate::regs::{CallRegs, OutRegs};
use crate::serve::{CallContext, Outcome, serve};
use svsm_defs::cr::Efer;
use svsm_defs::svsm::{core_call, result};

/// Guest RAM size of the model: 16 MiB.
pub const MODEL_RAM: u64 = 0x100_0000;
/// The SVSM's range in the model.
pub const MODEL_SVSM: GpaRange = GpaRange {
    start: 0x80_0000,
    end: 0xa0_0000,
};
/// The model guest's Calling Area, and where its scratch region starts.
pub const MODEL_CA: u64 = 0x1000;
pub const MODEL_SCRATCH: u64 = 0x20_0000;

/// A guest vCPU, its memory and the SVSM that serves it, all on the host.
pub struct ModelGuest {
    pub mem: ModelMemory,
    pub backend: FakeBackend,
    pub core: CoreProtocol,
    /// The core protocol's enabled versions (`None`: disabled).
    pub core_versions: Option<VersionRange>,
    pub vcpu: VcpuId,
    pub ca: u64,
    /// Set when a call read a guest byte twice.
    pub double_fetch: Option<u64>,
}

impl ModelGuest {
    /// A guest whose Calling Area page and scratch region are validated
    /// 4 KiB pages (the rest of its RAM starts invalid).
    pub fn new(pvalidate_budget: u16) -> Self {
        Self::with_scratch(pvalidate_budget, SCRATCH_SIZE)
    }

    /// Like [`new`](Self::new) with only the first `validated` bytes of the
    /// scratch region validated (the fuzz targets: less state to set up).
    pub fn with_scratch(pvalidate_budget: u16, validated: u64) -> Self {
        let backend = FakeBackend::new(MODEL_RAM, &[MODEL_SVSM]);
        backend.validate_range(MODEL_CA, MODEL_CA + 0x1000);
        backend.validate_range(MODEL_SCRATCH, MODEL_SCRATCH + validated);
        backend.state.lock().caas.insert(VcpuId(0), MODEL_CA);
        Self {
            mem: ModelMemory::new(MODEL_RAM, &[MODEL_SVSM]),
            backend,
            core: CoreProtocol::new(pvalidate_budget),
            core_versions: Some(CoreProtocol::VERSIONS),
            vcpu: VcpuId(0),
            ca: MODEL_CA,
            double_fetch: None,
        }
    }

    /// The conformance environment of this guest.
    pub fn env(&self) -> Env {
        Env {
            scratch: MODEL_SCRATCH,
            ca: MODEL_CA,
            svsm_base: MODEL_SVSM.start,
            beyond_ram: MODEL_RAM,
            apic_id: 1,
        }
    }

    /// One exit to the SVSM with the Calling Area as the guest left it.
    pub fn exit(&mut self, regs: &CallRegs) -> Outcome {
        let mut registry = Registry::new();
        registry.register(&self.core).expect("one core protocol");
        if let Some(v) = self.core_versions {
            registry.enable(0, v).expect("core versions");
        }
        self.mem.take_reads();
        let ctx = CallContext {
            vcpu: self.vcpu,
            ca_gpa: self.ca,
        };
        let outcome = serve(ctx, regs, &mut self.mem, &self.backend, &registry);
        let reads = self.mem.take_reads();
        if let Some(gpa) = ModelMemory::double_fetch(&reads) {
            self.double_fetch.get_or_insert(gpa);
        }
        outcome
    }

    fn guest_may_access(&self, gpa: u64, len: usize) -> bool {
        let s = self.backend.state.lock();
        (gpa & !0xfff..gpa + len as u64)
            .step_by(0x1000)
            .all(|p| s.guest_access.contains(&p))
    }
}

impl Caller for ModelGuest {
    /// Panics when the guest writes a page it has no access to: a real
    /// guest would be stopped there.
    fn write(&mut self, gpa: u64, data: &[u8]) {
        assert!(
            self.guest_may_access(gpa, data.len()),
            "guest write to {gpa:#x} without access"
        );
        self.mem.poke(gpa, data);
    }

    fn read(&mut self, gpa: u64, buf: &mut [u8]) {
        assert!(
            self.guest_may_access(gpa, buf.len()),
            "guest read of {gpa:#x} without access"
        );
        self.mem.peek(gpa, buf);
    }

    fn init_vmsa(&mut self, gpa: u64) {
        let mut page = alloc::vec![0u8; 0x1000];
        page[0xca] = self.backend.guest_vmpl;
        page[0xd0..0xd8]
            .copy_from_slice(&(Efer::SVME | Efer::LME | Efer::LMA).bits().to_le_bytes());
        page[0x3b0..0x3b8].copy_from_slice(&self.backend.features.bits().to_le_bytes());
        self.mem.poke(gpa, &page);
    }

    fn call(&mut self, regs: &CallRegs) -> OutRegs {
        let ca = self.ca;
        self.write(ca, &[1]);
        let out = match self.exit(regs) {
            Outcome::Served(out) => out,
            o => panic!("call {regs:x?}: {o:?}"),
        };
        let mut pending = [0u8];
        self.read(ca, &mut pending);
        self.write(ca, &[0]);
        assert_eq!(pending[0], 0, "call_pending still set after {regs:x?}");
        if regs.rax == u64::from(core_call::REMAP_CA) && out.rax == result::SUCCESS {
            self.ca = regs.rcx;
        }
        out
    }
}
