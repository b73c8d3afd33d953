//! Cross-CPU signalling: the NMI requests (stop, TLB flush) one CPU posts
//! to another, the claim of the one CPU that reports a fatal error, and
//! the work mailbox idle APs wait on.
//!
//! NMIs, not fixed-vector IPIs: the SVSM runs with interrupts disabled, and
//! a request must reach a CPU that spins on a lock or sits in HLT. The
//! handler takes no lock (see `fault.rs`), so a CPU waiting for an answer
//! may hold any lock.

use super::percpu::{CpuState, PerCpu, all, this_cpu};
use crate::arch::apic;
use crate::arch::x86::rdtsc;
use core::sync::atomic::{AtomicU32, Ordering};
use svsm_defs::apic::Ipi;
pub use svsm_kernel::smp_policy::FatalClaim;
use svsm_kernel::smp_policy::{NO_OWNER, claim};

/// Stop for good: print this CPU's state, then halt.
pub const REQ_STOP: u32 = 1 << 0;
/// Complete the pending TLB shootdown (`tlb.rs`).
pub const REQ_FLUSH: u32 = 1 << 1;

/// TSC cycles a CPU waits for another to answer before giving up on it
/// (a few seconds even on slow TCG hosts).
pub const ANSWER_TIMEOUT_TSC: u64 = 20_000_000_000;

/// Posts `req` to `target` and sends it an NMI.
pub fn signal(target: &PerCpu, req: u32) {
    target.requests.fetch_or(req, Ordering::AcqRel);
    send_nmi(target);
}

fn send_nmi(target: &PerCpu) {
    // SAFETY: the target is a started CPU whose IDT handles NMIs (requests
    // are posted before, so the handler knows what to do; none is a wake-up).
    unsafe { apic::send(Ipi::nmi(target.apic_id.load(Ordering::Relaxed))) };
}

/// Spins until `done()` or the timeout; false on timeout.
pub fn wait_until(done: impl FnMut() -> bool) -> bool {
    wait_bounded(ANSWER_TIMEOUT_TSC, done)
}

/// Like `wait_until`, bounded to about a millisecond.
pub fn wait_until_short(done: impl FnMut() -> bool) -> bool {
    wait_bounded(5_000_000, done)
}

fn wait_bounded(limit_tsc: u64, mut done: impl FnMut() -> bool) -> bool {
    let start = rdtsc();
    while !done() {
        if rdtsc().wrapping_sub(start) > limit_tsc {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// Which CPU reports a fatal error (panic, fatal exception), if any.
static FATAL_OWNER: AtomicU32 = AtomicU32::new(NO_OWNER);

/// Claims the fatal report for this CPU (`smp_policy::claim`).
pub fn claim_fatal() -> FatalClaim {
    claim(&FATAL_OWNER, this_cpu().cpu_id())
}

/// Stops every other running CPU, one at a time so that the state each
/// prints (`fault.rs`) stays together; returns how many did not answer.
/// Called by the CPU that claimed the fatal report, before it takes any
/// lock the others may hold.
pub fn stop_others() -> usize {
    let me = this_cpu();
    let mut silent = 0;
    for pc in all().iter().filter(|p| !core::ptr::eq(*p, me)) {
        if !pc.state().answers_nmi() {
            continue;
        }
        signal(pc, REQ_STOP);
        // A tenth of the usual wait: a fatal report should not stall
        // long on a CPU that cannot answer (e.g. one spinning with NMIs
        // blocked).
        if !wait_bounded(ANSWER_TIMEOUT_TSC / 10, || pc.state() == CpuState::Stopped) {
            silent += 1;
        }
    }
    silent
}

/// A work item: `f(arg)` on the target CPU's per-CPU stack.
pub type WorkFn = fn(u64);

/// Posts `f(arg)` to idle CPU `target` and wakes it; false if the CPU is
/// not idle (busy, stopped or never started).
pub fn post_work(target: &PerCpu, f: WorkFn, arg: u64) -> bool {
    if target.state() != CpuState::Idle
        || target.work_posted.load(Ordering::Acquire) != target.work_done.load(Ordering::Acquire)
    {
        return false;
    }
    target.work_fn.store(f as usize as u64, Ordering::Relaxed);
    target.work_arg.store(arg, Ordering::Relaxed);
    let seq = target.work_posted.fetch_add(1, Ordering::AcqRel) + 1;
    // The AP may have checked its mailbox just before HLT: an NMI that
    // lands between the check and the HLT is lost, so repeat it until the
    // AP has taken the item.
    while target.work_taken.load(Ordering::Acquire) < seq {
        send_nmi(target);
        let t0 = rdtsc();
        while target.work_taken.load(Ordering::Acquire) < seq
            && rdtsc().wrapping_sub(t0) < 2_000_000
        {
            core::hint::spin_loop();
        }
        if target.state() == CpuState::Stopped {
            return false;
        }
    }
    true
}

/// Waits until `target` finished its posted work (or stopped); false on
/// timeout.
pub fn wait_work(target: &PerCpu) -> bool {
    wait_until(|| {
        target.work_done.load(Ordering::Acquire) == target.work_posted.load(Ordering::Acquire)
            || target.state() == CpuState::Stopped
    })
}

/// The AP side: takes the posted item, if any.
pub fn take_work(me: &PerCpu) -> Option<(WorkFn, u64)> {
    let posted = me.work_posted.load(Ordering::Acquire);
    if posted == me.work_taken.load(Ordering::Relaxed) {
        return None;
    }
    let f = me.work_fn.load(Ordering::Relaxed);
    let arg = me.work_arg.load(Ordering::Relaxed);
    me.work_taken.store(posted, Ordering::Release);
    // SAFETY: only `post_work` stores here, always a `WorkFn`.
    let f = unsafe { core::mem::transmute::<usize, WorkFn>(f as usize) };
    Some((f, arg))
}

/// The AP side: the item taken last is finished.
pub fn work_finished(me: &PerCpu) {
    me.work_done
        .store(me.work_taken.load(Ordering::Relaxed), Ordering::Release);
}
