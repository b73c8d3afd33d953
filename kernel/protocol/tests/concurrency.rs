//! Several CPUs serving calls at once: one registry, one core protocol and
//! one backend shared by threads, each with its own vCPU and Calling Area.
//! DELETE_VCPU races with PVALIDATE of the same page; the locks must keep
//! every answer one of the serial ones and the backend consistent.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use svsm_defs::svsm::{call_rax, core_call, result};
use svsm_protocol::model::{FakeBackend, MODEL_RAM, MODEL_SCRATCH, MODEL_SVSM, ModelMemory};
use svsm_protocol::{CallContext, CallRegs, CoreProtocol, Outcome, Registry, VcpuId, serve};

const ROUNDS: usize = 1500;
const UNCHANGED: u64 = 0x8000_1010;

/// One CPU serving one vCPU whose Calling Area is at `ca`.
struct Cpu<'a> {
    reg: &'a Registry<'a>,
    be: &'a FakeBackend,
    mem: ModelMemory,
    me: u32,
    ca: u64,
    list: u64,
}

impl Cpu<'_> {
    fn call(&mut self, c: u32, rcx: u64, rdx: u64, r8: u64) -> u64 {
        self.mem.poke(self.ca, &[1]);
        let regs = CallRegs {
            rax: call_rax(0, c),
            rcx,
            rdx,
            r8,
            r9: 0,
        };
        let ctx = CallContext {
            vcpu: VcpuId(self.me),
            ca_gpa: self.ca,
        };
        match serve(ctx, &regs, &mut self.mem, self.be, self.reg) {
            Outcome::Served(out) => out.rax,
            o => panic!("{o:?}"),
        }
    }

    /// PVALIDATE of one 4 KiB page through a one-entry list.
    fn pvalidate(&mut self, entry: u64) -> u64 {
        self.mem.poke(self.list, &[1, 0, 0, 0, 0, 0, 0, 0]);
        self.mem.poke(self.list + 8, &entry.to_le_bytes());
        self.call(core_call::PVALIDATE, self.list, 0, 0)
    }

    /// Writes a VMSA that passes the checks at `vmsa`.
    fn init_vmsa(&mut self, vmsa: u64) {
        self.mem.poke(vmsa + 0xca, &[1]);
        self.mem.poke(vmsa + 0xd0, &0x1d00u64.to_le_bytes());
        self.mem.poke(vmsa + 0x3b0, &1u64.to_le_bytes());
    }
}

/// One CPU, round after round, in phases both CPUs start together:
///
/// 1. create its vCPU;
/// 2. PVALIDATE the other CPU's running VMSA page: refused;
/// 3. delete its vCPU while PVALIDATE-ing the other's page away and back
///    (the race: refused while the other vCPU still runs, done after);
/// 4. make its own page valid again.
fn run(mut cpu: Cpu<'_>, go: &Barrier, stop: &AtomicBool) -> [usize; 3] {
    let base = MODEL_SCRATCH + 0x10_0000 * u64::from(cpu.me);
    let other = MODEL_SCRATCH + 0x10_0000 * u64::from(1 - cpu.me) + 0x1000;
    let (vmsa, caa) = (base + 0x1000, base + 0x2000);
    cpu.init_vmsa(vmsa);
    let mut seen = [0usize; 3]; // racy PVALIDATEs: done, refused, unchanged
    let phase = || {
        go.wait();
        !stop.load(Ordering::Relaxed)
    };
    for _ in 0..ROUNDS {
        if !phase() {
            break;
        }
        let r = cpu.call(core_call::CREATE_VCPU, vmsa, caa, u64::from(cpu.me + 1));
        assert_eq!(r, result::SUCCESS, "create");
        if !phase() {
            break;
        }
        assert_eq!(
            cpu.pvalidate(other),
            result::INVALID_ADDRESS,
            "running VMSA"
        );
        if !phase() {
            break;
        }
        assert_eq!(
            cpu.call(core_call::DELETE_VCPU, vmsa, 0, 0),
            result::SUCCESS
        );
        for flags in [0, 4] {
            match cpu.pvalidate(other | flags) {
                result::SUCCESS => seen[0] += 1,
                result::INVALID_ADDRESS => seen[1] += 1,
                UNCHANGED => seen[2] += 1,
                r => panic!("cpu {}: PVALIDATE answered {r:#x}", cpu.me),
            }
        }
        if !phase() {
            break;
        }
        // A page that became valid again was zeroed: write the VMSA again.
        match cpu.pvalidate(vmsa | 4) {
            result::SUCCESS => cpu.init_vmsa(vmsa),
            r => assert_eq!(r, UNCHANGED, "revalidate"),
        }
        let s = cpu.be.state.lock();
        assert!(s.sealed.iter().all(|v| !s.guest_access.contains(v)));
    }
    seen
}

#[test]
fn two_cpus_race_delete_and_pvalidate() {
    let core = CoreProtocol::default();
    let mut reg = Registry::new();
    reg.register(&core).unwrap();
    reg.apply(&svsm_bootdefs::channel::ChannelConfig::default())
        .unwrap();
    let mut be = FakeBackend::new(MODEL_RAM, &[MODEL_SVSM]);
    // The protocol layer alone keeps running VMSAs from PVALIDATE.
    be.check_owned = false;
    be.validate_range(MODEL_SCRATCH, MODEL_SCRATCH + 0x20_0000);
    let (go, stop) = (Barrier::new(2), AtomicBool::new(false));
    let seen = std::thread::scope(|s| {
        let h: Vec<_> = (0..2u32)
            .map(|me| {
                let (reg, be, go, stop) = (&reg, &be, &go, &stop);
                s.spawn(move || {
                    let base = MODEL_SCRATCH + 0x10_0000 * u64::from(me);
                    let cpu = Cpu {
                        reg,
                        be,
                        mem: ModelMemory::new(MODEL_RAM, &[MODEL_SVSM]),
                        me,
                        ca: base,
                        list: base + 0x3000,
                    };
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run(cpu, go, stop)
                    }));
                    if r.is_err() {
                        // Release the other CPU from its barrier.
                        stop.store(true, Ordering::Relaxed);
                        go.wait();
                    }
                    r.unwrap_or_else(|e| std::panic::resume_unwind(e))
                })
            })
            .collect();
        h.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    println!("racy PVALIDATEs of the other CPU's VMSA (done, refused, unchanged): {seen:?}");
    let s = be.state.lock();
    assert!(s.vcpus.is_empty() && s.sealed.is_empty());
    assert_eq!(s.validated.len(), 512, "every page valid again");
    let racy: usize = seen.iter().flatten().sum();
    assert_eq!(racy, 2 * 2 * ROUNDS, "{seen:?}");
}
