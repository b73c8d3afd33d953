//! Exception handling: stack-guard reports, unexpected-exception reports,
//! backtraces and fatal exits. #PF, #DF, NMI, #MC and #VC arrive on their
//! own guarded IST stacks, so these reports always run on a healthy stack.

use crate::arch::entry::ExceptionFrame;
use crate::arch::x86::halt_forever;
use crate::arch::x86::read_cr2;
use crate::backtrace;
use crate::cpu::percpu::{CpuState, PerCpu, this_cpu};
use crate::cpu::smp::{self, FatalClaim};
use crate::cpu::tlb;
use crate::platform::shutdown;
use crate::serial::CONSOLE;
use crate::stacks;
use crate::{print, println};
use core::sync::atomic::Ordering;
use svsm_bootdefs::ExitCode;
use svsm_guards::FaultContext;
use svsm_kernel::vectors::{VEC_DF, VEC_NMI, VEC_PF, VEC_VC, vector_name};

/// The fault hook of the test image: when `VECTOR` is set to `v`, the
/// handler of vector `v` first calls the function in `FUNCTION` (the in-QEMU
/// overflow scenarios overflow an IST stack from inside its handler). The
/// production image has no such hook.
#[cfg(feature = "testcases")]
pub mod test_hook {
    use core::sync::atomic::{AtomicU64, Ordering};

    pub static VECTOR: AtomicU64 = AtomicU64::new(u64::MAX);
    pub static FUNCTION: AtomicU64 = AtomicU64::new(0);

    /// Inlined, so that the indirect call stays in `handle_exception`
    /// (stackcheck.toml annotates it there).
    #[inline(always)]
    pub(super) fn run(vector: u64) {
        if VECTOR.load(Ordering::Relaxed) == vector {
            VECTOR.store(u64::MAX, Ordering::Relaxed);
            let f = FUNCTION.load(Ordering::Relaxed);
            if f != 0 {
                // SAFETY: only `testcases` stores a `fn()` here.
                let f: fn() = unsafe { core::mem::transmute::<u64, fn()>(f) };
                f();
            }
        }
    }
}

/// Called by `svsm_exc_common` (`arch::entry`) with the saved frame, on
/// the stack the IDT selected for the vector.
#[unsafe(no_mangle)]
extern "C" fn svsm_exception_dispatch(frame: &mut ExceptionFrame) {
    handle_exception(frame);
}

/// Not inlined into the dispatcher: stackcheck.toml annotates the test
/// image's fault-hook call as made from here.
#[inline(never)]
pub fn handle_exception(frame: &mut ExceptionFrame) {
    let cpu = this_cpu();
    let pf_nesting = if frame.vector == VEC_PF {
        cpu.pf_depth.fetch_add(1, Ordering::Relaxed)
    } else {
        0
    };
    #[cfg(feature = "testcases")]
    test_hook::run(frame.vector);
    if frame.vector == VEC_VC && platform_vc(frame) {
        return;
    }
    if frame.vector == VEC_NMI {
        if nmi(cpu) {
            stopped(cpu, frame);
            // The registry may be held by the interrupted code: then no
            // backtrace (its line above says where this CPU was).
            if !stacks::REGISTRY.is_locked() {
                backtrace::print_here();
            }
            cpu.set_state(CpuState::Stopped);
            halt_forever()
        }
        return;
    }
    begin_fatal();
    let cr2 = read_cr2();
    let ctx = FaultContext {
        rip: frame.rip,
        rsp: frame.rsp,
        cr2,
    };
    if frame.vector == VEC_PF || frame.vector == VEC_DF {
        let registry = stacks::registry_for_fault();
        if let Some(report) = registry.guard_report(ctx) {
            println!("{report}");
            println!(
                "  detected by vector={} ({}){}",
                frame.vector,
                vector_name(frame.vector),
                if pf_nesting > 0 {
                    " while handling a page fault"
                } else {
                    ""
                }
            );
            drop(registry);
            backtrace::print_here();
            shutdown(ExitCode::StackOverflow);
        }
    }
    println!(
        "EXCEPTION: vector={} ({}) error={:#x} rip={:#x} rsp={:#x} cr2={:#x} cpu={}",
        frame.vector,
        vector_name(frame.vector),
        frame.error_code,
        frame.rip,
        frame.rsp,
        cr2,
        cpu.cpu_id()
    );
    backtrace::print_here();
    shutdown(ExitCode::Exception);
}

/// An NMI: another CPU's request (TLB shootdown, stop), a wake-up from HLT
/// (a posted work item), or a test's software NMI. Counted, never printed
/// unless it stops the CPU: the interrupted code may hold the console lock.
/// Returns whether the CPU is to stop.
fn nmi(cpu: &PerCpu) -> bool {
    cpu.nmi_count.fetch_add(1, Ordering::Relaxed);
    let req = cpu.requests.swap(0, Ordering::AcqRel);
    if req & smp::REQ_FLUSH != 0 {
        tlb::answer(cpu);
    }
    req & smp::REQ_STOP != 0
}

/// Starts a fatal report on this CPU: the first one anywhere stops the
/// other CPUs (each prints its state) before taking any lock they may hold;
/// a CPU that loses the race waits, halted, to be stopped in turn.
pub fn begin_fatal() {
    match smp::claim_fatal() {
        FatalClaim::First => stop_others_for_report(),
        FatalClaim::Nested => CONSOLE.force_unlock(),
        FatalClaim::Other => halt_forever(),
    }
}

/// The first fatal report's start (its CPU claimed it): every other CPU
/// stops and prints its state, then the console is this CPU's.
pub fn stop_others_for_report() {
    CONSOLE.force_unlock();
    let silent = smp::stop_others();
    CONSOLE.force_unlock();
    // Unformatted: this runs inside the panic handler's formatting cycle.
    if silent > 0 {
        CONSOLE.write_str_raw("SMP: a CPU did not answer the stop request\n");
    }
}

/// Stopped by the CPU reporting a fatal error: prints where this CPU was
/// (the caller adds its backtrace, then halts).
#[inline(never)]
fn stopped(cpu: &PerCpu, frame: &ExceptionFrame) {
    // The console lock may be held by the code this NMI interrupted: wait
    // a little for another holder, then break it (its holder is this CPU,
    // which never returns there, or one that is about to be stopped).
    if !smp::wait_until_short(|| !CONSOLE.is_locked()) {
        CONSOLE.force_unlock();
    }
    let stack = stacks::REGISTRY
        .try_lock()
        .and_then(|r| r.find(frame.rsp).map(|(_, i)| (i.kind.name(), i.name)));
    let (kind, name) = stack.unwrap_or(("?", "?"));
    print!(
        "CPU {} stopped: rip={:#x} rsp={:#x} stack={kind}:{name} task=",
        cpu.cpu_id(),
        frame.rip,
        frame.rsp
    );
    match cpu.current_task.load(Ordering::Relaxed) {
        crate::cpu::percpu::NO_TASK => println!("-"),
        t => println!("{t}"),
    }
}

/// #VC: the platform emulates the instruction (SNP) or declines. Not
/// inlined: its indirect call stays out of `handle_exception`, whose
/// indirect call (the test hook) stackcheck.toml annotates as adding nothing.
#[inline(never)]
fn platform_vc(frame: &mut ExceptionFrame) -> bool {
    crate::platform::platform().handle_vc(frame)
}

/// Dry run of the fault-reporting path on the current stack: formats a guard
/// report and walks a backtrace into a sink. Run on every IST stack at boot
/// so their high-water marks show what the real fault path needs.
pub fn fault_path_dry_run() {
    struct Sink;
    impl core::fmt::Write for Sink {
        fn write_str(&mut self, _: &str) -> core::fmt::Result {
            Ok(())
        }
    }
    use core::fmt::Write;
    let registry = stacks::REGISTRY.lock();
    if let Some((_, info)) = registry.iter().next() {
        let ctx = FaultContext {
            rip: 0,
            rsp: info.range.bottom,
            cr2: info.range.bottom - 8,
        };
        if let Some(r) = registry.guard_report(ctx) {
            let _ = write!(Sink, "{r}");
        }
    }
    drop(registry);
    backtrace::walk_only(
        svsm_unwinder::capture_regs!(),
        svsm_unwinder::DEFAULT_FRAME_LIMIT,
    );
}
