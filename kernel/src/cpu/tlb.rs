//! TLB shootdown: after changing or removing a mapping that other CPUs may
//! have cached, and before the page or frame is reused, every other
//! running CPU drops its entries for the range. One shootdown at a time;
//! the request travels as an NMI (`smp::REQ_FLUSH`), which the handler
//! completes without taking a lock, so the initiator may hold any lock but
//! `SHOOTDOWN` (lock order: see docs/smp.md).

use super::percpu::{CpuState, PerCpu, all, this_cpu};
use super::smp::{REQ_FLUSH, signal, wait_until};
use crate::arch::x86::{flush_tlb_all, invlpg, rdtsc};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;
use svsm_bootdefs::layout::PAGE_SIZE;

/// Above this many pages a CPU flushes its whole TLB instead.
const FLUSH_ALL_PAGES: u64 = 32;

static SHOOTDOWN: Mutex<()> = Mutex::new(());
static GENERATION: AtomicU64 = AtomicU64::new(0);
static RANGE_START: AtomicU64 = AtomicU64::new(0);
static RANGE_PAGES: AtomicU64 = AtomicU64::new(0);
/// Shootdowns sent, CPU answers collected and TSC cycles spent waiting for
/// them (for the figures tests print).
pub static SENT: AtomicU64 = AtomicU64::new(0);
pub static ANSWERS: AtomicU64 = AtomicU64::new(0);
pub static WAIT_TSC: AtomicU64 = AtomicU64::new(0);

fn flush_range(start: u64, pages: u64) {
    if pages > FLUSH_ALL_PAGES {
        flush_tlb_all();
    } else {
        for i in 0..pages {
            invlpg(start + i * PAGE_SIZE);
        }
    }
}

/// Drops `pages` pages from `va` from every CPU's TLB (this one's too) and
/// returns once every other running CPU has. Returns the CPUs that did not
/// answer in time (0 normally).
pub fn shootdown(va: u64, pages: u64) -> usize {
    flush_range(va, pages);
    let me = this_cpu();
    let targets = || {
        all()
            .iter()
            .filter(move |p| !core::ptr::eq(*p, me) && p.state().answers_nmi())
    };
    if targets().next().is_none() {
        return 0;
    }
    let _one = SHOOTDOWN.lock();
    RANGE_START.store(va, Ordering::Relaxed);
    RANGE_PAGES.store(pages, Ordering::Relaxed);
    let generation = GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
    SENT.fetch_add(1, Ordering::Relaxed);
    let mut silent = 0;
    let t0 = rdtsc();
    for pc in targets() {
        signal(pc, REQ_FLUSH);
    }
    for pc in targets() {
        let answered = wait_until(|| {
            pc.tlb_ack.load(Ordering::Acquire) >= generation || pc.state() == CpuState::Stopped
        });
        if answered {
            ANSWERS.fetch_add(1, Ordering::Relaxed);
        } else {
            silent += 1;
        }
    }
    WAIT_TSC.fetch_add(rdtsc().wrapping_sub(t0), Ordering::Relaxed);
    silent
}

/// The NMI side of a shootdown (no lock: the initiator holds `SHOOTDOWN`).
pub fn answer(me: &PerCpu) {
    let generation = GENERATION.load(Ordering::Acquire);
    flush_range(
        RANGE_START.load(Ordering::Relaxed),
        RANGE_PAGES.load(Ordering::Relaxed),
    );
    me.tlb_ack.store(generation, Ordering::Release);
}
