//! Application processors: the boot CPU gives each AP its guarded stacks
//! (per-CPU stack and its IST stacks), its GDT/TSS and per-CPU area,
//! starts it through the platform, and waits until it reports in; the AP
//! then waits in its idle loop for work items (`cpu::smp::post_work`).
//! See docs/smp.md.

use crate::arch::x86::{halt_once, rdmsr, rdtsc, read_cr0, read_cr3, read_cr4, write_cr3};
use crate::arch::{apic, startup};
use crate::cpu::percpu::{self, CpuState, MAX_CPUS, this_cpu};
use crate::cpu::{gdt, idt, smp};
use crate::mm::{frames, paging};
use crate::platform::{ApStartup, SvsmPlatform};
use crate::stacks;
use core::sync::atomic::{AtomicU64, Ordering};
use svsm_bootdefs::layout::AP_TRAMPOLINE_GPA;
use svsm_defs::apic::CPUID1_ECX_X2APIC;
use svsm_defs::cr::Efer;
use svsm_defs::msr;
use svsm_guards::{IstKind, Owner, StackKind};
use svsm_kernel::vectors::{
    IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, IST_PAGE_FAULT, IST_VMM_COMMUNICATION,
};

/// The kernel's page tables, which every AP switches to once it runs in
/// the kernel (it starts on a copy that also maps the trampoline).
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);

/// IST slots and the stack kind each gets, per CPU (in `STACK_NAMES` order).
const IST: [(u8, IstKind); 5] = [
    (IST_DOUBLE_FAULT, IstKind::DoubleFault),
    (IST_PAGE_FAULT, IstKind::PageFault),
    (IST_NMI, IstKind::Nmi),
    (IST_MACHINE_CHECK, IstKind::MachineCheck),
    (IST_VMM_COMMUNICATION, IstKind::Vc),
];

/// Stack names per CPU: the per-CPU stack, then the IST stacks. Literal
/// (no formatting into heap strings: stack names are 'static, and the
/// fatal paths' formatting stays clear of the allocator).
const STACK_NAMES: [[&str; 1 + IST.len()]; MAX_CPUS] = [
    [
        "cpu0", "cpu0-df", "cpu0-pf", "cpu0-nmi", "cpu0-mc", "cpu0-vc",
    ],
    [
        "cpu1", "cpu1-df", "cpu1-pf", "cpu1-nmi", "cpu1-mc", "cpu1-vc",
    ],
    [
        "cpu2", "cpu2-df", "cpu2-pf", "cpu2-nmi", "cpu2-mc", "cpu2-vc",
    ],
    [
        "cpu3", "cpu3-df", "cpu3-pf", "cpu3-nmi", "cpu3-mc", "cpu3-vc",
    ],
    [
        "cpu4", "cpu4-df", "cpu4-pf", "cpu4-nmi", "cpu4-mc", "cpu4-vc",
    ],
    [
        "cpu5", "cpu5-df", "cpu5-pf", "cpu5-nmi", "cpu5-mc", "cpu5-vc",
    ],
    [
        "cpu6", "cpu6-df", "cpu6-pf", "cpu6-nmi", "cpu6-mc", "cpu6-vc",
    ],
    [
        "cpu7", "cpu7-df", "cpu7-pf", "cpu7-nmi", "cpu7-mc", "cpu7-vc",
    ],
];

/// Why an AP could not be started.
#[derive(Debug)]
pub enum ApError {
    Stack(stacks::StackAllocError),
    Platform(crate::platform::PlatformError),
    /// It did not report in within `smp::ANSWER_TIMEOUT_TSC`.
    Timeout,
}

/// Starts every AP the platform reports (up to `MAX_CPUS`), one at a time.
/// Returns the number of CPUs online, the boot CPU included.
pub fn start_all(plat: &dyn SvsmPlatform) -> usize {
    let reported = plat.cpu_count();
    let count = svsm_kernel::smp_policy::cpus_to_start(reported, MAX_CPUS);
    if reported as usize > MAX_CPUS {
        log::warn!("SMP: {reported} CPUs reported, using the first {MAX_CPUS}");
    }
    percpu::cpu(0).set_state(CpuState::Busy);
    apic::init(plat.cpuid(1, 0).ecx & CPUID1_ECX_X2APIC != 0);
    if count == 1 {
        return 1;
    }
    KERNEL_ROOT.store(read_cr3(), Ordering::Release);
    let khz = calibrate_tsc(plat);
    TSC_KHZ.store(khz, Ordering::Relaxed);
    log::info!("SMP: TSC {} MHz (against the PIT)", khz / 1000);
    let tables = match paging::ap_startup_tables(AP_TRAMPOLINE_GPA, &mut frames::alloc_frame) {
        Ok(t) => t,
        Err(e) => {
            log::error!("SMP: no start-up page tables ({e:?}); running on one CPU");
            return 1;
        }
    };
    let mut online = 1;
    let mut late = false;
    for cpu in 1..count {
        match start_one(plat, cpu, tables[0].as_u64()) {
            Ok(()) => online += 1,
            Err(ApError::Stack(e)) => log::error!("SMP: cpu {cpu} not started: stack: {e}"),
            Err(ApError::Platform(e)) => log::error!("SMP: cpu {cpu} not started: {e:?}"),
            Err(ApError::Timeout) => {
                // It may still run the trampoline later: neither the page
                // nor the start-up tables may change under it.
                log::error!("SMP: cpu {cpu} did not report in; no further CPUs started");
                late = true;
                break;
            }
        }
    }
    // Each AP answers its mailbox once before the kernel relies on it.
    for pc in percpu::all().iter().filter(|p| p.state() == CpuState::Idle) {
        if !smp::post_work(pc, check_in, 0) || !smp::wait_work(pc) {
            log::error!("SMP: cpu {} does not answer its mailbox", pc.cpu_id());
        }
    }
    // Every AP has left the start-up tables (they wait on the kernel's),
    // unless one is late.
    if !late {
        for t in tables {
            frames::free_frames(t, 1);
        }
    }
    log::info!(
        "SMP: {online} of {count} CPUs online, {} answered their mailbox (APIC in {} mode)",
        CHECKED_IN.load(Ordering::Acquire),
        apic::mode_name()
    );
    online
}

fn start_one(plat: &dyn SvsmPlatform, cpu: usize, startup_cr3: u64) -> Result<(), ApError> {
    let names = &STACK_NAMES[cpu];
    let stack = stacks::alloc(StackKind::PerCpu, Owner::cpu(cpu as u32), names[0])
        .map_err(ApError::Stack)?;
    let mut ist = [(0u8, 0u64); IST.len()];
    for (i, (slot, kind)) in IST.iter().enumerate() {
        let s = stacks::alloc(StackKind::Ist(*kind), Owner::cpu(cpu as u32), names[i + 1])
            .map_err(ApError::Stack)?;
        ist[i] = (*slot, s.range.top);
    }
    let t = gdt::prepare_ap(&ist);
    AP_TABLES[cpu].store(core::ptr::from_mut(t) as u64, Ordering::Release);
    let pc = percpu::cpu(cpu);
    // QEMU numbers the APIC IDs of a single-package `-smp N` 0..N-1; the
    // AP checks its own on entry.
    pc.apic_id.store(cpu as u32, Ordering::Relaxed);
    pc.set_state(CpuState::Starting);
    // SAFETY: EFER exists on every x86-64 CPU; reading it has no effect.
    let efer = unsafe { rdmsr(msr::EFER) } & !Efer::LMA.bits();
    let ap = ApStartup {
        cpu: cpu as u32,
        apic_id: cpu as u32,
        entry: startup::entry_stub(),
        arg: cpu as u64,
        stack_top: stack.range.top,
        cr0: read_cr0(),
        cr3: startup_cr3,
        cr4: read_cr4(),
        efer,
    };
    pc.start_tsc.store(rdtsc(), Ordering::Relaxed);
    if let Err(e) = plat.start_cpu(&ap) {
        pc.set_state(CpuState::Offline);
        return Err(ApError::Platform(e));
    }
    if !smp::wait_until(|| pc.state() >= CpuState::Idle) {
        return Err(ApError::Timeout);
    }
    Ok(())
}

/// Each AP's GDT/TSS, from `prepare_ap` until the AP loads them.
static AP_TABLES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// The first Rust code of an AP (called by `svsm_ap_start` on its per-CPU
/// stack, still on the start-up page tables).
#[unsafe(no_mangle)]
extern "C" fn svsm_ap_main(cpu: u64) -> ! {
    let cpu = cpu as usize;
    let entry_tsc = rdtsc();
    let t = AP_TABLES[cpu].swap(0, Ordering::AcqRel) as *mut gdt::Tables;
    // SAFETY: the boot CPU prepared these tables for this CPU alone (with
    // its IST stacks) and handed them over through AP_TABLES, taken once.
    unsafe { gdt::load_ap(cpu, &mut *t) };
    percpu::init(cpu);
    let pc = this_cpu();
    pc.entry_tsc.store(entry_tsc, Ordering::Relaxed);
    // SAFETY: the GDT and the TSS with this CPU's IST stacks are loaded.
    unsafe { idt::load() };
    apic::init(false);
    let apic_id = apic::apic_id();
    pc.set_state(CpuState::Online);
    // SAFETY: the kernel's tables map all the start-up tables map but the
    // trampoline page, which this CPU has left.
    unsafe { write_cr3(KERNEL_ROOT.load(Ordering::Acquire)) };
    let cycles = entry_tsc.wrapping_sub(pc.start_tsc.load(Ordering::Relaxed));
    let khz = TSC_KHZ.load(Ordering::Relaxed).max(1);
    log::info!(
        "SMP: cpu {cpu} online: APIC ID {apic_id}, {cycles} TSC cycles ({} us) from INIT to kernel entry",
        cycles * 1000 / khz
    );
    ist_self_tests(cpu);
    if apic_id != pc.apic_id.load(Ordering::Relaxed) {
        log::warn!(
            "SMP: cpu {cpu} expected APIC ID {}",
            pc.apic_id.load(Ordering::Relaxed)
        );
        pc.apic_id.store(apic_id, Ordering::Relaxed);
    }
    pc.set_state(CpuState::Idle);
    idle_loop()
}

/// The first work item of every AP: proves its mailbox and NMI wake-up work.
fn check_in(_: u64) {
    CHECKED_IN.fetch_add(1, Ordering::AcqRel);
}

static CHECKED_IN: AtomicU64 = AtomicU64::new(0);

/// The fault path's dry run on each of this AP's IST stacks, as the boot
/// CPU does: it proves them usable and gives their high-water marks.
fn ist_self_tests(cpu: usize) {
    let tops: alloc::vec::Vec<u64> = stacks::REGISTRY
        .lock()
        .iter()
        .filter(|(_, i)| i.owner.cpu == cpu as u32 && matches!(i.kind, StackKind::Ist(_)))
        .map(|(_, i)| i.range.top)
        .collect();
    for top in tops {
        // SAFETY: no exception is in flight on this CPU, so nothing uses
        // its IST stack while the self-test runs on it.
        unsafe { crate::arch::stack::call_on_stack(top, ap_ist_self_test, 0) };
    }
}

extern "C" fn ap_ist_self_test(_: u64) {
    crate::fault::fault_path_dry_run();
}

/// The TSC rate in kHz (0 until measured), for the start-up times.
static TSC_KHZ: AtomicU64 = AtomicU64::new(0);

/// The TSC rate in kHz, measured when the APs were started (0 on one CPU).
#[cfg_attr(not(feature = "testcases"), allow(dead_code))] // test cases
pub fn tsc_khz() -> u64 {
    TSC_KHZ.load(Ordering::Relaxed)
}

/// Measures the TSC against 10 ms of the PIT's channel 2 (the pc machine's
/// 8254, 1.193182 MHz); returns kHz.
fn calibrate_tsc(plat: &dyn SvsmPlatform) -> u64 {
    const PIT_HZ: u64 = 1_193_182;
    const TICKS: u64 = PIT_HZ / 100;
    let io = plat.io();
    // SAFETY: the PIT's channel 2 and its gate bit in port 0x61 belong to
    // the platform; nothing else in the SVSM uses them.
    let cycles = unsafe {
        let gate = (io.inb(0x61) & !0x02) | 0x01;
        io.outb(0x61, gate & !0x01);
        io.outb(0x43, 0b1011_0000); // channel 2, lo/hi byte, mode 0
        io.outb(0x42, TICKS as u8);
        io.outb(0x42, (TICKS >> 8) as u8);
        io.outb(0x61, gate); // start counting
        let t0 = rdtsc();
        let ok = smp::wait_until(|| io.inb(0x61) & 0x20 != 0);
        let t1 = rdtsc();
        if ok { t1 - t0 } else { 0 }
    };
    cycles / 10
}

/// Runs posted work items; HLT in between (a posted item comes with NMIs).
/// Not inlined: stackcheck.toml names the work-item call as made here.
#[inline(never)]
fn idle_loop() -> ! {
    let pc = this_cpu();
    loop {
        match smp::take_work(pc) {
            Some((f, arg)) => {
                pc.set_state(CpuState::Busy);
                f(arg);
                pc.set_state(CpuState::Idle);
                smp::work_finished(pc);
            }
            None => halt_once(),
        }
    }
}

/// Runs `f(arg)` on every online AP and on this CPU at once; returns once
/// all are done (false if an AP could not take or finish it).
#[cfg_attr(not(feature = "testcases"), allow(dead_code))] // test cases
pub fn run_everywhere(f: smp::WorkFn, arg: u64) -> bool {
    let me = this_cpu();
    let mut ok = true;
    let targets: alloc::vec::Vec<_> = percpu::all()
        .iter()
        .filter(|p| !core::ptr::eq(*p, me) && p.state() == CpuState::Idle)
        .collect();
    for pc in &targets {
        ok &= smp::post_work(pc, f, arg);
    }
    f(arg);
    for pc in &targets {
        ok &= smp::wait_work(pc);
    }
    ok
}

/// Online CPUs (the boot CPU included).
#[cfg_attr(not(feature = "testcases"), allow(dead_code))] // test cases
pub fn online() -> usize {
    percpu::all()
        .iter()
        .filter(|p| p.state().answers_nmi())
        .count()
}
