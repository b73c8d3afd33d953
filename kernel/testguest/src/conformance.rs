//! The protocol conformance suite (svsm-protocol's cases) run from the
//! guest against the SVSM: one line per case.

use crate::println;
use crate::svsm::Svsm;
use svsm_defs::cr::{Cr0, Cr4, Efer, RFlags};
use svsm_defs::desc::{KERNEL_CS, KERNEL_DS, SegmentDescriptor};
use svsm_defs::svsm::{call_rax, core_call, result};
use svsm_defs::vmsa::{Vmsa, VmsaSegment};
use svsm_protocol::conformance::{
    self, CallStep, Case, Env, Expect, FailKind, Failure, Passed, Reg, Step, Val,
};
use svsm_protocol::{CallRegs, OutRegs};

/// The scratch region the cases use: 4 MiB of guest RAM validated at
/// launch, 2 MiB aligned, holding nothing else.
pub const SCRATCH: u64 = 0x0580_0000;
/// A page-aligned GPA that is not guest RAM (64 GiB; the guest has less).
pub const BEYOND_RAM: u64 = 0x10_0000_0000;
/// An APIC ID the SVSM can start a vCPU for.
pub const SECOND_APIC_ID: u32 = 1;

core::arch::global_asm!(
    ".global guest_ap_entry",
    "guest_ap_entry:",
    "hlt",
    "jmp guest_ap_entry",
);

unsafe extern "C" {
    /// Where a vCPU created by the cases starts: it halts (the SVSM logs it).
    fn guest_ap_entry();
}

/// The guest as the suite's caller.
pub struct GuestCaller {
    pub svsm: Svsm,
    pub vmpl: u8,
}

fn segment(selector: u16, d: SegmentDescriptor) -> VmsaSegment {
    VmsaSegment {
        selector,
        attrib: d.vmcb_attributes(),
        limit: 0xffff_ffff,
        base: 0,
    }
}

fn read_cr3() -> u64 {
    let v;
    // SAFETY: reading CR3 has no side effects.
    unsafe { core::arch::asm!("mov {}, cr3", out(reg) v, options(nomem, nostack)) };
    v
}

impl conformance::Caller for GuestCaller {
    fn write(&mut self, gpa: u64, data: &[u8]) {
        // SAFETY: guest memory is identity mapped; the cases write only
        // their scratch region and the Calling Area.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), gpa as *mut u8, data.len()) };
    }

    fn read(&mut self, gpa: u64, buf: &mut [u8]) {
        // SAFETY: as in `write`.
        unsafe { core::ptr::copy_nonoverlapping(gpa as *const u8, buf.as_mut_ptr(), buf.len()) };
    }

    fn init_vmsa(&mut self, gpa: u64) {
        // SAFETY: a page of the scratch region, identity mapped, page aligned.
        let v = unsafe { &mut *(gpa as *mut Vmsa) };
        // SAFETY: all-zero bytes are a valid VMSA.
        *v = unsafe { core::mem::zeroed() };
        v.cs = segment(KERNEL_CS, SegmentDescriptor::CODE64);
        let data = segment(KERNEL_DS, SegmentDescriptor::DATA);
        (v.ds, v.es, v.ss) = (data, data, data);
        v.vmpl = self.vmpl;
        v.efer = (Efer::SVME | Efer::NXE | Efer::LMA | Efer::LME).bits();
        v.cr0 = (Cr0::PG | Cr0::WP | Cr0::NE | Cr0::ET | Cr0::MP | Cr0::PE).bits();
        v.cr3 = read_cr3();
        v.cr4 = Cr4::PAE.bits();
        v.rflags = RFlags::RESERVED_1.bits();
        v.rip = guest_ap_entry as *const () as u64;
        v.g_pat = 0x0007_0406_0007_0406;
        v.dr6 = 0xffff_0ff0;
        v.dr7 = 0x400;
    }

    fn call(&mut self, regs: &CallRegs) -> OutRegs {
        let r = match self
            .svsm
            .call(regs.rax, regs.rcx, regs.rdx, regs.r8, regs.r9)
        {
            Ok(r) => r,
            Err(e) => {
                println!("test guest: call {:#x} failed: {e:?}", regs.rax);
                crate::io::exit(crate::FAIL)
            }
        };
        if regs.rax == call_rax(0, core_call::REMAP_CA) && r.rax == result::SUCCESS {
            self.svsm.caa = regs.rcx;
        }
        OutRegs {
            rax: r.rax,
            rcx: r.rcx,
            rdx: r.rdx,
            r8: r.r8,
        }
    }
}

pub fn env(caa: u64, svsm_base: u64) -> Env {
    Env {
        scratch: SCRATCH,
        ca: caa,
        svsm_base,
        beyond_ram: BEYOND_RAM,
        apic_id: SECOND_APIC_ID,
    }
}

fn report(case: &Case, r: &Result<Passed, Failure>) {
    match r {
        Ok(p) => {
            let n = p.calls.min(p.results.len());
            println!(
                "CASE {} call={} PASS calls={} rax={:x?}",
                case.name,
                case.call,
                p.calls,
                &p.results[..n]
            );
        }
        Err(f) => match f.kind {
            FailKind::Register { reg, got, want } => println!(
                "CASE {} call={} FAIL step={} {reg}={got:#x} expected {want:#x}",
                case.name, case.call, f.step
            ),
            FailKind::Memory { gpa, got, want } => println!(
                "CASE {} call={} FAIL step={} byte at {gpa:#x} = {got:#x} expected {want:#x}",
                case.name, case.call, f.step
            ),
        },
    }
}

/// Runs every case; the number that failed.
pub fn run(c: &mut GuestCaller, env: &Env) -> usize {
    let failed = conformance::run_all(c, env, report);
    println!(
        "CONFORMANCE: {} cases, {} passed, {failed} failed",
        conformance::CASES.len(),
        conformance::CASES.len() - failed
    );
    failed
}

/// A case with a deliberately wrong expectation (QUERY_PROTOCOL of the
/// core protocol, version 1, claimed to answer 0): the suite must fail it.
static WRONG: Case = Case {
    name: "deliberately_wrong_expectation",
    call: "QUERY_PROTOCOL",
    steps: &[Step::Call(CallStep {
        rax: call_rax(0, core_call::QUERY_PROTOCOL),
        rcx: Val::Imm(1),
        rdx: Val::Imm(0),
        r8: Val::Imm(0),
        r9: Val::Imm(0),
        expect: Expect {
            rax: result::SUCCESS,
            rcx: Reg::Is(Val::Imm(0)),
            rdx: Reg::Same,
            r8: Reg::Same,
        },
    })],
};

/// Runs the wrong case; whether the suite caught it.
pub fn run_wrong(c: &mut GuestCaller, env: &Env) -> bool {
    let r = conformance::run_case(c, env, &WRONG);
    report(&WRONG, &r);
    r.is_err()
}
