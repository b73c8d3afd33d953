//! Test cases that need several CPUs (QEMU `-smp 4`): every CPU up and
//! working, faults and panics on an AP, concurrent allocator and registry
//! stress, and a TLB shootdown a stale mapping would fail.

use super::{hook, recurse_forever};
use crate::ap;
use crate::arch::x86::{rdtsc, read_cr3};
use crate::cpu::percpu::{self, CpuState, this_cpu};
use crate::cpu::{smp, tlb};
use crate::mm::{frames, paging};
use crate::println;
use crate::stacks;
use crate::task;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use svsm_bootdefs::layout::{KERNEL_REGION_END, KERNEL_REGION_START, PAGE_SIZE, phys_to_virt};
use svsm_defs::{PhysAddr, VirtAddr};
use svsm_guards::{Owner, SLOT_SIZE, STACK_AREA_BASE, StackKind};
use svsm_kernel::vectors::VEC_NMI;

/// CPUs the SMP cases expect (the boot tests run `-smp 4`).
const WANT_CPUS: usize = 4;

fn need_cpus() -> Result<usize, &'static str> {
    let n = ap::online();
    if n < WANT_CPUS {
        println!("smp: {n} CPUs online, {WANT_CPUS} needed (boot with -smp {WANT_CPUS})");
        return Err("too few CPUs online");
    }
    Ok(n)
}

fn idle_ap(cpu: usize) -> Result<&'static percpu::PerCpu, &'static str> {
    let pc = percpu::cpu(cpu);
    if pc.state() != CpuState::Idle {
        return Err("AP not idle");
    }
    Ok(pc)
}

/// Runs `f(arg)` on AP `cpu` and waits for it.
fn on_ap(cpu: usize, f: smp::WorkFn, arg: u64) -> Result<(), &'static str> {
    let pc = idle_ap(cpu)?;
    if !smp::post_work(pc, f, arg) || !smp::wait_work(pc) {
        return Err("AP did not run its work item");
    }
    Ok(())
}

static RAN_ON: AtomicU64 = AtomicU64::new(0);

fn hello(_: u64) {
    let me = this_cpu().cpu_id();
    RAN_ON.fetch_or(1 << me, Ordering::AcqRel);
    let _ = task::run_task("hello", || {});
}

/// Every CPU runs a work item with a task of its own; the HWMs of every
/// CPU's stacks follow the PASS line.
pub fn up() -> Result<(), &'static str> {
    let n = need_cpus()?;
    if !ap::run_everywhere(hello, 0) {
        return Err("a CPU did not run its work item");
    }
    let want = (1u64 << n) - 1;
    let got = RAN_ON.load(Ordering::Acquire);
    println!("smp-up: {n} CPUs online, work ran on mask {got:#x}");
    for pc in percpu::all().iter().filter(|p| p.cpu_id() != 0) {
        let cycles = pc
            .entry_tsc
            .load(Ordering::Relaxed)
            .wrapping_sub(pc.start_tsc.load(Ordering::Relaxed));
        if pc.state().answers_nmi() {
            println!(
                "smp-up: cpu {} start-up {cycles} TSC cycles ({} us)",
                pc.cpu_id(),
                cycles * 1000 / ap::tsc_khz().max(1)
            );
        }
    }
    if got != want {
        return Err("not every CPU ran its work item");
    }
    Ok(())
}

fn overflow_in_task(_: u64) {
    let _ = task::run_task("ap-overflow", recurse_forever);
}

/// AP 2 overflows its task stack: the report names CPU 2 and the task.
pub fn overflow_task() -> Result<(), &'static str> {
    need_cpus()?;
    on_ap(2, overflow_in_task, 0)?;
    Err("the AP's overflow was not caught")
}

fn overflow_nmi_ist(_: u64) {
    hook(VEC_NMI, recurse_forever);
    // SAFETY: software NMI; the handler runs on this AP's NMI IST stack
    // and overflows it.
    unsafe { core::arch::asm!("int 2") };
}

/// AP 3 overflows its NMI IST stack from inside its NMI handler.
pub fn overflow_ist() -> Result<(), &'static str> {
    need_cpus()?;
    on_ap(3, overflow_nmi_ist, 0)?;
    Err("the AP's IST overflow was not caught")
}

fn panic_here(_: u64) {
    panic!("deliberate panic on cpu {}", this_cpu().cpu_id());
}

/// AP 1 panics: the other CPUs are stopped and print their state first.
pub fn panic_on_ap() -> Result<(), &'static str> {
    need_cpus()?;
    on_ap(1, panic_here, 0)?;
    Err("the AP's panic returned")
}

/// Frames handed out during the stress, one bit each: a frame given to two
/// holders at once sets a bit twice.
static FRAME_OWNED: [AtomicU64; FRAME_WORDS] = [const { AtomicU64::new(0) }; FRAME_WORDS];
const FRAME_WORDS: usize = ((KERNEL_REGION_END - KERNEL_REGION_START) / PAGE_SIZE / 64) as usize;
/// Stack slots likewise.
static SLOT_OWNED: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
static ERRORS: AtomicU64 = AtomicU64::new(0);
static OPS: AtomicU64 = AtomicU64::new(0);
const STRESS_ROUNDS: u64 = 200;

fn claim(map: &[AtomicU64], i: usize) -> bool {
    let bit = 1u64 << (i % 64);
    map.get(i / 64)
        .is_some_and(|w| w.fetch_or(bit, Ordering::AcqRel) & bit == 0)
}

fn unclaim(map: &[AtomicU64], i: usize) {
    if let Some(w) = map.get(i / 64) {
        w.fetch_and(!(1u64 << (i % 64)), Ordering::AcqRel);
    }
}

fn stress_frames(tag: u64) -> u64 {
    let mut held: [Option<PhysAddr>; 8] = [None; 8];
    let mut errors = 0;
    for slot in held.iter_mut() {
        let Some(pa) = frames::alloc_frame() else {
            errors += 1;
            continue;
        };
        let i = ((pa.as_u64() - KERNEL_REGION_START) / PAGE_SIZE) as usize;
        if !claim(&FRAME_OWNED, i) {
            errors += 1; // handed out twice
        }
        // SAFETY: the frame was just allocated to this CPU; the direct map covers it.
        unsafe { (phys_to_virt(pa.as_u64()) as *mut u64).write_volatile(tag) };
        *slot = Some(pa);
    }
    for pa in held.into_iter().flatten() {
        // SAFETY: still this CPU's frame.
        if unsafe { (phys_to_virt(pa.as_u64()) as *const u64).read_volatile() } != tag {
            errors += 1;
        }
        unclaim(
            &FRAME_OWNED,
            ((pa.as_u64() - KERNEL_REGION_START) / PAGE_SIZE) as usize,
        );
        frames::free_frames(pa, 1);
    }
    errors
}

fn stress_heap(tag: u64, round: u64) -> u64 {
    let sizes = [1usize, 3, 17, 64, 300, 1100];
    let boxes: Vec<Box<[u64]>> = sizes
        .iter()
        .map(|&n| alloc::vec![tag ^ round; n].into_boxed_slice())
        .collect();
    boxes
        .iter()
        .filter(|b| b.iter().any(|&x| x != tag ^ round))
        .count() as u64
}

fn stress_stack(tag: u64) -> u64 {
    let me = this_cpu().cpu_id();
    let Ok(info) = stacks::alloc(StackKind::Task, Owner::task(me, 0), "stress") else {
        return 1;
    };
    let slot = ((info.range.guard_lo - STACK_AREA_BASE) / SLOT_SIZE) as usize;
    let mut errors = u64::from(!claim(&SLOT_OWNED, slot));
    let words = (info.range.size() / 8) as usize;
    let p = info.range.bottom as *mut u64;
    // SAFETY: the stack was just mapped for this CPU alone.
    unsafe {
        p.write_volatile(tag);
        p.add(words - 1).write_volatile(tag);
        if p.read_volatile() != tag || p.add(words - 1).read_volatile() != tag {
            errors += 1;
        }
    }
    unclaim(&SLOT_OWNED, slot);
    stacks::free(&info);
    errors
}

fn stress(_: u64) {
    let tag = 0x5eed_0000_0000_0000 | u64::from(this_cpu().cpu_id());
    let mut errors = 0;
    for round in 0..STRESS_ROUNDS {
        errors += stress_frames(tag) + stress_heap(tag, round);
        if round % 4 == 0 {
            errors += stress_stack(tag);
        }
    }
    OPS.fetch_add(
        STRESS_ROUNDS * (16 + 12) + STRESS_ROUNDS / 4 * 2,
        Ordering::Relaxed,
    );
    ERRORS.fetch_add(errors, Ordering::Relaxed);
}

/// Frames, heap and stack registry (with its mappings and shootdowns) used
/// from every CPU at once, then checked for consistency.
pub fn stress_all() -> Result<(), &'static str> {
    let n = need_cpus()?;
    let stacks_before = stacks::REGISTRY.lock().len();
    let heap_before = crate::mm::heap::HEAP.stats().small_pages;
    let (free_before, _) = frames::stats();
    let sent_before = tlb::SENT.load(Ordering::Relaxed);
    let wait_before = tlb::WAIT_TSC.load(Ordering::Relaxed);
    let t0 = rdtsc();
    if !ap::run_everywhere(stress, 0) {
        return Err("a CPU did not finish the stress");
    }
    let cycles = rdtsc() - t0;
    let stacks_after = stacks::REGISTRY.lock().len();
    let heap_growth = crate::mm::heap::HEAP.stats().small_pages - heap_before;
    let (free_after, total) = frames::stats();
    let errors = ERRORS.load(Ordering::Relaxed);
    let ops = OPS.load(Ordering::Relaxed);
    let khz = ap::tsc_khz().max(1);
    let us = cycles * 1000 / khz;
    let sent = (tlb::SENT.load(Ordering::Relaxed) - sent_before).max(1);
    let wait_us = (tlb::WAIT_TSC.load(Ordering::Relaxed) - wait_before) * 1000 / khz;
    println!(
        "smp-stress: {n} CPUs, {ops} allocator/registry operations in {us} us ({} per ms), {errors} errors; \
         shootdowns {sent} answered by {} CPUs, {} us each on average; frames free {free_before} -> {free_after} of {total} \
         (heap kept {heap_growth} pages); registry {stacks_before} -> {stacks_after} stacks",
        ops * 1000 / us.max(1),
        tlb::ANSWERS.load(Ordering::Relaxed),
        wait_us / sent
    );
    if errors > 0 {
        return Err("an allocation was handed out twice or overwritten");
    }
    if stacks_after != stacks_before {
        return Err("the stack registry lost or kept stacks");
    }
    if FRAME_OWNED.iter().any(|w| w.load(Ordering::Relaxed) != 0) {
        return Err("frames still marked held");
    }
    // New page-table pages (stack slots in fresh 2 MiB regions) stay; at
    // most one per eight stack slots used plus the upper levels.
    let leaked = free_before - free_after - heap_growth.min(free_before - free_after);
    if leaked > (STRESS_ROUNDS / 4 * n as u64 / 8 + 3) as usize {
        return Err("frames leaked");
    }
    Ok(())
}

/// A kernel address nothing else maps (PML4 slot 384).
const TLB_TEST_VA: u64 = 0xffff_c000_0000_0000;
static READ_VALUE: AtomicU64 = AtomicU64::new(0);

fn read_test_page(_: u64) {
    // SAFETY: reads the test page the boot CPU mapped; after the shootdown
    // this must fault (the case ends in that fault).
    let v = unsafe { (TLB_TEST_VA as *const u64).read_volatile() };
    READ_VALUE.store(v, Ordering::Release);
}

fn frame_with(value: u64) -> Result<PhysAddr, &'static str> {
    let pa = frames::alloc_frame().ok_or("out of frames")?;
    // SAFETY: a fresh frame, reached through the direct map.
    unsafe { (phys_to_virt(pa.as_u64()) as *mut u64).write_volatile(value) };
    Ok(pa)
}

fn map_test_page(pa: PhysAddr) -> Result<(), &'static str> {
    // SAFETY: TLB_TEST_VA belongs to this test alone; `pa` is its frame.
    unsafe {
        paging::map_page(
            VirtAddr::new(TLB_TEST_VA),
            pa,
            paging::DATA_RW,
            &mut frames::alloc_frame,
        )
    }
    .map_err(|_| "mapping the test page failed")
}

/// CPU 1 caches a mapping; the boot CPU changes it without a shootdown
/// (CPU 1 still reads the old frame), then unmaps it with one: CPU 1's
/// next read must fault, which ends the boot with its exception report.
pub fn tlb_shootdown() -> Result<(), &'static str> {
    need_cpus()?;
    let (old, new) = (frame_with(0x1111)?, frame_with(0x2222)?);
    map_test_page(old)?;
    on_ap(1, read_test_page, 0)?;
    println!(
        "smp-tlb: cpu 1 read {:#x} through the first mapping",
        READ_VALUE.load(Ordering::Acquire)
    );
    // SAFETY: the test page is this test's; CPU 1 only reads it.
    unsafe { paging::unmap_page(VirtAddr::new(TLB_TEST_VA)) };
    map_test_page(new)?;
    on_ap(1, read_test_page, 0)?;
    let stale = READ_VALUE.load(Ordering::Acquire);
    println!(
        "smp-tlb: remapped without a shootdown: cpu 1 read {stale:#x} ({})",
        if stale == 0x1111 { "stale" } else { "fresh" }
    );
    // SAFETY: as above.
    unsafe { paging::unmap_page(VirtAddr::new(TLB_TEST_VA)) };
    let silent = tlb::shootdown(TLB_TEST_VA, 1);
    println!(
        "smp-tlb: unmapped {TLB_TEST_VA:#x} with a shootdown ({silent} CPUs silent, cr3 {:#x}); cpu 1 reads again",
        read_cr3()
    );
    on_ap(1, read_test_page, 0)?;
    println!(
        "smp-tlb: cpu 1 read {:#x} after the shootdown",
        READ_VALUE.load(Ordering::Acquire)
    );
    Err("cpu 1 still reached the unmapped page after the shootdown")
}
