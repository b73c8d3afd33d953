//! The test guest: a small no_std program the SVSM hosts with AMD-V on the
//! native platform (packaged by `igvm-build build --guest`). It finds the
//! SVSM through its secrets page, as Linux does, calls it as Linux does and
//! runs the scenario its command line names (the SVSM's `guest=<word>`):
//!
//! - `conformance` (default): the protocol conformance suite, one line per case;
//! - `conformance-ghcb`: the same, calling through a GHCB page;
//! - `wrong-expectation`: a case with a wrong expected value, which must fail;
//! - `ghcb-unknown-request`: a GHCB request the SVSM does not serve (stopped);
//! - `write-svsm`: writes into SVSM memory (the SVSM must stop it);
//! - `write-vmsa`: creates a vCPU, then writes into its VMSA page (likewise);
//! - `vcpu-churn`: creates and deletes vCPUs many times over;
//! - `exit`: ends at once with success;
//! - `unhandled`: an exit the SVSM does not handle (reported, guest stopped);
//! - `ud2`: an exception in the guest (reported, guest stopped);
//! - `touch-unvalidated`: validates a page, uses it, rescinds it, touches it
//!   again (stopped);
//! - `bench`: round-trip medians of QUERY_PROTOCOL and of a bare VMMCALL.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod conformance;
mod heap;
mod io;
mod svsm;

use conformance::GuestCaller;
use svsm::{Svsm, Via};
use svsm_defs::secrets::SecretsPage;

/// The guest's GHCB page (a page of its boot memory below its stack).
const GHCB_GPA: u64 = svsm_bootdefs::guest::GUEST_CMDLINE_GPA + 0x1000;

/// Exit codes the guest writes to the exit port.
const PASS: u32 = 0;
pub(crate) const FAIL: u32 = 1;

/// The SVSM as the secrets page describes it.
struct Found {
    base: u64,
    size: u64,
    caa: u64,
    max_version: u32,
    vmpl: u8,
}

fn find_svsm(secrets: u64) -> Found {
    // SAFETY: RSI holds the GPA of the secrets page the SVSM filled
    // (identity mapped); read once into a copy.
    let s: &SecretsPage = unsafe { &*(secrets as *const SecretsPage) };
    Found {
        base: s.svsm_base,
        size: s.svsm_size,
        caa: s.svsm_caa,
        max_version: s.svsm_max_version,
        vmpl: s.svsm_guest_vmpl,
    }
}

fn cmdline(gpa: u64) -> &'static str {
    // SAFETY: RDI holds the GPA of the NUL-terminated command line the SVSM
    // copied into a page of guest memory (identity mapped).
    let bytes = unsafe { core::slice::from_raw_parts(gpa as *const u8, 256) };
    let n = bytes.iter().position(|&b| b == 0).unwrap_or(0);
    core::str::from_utf8(&bytes[..n]).unwrap_or("")
}

#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.start")]
extern "C" fn _start(cmdline_gpa: u64, secrets_gpa: u64) -> ! {
    let f = find_svsm(secrets_gpa);
    let scenario = cmdline(cmdline_gpa);
    println!(
        "test guest: SVSM at {:#x}+{:#x}, CAA {:#x}, max version {}, VMPL {}, scenario {:?}",
        f.base, f.size, f.caa, f.max_version, f.vmpl, scenario
    );
    let svsm = Svsm {
        caa: f.caa,
        via: Via::Msr,
    };
    let env = conformance::env(f.caa, f.base);
    let mut caller = GuestCaller {
        svsm: Svsm {
            caa: f.caa,
            via: Via::Msr,
        },
        vmpl: f.vmpl,
    };
    let code = match scenario {
        "" | "conformance" => match conformance::run(&mut caller, &env) {
            0 => PASS,
            _ => FAIL,
        },
        "conformance-ghcb" => {
            caller.svsm.via = Via::Ghcb(GHCB_GPA);
            match conformance::run(&mut caller, &env) {
                0 => PASS,
                _ => FAIL,
            }
        }
        "wrong-expectation" => {
            if conformance::run_wrong(&mut caller, &env) {
                println!("test guest: the wrong expectation was caught");
            }
            FAIL
        }
        "ghcb-unknown-request" => ghcb_unknown_request(&f),
        "write-svsm" => write_svsm(&f),
        "write-vmsa" => write_vmsa(&mut caller),
        "vcpu-churn" => vcpu_churn(&mut caller),
        "unhandled" => unhandled(),
        "exit" => PASS,
        "ud2" => {
            println!("test guest: executing UD2");
            // SAFETY: deliberately not: #UD exits to the SVSM (every
            // exception is intercepted), which stops the guest.
            unsafe { core::arch::asm!("ud2") };
            println!("test guest: UD2 returned");
            FAIL
        }
        "touch-unvalidated" => touch_unvalidated(&svsm),
        "bench" => bench(&svsm),
        other => {
            println!("test guest: unknown scenario {other:?}");
            FAIL
        }
    };
    io::exit(code)
}

/// CREATE_VCPU and DELETE_VCPU many times over (each new vCPU runs and
/// halts in between): every call succeeds, so the SVSM reclaims what a
/// deleted vCPU held.
fn vcpu_churn(c: &mut GuestCaller) -> u32 {
    use svsm_defs::svsm::{call_rax, core_call};
    use svsm_protocol::conformance::Caller;
    const ROUNDS: u32 = 64;
    let vmsa = conformance::SCRATCH + 0x3000;
    let caa = conformance::SCRATCH + 0x4000;
    for round in 0..ROUNDS {
        c.init_vmsa(vmsa);
        let apic = u64::from(1 + round % 3);
        let create = c.call(&svsm_protocol::CallRegs {
            rax: call_rax(0, core_call::CREATE_VCPU),
            rcx: vmsa,
            rdx: caa,
            r8: apic,
            r9: 0,
        });
        let delete = c.call(&svsm_protocol::CallRegs {
            rax: call_rax(0, core_call::DELETE_VCPU),
            rcx: vmsa,
            rdx: 0,
            r8: 0,
            r9: 0,
        });
        if create.rax != 0 || delete.rax != 0 {
            println!(
                "test guest: round {round}: CREATE_VCPU rax={:#x}, DELETE_VCPU rax={:#x}",
                create.rax, delete.rax
            );
            return FAIL;
        }
    }
    println!("test guest: {ROUNDS} vCPUs created and deleted");
    PASS
}

/// CREATE_VCPU with a VMSA in the scratch region, then a write into that
/// page: the SVSM must stop the guest.
fn write_vmsa(c: &mut GuestCaller) -> u32 {
    use svsm_protocol::conformance::Caller;
    let vmsa = conformance::SCRATCH + 0x3000;
    let caa = conformance::SCRATCH + 0x4000;
    c.init_vmsa(vmsa);
    let r = c.call(&svsm_protocol::CallRegs {
        rax: svsm_defs::svsm::call_rax(0, svsm_defs::svsm::core_call::CREATE_VCPU),
        rcx: vmsa,
        rdx: caa,
        r8: u64::from(conformance::SECOND_APIC_ID),
        r9: 0,
    });
    println!(
        "test guest: CREATE_VCPU rax={:#x}; writing into its VMSA page",
        r.rax
    );
    // SAFETY: deliberately not: the VMSA page is no longer guest-writable.
    unsafe { core::ptr::write_volatile((vmsa + 0x178) as *mut u64, 0xbad) };
    println!("test guest: the write into the VMSA page went through");
    FAIL
}

/// A GHCB-page VMGEXIT with an exit code the SVSM does not serve (Page
/// State Change): the SVSM must stop the guest with a report.
fn ghcb_unknown_request(f: &Found) -> u32 {
    let p = GHCB_GPA as *mut svsm_defs::ghcb::Ghcb;
    // SAFETY: the GHCB page is this guest's (identity mapped).
    unsafe {
        (*p).sw_exit_code = svsm_defs::ghcb::exit_code::SNP_PAGE_STATE_CHANGE;
        (*p).sw_exit_info_1 = 0;
        (*p).sw_exit_info_2 = 0;
    }
    println!("test guest: VMGEXIT through the GHCB with Page State Change");
    let svsm = Svsm {
        caa: f.caa,
        via: Via::Ghcb(GHCB_GPA),
    };
    svsm::vmgexit_as_is(&svsm);
    println!("test guest: the SVSM returned from an unknown GHCB request");
    FAIL
}

/// A page beyond the memory validated at launch: validated by PVALIDATE
/// (the SVSM zeroes and maps it), written and read back, rescinded, then
/// touched again, which the SVSM must stop (it is out of the nested page
/// tables).
fn touch_unvalidated(svsm: &Svsm) -> u32 {
    const PAGE: u64 = svsm_bootdefs::guest::GUEST_PREVALIDATED_END + 0x10_0000;
    let list = svsm.caa + 8;
    let pvalidate = |validate: bool| {
        // SAFETY: a one-entry list in this vCPU's Calling Area buffer.
        unsafe {
            core::ptr::write_volatile(list as *mut u64, 1);
            core::ptr::write_volatile((list + 8) as *mut u64, PAGE | if validate { 4 } else { 0 });
        }
        svsm.call(1, list, 0, 0, 0).map(|r| r.rax)
    };
    let r = pvalidate(true);
    // SAFETY: the page was just validated (and so mapped) for this guest.
    let before = unsafe { core::ptr::read_volatile(PAGE as *const u64) };
    // SAFETY: as above.
    unsafe { core::ptr::write_volatile(PAGE as *mut u64, 0x1234_5678) };
    // SAFETY: as above.
    let after = unsafe { core::ptr::read_volatile(PAGE as *const u64) };
    println!(
        "test guest: PVALIDATE {PAGE:#x} rax={r:x?}: read {before:#x}, wrote and read {after:#x}"
    );
    let r = pvalidate(false);
    println!("test guest: rescinded rax={r:x?}; touching the page again");
    // SAFETY: deliberately not: the page is no longer validated.
    let v = unsafe { core::ptr::read_volatile(PAGE as *const u64) };
    println!("test guest: read {v:#x} from an unvalidated page");
    FAIL
}

fn write_svsm(f: &Found) -> u32 {
    println!("test guest: writing into SVSM memory at {:#x}", f.base);
    // SAFETY: deliberately not: the SVSM's memory is absent from the nested
    // page tables, so this write must stop the guest.
    unsafe { core::ptr::write_volatile(f.base as *mut u64, 0xbad) };
    println!("test guest: the write into SVSM memory went through");
    FAIL
}

fn unhandled() -> u32 {
    println!("test guest: reading MSR 0x10 (TSC), which the SVSM does not emulate");
    let (lo, hi): (u32, u32);
    // SAFETY: RDMSR exits to the SVSM.
    unsafe { core::arch::asm!("rdmsr", in("ecx") 0x10u32, out("eax") lo, out("edx") hi) };
    println!("test guest: RDMSR returned {hi:#x}:{lo:#x}");
    FAIL
}

/// Round trips per measurement.
const BENCH_RUNS: usize = 201;
/// Full PVALIDATE lists per measurement.
const LIST_RUNS: usize = 9;
/// The most entries a list in the Calling Area holds.
const CA_LIST_ENTRIES: u64 = 510;

fn median<const N: usize>(mut v: [u64; N]) -> u64 {
    v.sort_unstable();
    v[N / 2]
}

fn bench(svsm: &Svsm) -> u32 {
    let mut bare = [0u64; BENCH_RUNS];
    let mut query = [0u64; BENCH_RUNS];
    for t in bare.iter_mut() {
        let t0 = io::rdtsc();
        svsm::bare_vmmcall();
        *t = io::rdtsc() - t0;
    }
    for t in query.iter_mut() {
        let t0 = io::rdtsc();
        if svsm.call_once(6, 1, 0, 0, 0).is_err() {
            return FAIL;
        }
        *t = io::rdtsc() - t0;
    }
    println!(
        "BENCH guest-exit: bare VMMCALL median {} cycles, QUERY_PROTOCOL median {} cycles ({} runs each)",
        median(bare),
        median(query),
        BENCH_RUNS
    );
    bench_pvalidate(svsm)
}

/// A full PVALIDATE list in the Calling Area: 510 pages of the scratch
/// region, rescinded then validated again, timed as the guest sees it
/// (INCOMPLETE slices retried).
fn bench_pvalidate(svsm: &Svsm) -> u32 {
    let list = svsm.caa + 8;
    let mut rescind = [0u64; LIST_RUNS];
    let mut validate = [0u64; LIST_RUNS];
    for (r, v) in rescind.iter_mut().zip(validate.iter_mut()) {
        for (t, action) in [(r, 0u64), (v, 4)] {
            // SAFETY: the list lies in this vCPU's Calling Area buffer
            // (identity mapped): header, then 510 u64 entries.
            unsafe {
                core::ptr::write_volatile(list as *mut u64, CA_LIST_ENTRIES);
                for i in 0..CA_LIST_ENTRIES {
                    let gpa = conformance::SCRATCH + i * 0x1000;
                    core::ptr::write_volatile((list + 8 + i * 8) as *mut u64, gpa | action | 8);
                }
            }
            let t0 = io::rdtsc();
            match svsm.call(1, list, 0, 0, 0) {
                Ok(r) if r.rax == 0 => {}
                r => {
                    println!("test guest: PVALIDATE list failed: {r:x?}");
                    return FAIL;
                }
            }
            *t = io::rdtsc() - t0;
        }
    }
    let (rescind, validate) = (median(rescind), median(validate));
    println!(
        "BENCH pvalidate: {CA_LIST_ENTRIES}-entry list in the CA: rescind median {rescind} cycles ({} per page), validate median {validate} cycles ({} per page), {LIST_RUNS} lists each",
        rescind / CA_LIST_ENTRIES,
        validate / CA_LIST_ENTRIES
    );
    PASS
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("test guest: PANIC: {info}");
    io::exit(2)
}
