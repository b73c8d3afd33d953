//! Named in-kernel test cases, selected by `test=<name>` on the IGVM command
//! line; one boot per case (igvm-build/tests/boot.rs asserts on the serial
//! log and exit code). Each case ends the boot itself. Built into the test
//! image only (cargo feature `testcases`).

mod smp;

use crate::arch::x86::{rdtsc, read_rsp};
use crate::fault::test_hook;
use crate::mm::paging::{self, PteFlags};
use crate::platform::shutdown;
use crate::println;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::Ordering;
use svsm_bootdefs::ExitCode;
use svsm_defs::VirtAddr;
use svsm_kernel::vectors::{VEC_NMI, VEC_PF};

/// Which stack a case starts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunsOn {
    /// The boot stack, early (after the IST/IDT set-up).
    Boot,
    /// The init task's stack, after boot.
    Task,
}

pub struct Case {
    pub name: &'static str,
    pub on: RunsOn,
    pub run: fn() -> Result<(), &'static str>,
}

const CASES: &[Case] = &[
    Case {
        name: "smoke",
        on: RunsOn::Task,
        run: smoke,
    },
    Case {
        name: "paging",
        on: RunsOn::Task,
        run: paging_permissions,
    },
    Case {
        name: "heap",
        on: RunsOn::Task,
        run: heap,
    },
    Case {
        name: "panic",
        on: RunsOn::Task,
        run: panic_case,
    },
    Case {
        name: "invalid-opcode",
        on: RunsOn::Task,
        run: invalid_opcode,
    },
    Case {
        name: "write-rodata",
        on: RunsOn::Task,
        run: write_rodata,
    },
    Case {
        name: "overflow-boot",
        on: RunsOn::Boot,
        run: overflow_recursion,
    },
    Case {
        name: "overflow-task",
        on: RunsOn::Task,
        run: overflow_recursion,
    },
    Case {
        name: "overflow-ist",
        on: RunsOn::Task,
        run: overflow_ist,
    },
    Case {
        name: "overflow-pf-handler",
        on: RunsOn::Task,
        run: overflow_pf_handler,
    },
    Case {
        name: "big-frame",
        on: RunsOn::Task,
        run: big_frame,
    },
    Case {
        name: "underflow",
        on: RunsOn::Task,
        run: underflow,
    },
    Case {
        name: "nested-panic",
        on: RunsOn::Task,
        run: nested_panic,
    },
    Case {
        name: "nmi",
        on: RunsOn::Task,
        run: nmi_returns,
    },
    Case {
        name: "double-fault",
        on: RunsOn::Task,
        run: pf_delivery_fails,
    },
    Case {
        name: "backtrace-panic",
        on: RunsOn::Task,
        run: backtrace_panic,
    },
    Case {
        name: "guest-then-nmi",
        on: RunsOn::Task,
        run: guest_then_nmi,
    },
    Case {
        name: "backtrace-bench",
        on: RunsOn::Task,
        run: backtrace_bench,
    },
    Case {
        name: "smp-up",
        on: RunsOn::Task,
        run: smp::up,
    },
    Case {
        name: "smp-overflow-task",
        on: RunsOn::Task,
        run: smp::overflow_task,
    },
    Case {
        name: "smp-overflow-ist",
        on: RunsOn::Task,
        run: smp::overflow_ist,
    },
    Case {
        name: "smp-panic",
        on: RunsOn::Task,
        run: smp::panic_on_ap,
    },
    Case {
        name: "smp-stress",
        on: RunsOn::Task,
        run: smp::stress_all,
    },
    Case {
        name: "smp-tlb",
        on: RunsOn::Task,
        run: smp::tlb_shootdown,
    },
];

static UNKNOWN: Case = Case {
    name: "unknown",
    on: RunsOn::Boot,
    run: unknown_case,
};

pub fn find(name: &str) -> Option<&'static Case> {
    CASES.iter().find(|c| c.name == name)
}

/// A case that fails at once, for names not in the table.
pub fn unknown(name: &str) -> &'static Case {
    println!("TEST {name}: FAIL unknown test case");
    shutdown(ExitCode::TestFailure)
}

/// Runs the case `name` (ending the boot) if it starts on `on`; an unknown
/// name fails at once.
pub fn run_if_on(name: Option<&str>, on: RunsOn) {
    let Some(name) = name else { return };
    let case = find(name).unwrap_or_else(|| unknown(name));
    if case.on == on {
        run(case);
    }
}

fn unknown_case() -> Result<(), &'static str> {
    Err("unknown test case")
}

pub fn run(case: &Case) -> ! {
    let _ = &UNKNOWN;
    println!("TEST {}: start", case.name);
    match (case.run)() {
        Ok(()) => {
            println!("TEST {}: PASS", case.name);
            crate::stacks::print_high_water_marks();
            shutdown(ExitCode::Success)
        }
        Err(why) => {
            println!("TEST {}: FAIL {why}", case.name);
            shutdown(ExitCode::TestFailure)
        }
    }
}

fn smoke() -> Result<(), &'static str> {
    crate::bootinfo::get().validate()
}

unsafe extern "C" {
    static __kernel_start: u8;
    static __rodata_start: u8;
    static __data_start: u8;
}

/// Text is RX, rodata R+NX, data RW+NX, stacks RW+NX, identity map gone.
fn paging_permissions() -> Result<(), &'static str> {
    let flags = |va: u64| {
        paging::translate(VirtAddr::new(va))
            .map(|(_, f)| f)
            .ok_or("address not mapped")
    };
    let writable = |f: PteFlags| f.contains(PteFlags::WRITABLE);
    let nx = |f: PteFlags| f.contains(PteFlags::NO_EXECUTE);
    let text = core::ptr::addr_of!(__kernel_start) as u64;
    let rodata = core::ptr::addr_of!(__rodata_start) as u64;
    let data = core::ptr::addr_of!(__data_start) as u64;
    let f = flags(text)?;
    if writable(f) || nx(f) {
        return Err("text is not read-only executable");
    }
    let f = flags(rodata)?;
    if writable(f) || !nx(f) {
        return Err("rodata is not read-only no-execute");
    }
    let f = flags(data)?;
    if !writable(f) || !nx(f) {
        return Err("data is not writable no-execute");
    }
    let f = flags(read_rsp())?;
    if !writable(f) || !nx(f) {
        return Err("stack is not writable no-execute");
    }
    if paging::translate(VirtAddr::new(0x10_0000)).is_some() {
        return Err("identity map still present");
    }
    println!("paging: text RX, rodata R, data RW+NX, stack RW+NX, identity map dropped");
    Ok(())
}

fn heap() -> Result<(), &'static str> {
    let (free_before, _) = crate::mm::frames::stats();
    let mut v: Vec<Box<[u64; 32]>> = Vec::new();
    for i in 0..1000u64 {
        v.push(Box::new([i; 32]));
    }
    if v.iter()
        .enumerate()
        .any(|(i, b)| b.iter().any(|&x| x != i as u64))
    {
        return Err("heap objects overlap");
    }
    let big: Vec<u8> = alloc::vec![0xa5; 256 * 1024];
    if big.iter().any(|&b| b != 0xa5) {
        return Err("large allocation corrupted");
    }
    drop(big);
    drop(v);
    let (free_after, total) = crate::mm::frames::stats();
    println!("heap: ok, frames free before {free_before} after {free_after} of {total}");
    Ok(())
}

fn panic_case() -> Result<(), &'static str> {
    panic!("deliberate panic from test case");
}

fn invalid_opcode() -> Result<(), &'static str> {
    // SAFETY: deliberately raises #UD to exercise the exception path.
    unsafe { core::arch::asm!("ud2") };
    Err("ud2 returned")
}

static RODATA_TARGET: u64 = 0x1234;

fn write_rodata() -> Result<(), &'static str> {
    let p = core::ptr::addr_of!(RODATA_TARGET) as *mut u64;
    // SAFETY: deliberately writes read-only memory: must raise #PF.
    unsafe { p.write_volatile(1) };
    Err("write to rodata succeeded")
}

/// Unbounded recursion with a 512-byte frame: overflows whatever stack it runs on.
#[inline(never)]
#[allow(unconditional_recursion)]
pub fn recurse(depth: u64) -> u64 {
    let mut buf = [0u8; 512];
    buf[(depth % 512) as usize] = depth as u8;
    let buf = black_box(buf);
    recurse(black_box(depth + 1)) + buf[(depth % 7) as usize] as u64
}

fn overflow_recursion() -> Result<(), &'static str> {
    black_box(recurse(0));
    Err("recursion returned")
}

fn hook(vector: u64, f: fn()) {
    test_hook::FUNCTION.store(f as usize as u64, Ordering::Relaxed);
    test_hook::VECTOR.store(vector, Ordering::Relaxed);
}

fn recurse_forever() {
    black_box(recurse(0));
}

/// Overflows the NMI IST stack from inside the NMI handler.
fn overflow_ist() -> Result<(), &'static str> {
    hook(VEC_NMI, recurse_forever);
    // SAFETY: software NMI; the handler runs on its IST stack and overflows it.
    unsafe { core::arch::asm!("int 2") };
    Err("NMI handler returned")
}

/// Overflows the page-fault IST stack from inside the page-fault handler.
fn overflow_pf_handler() -> Result<(), &'static str> {
    hook(VEC_PF, recurse_forever);
    // SAFETY: reads an unmapped address on purpose to enter the #PF handler.
    unsafe { core::ptr::read_volatile(0xdead_0000 as *const u64) };
    Err("page fault handler returned")
}

/// One frame of 256 KiB, four times the guard: stack probes must make it
/// touch the guard instead of jumping over it.
#[inline(never)]
#[allow(clippy::large_stack_arrays, clippy::large_stack_frames)] // deliberately huge
fn big_frame_fn() -> u8 {
    let buf = black_box([7u8; 256 * 1024]);
    buf[black_box(100)]
}

fn big_frame() -> Result<(), &'static str> {
    black_box(big_frame_fn());
    Err("big frame fit")
}

fn underflow() -> Result<(), &'static str> {
    let rsp = read_rsp();
    let top = crate::stacks::stack_of(rsp).ok_or("stack not found")?.top;
    // SAFETY: reads just above the top of the current stack on purpose: the
    // upper guard must catch it.
    unsafe { core::ptr::read_volatile((top + 16) as *const u64) };
    Err("read above the stack top succeeded")
}

/// A known chain of non-inlined functions, one reached through core
/// (an iterator adapter calling our closure), ending in a panic.
#[inline(never)]
fn chain_a(n: u32) -> u32 {
    black_box(chain_b(black_box(n + 1))) + 1
}

#[inline(never)]
fn chain_b(n: u32) -> u32 {
    black_box(chain_c(black_box(n + 1))) + 1
}

/// Formatting it calls back into `chain_d` from inside `core::fmt::write`.
struct ThroughCore(u32);

impl core::fmt::Display for ThroughCore {
    #[inline(never)]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", chain_d(black_box(self.0)))
    }
}

struct NullWriter;

impl core::fmt::Write for NullWriter {
    fn write_str(&mut self, _: &str) -> core::fmt::Result {
        Ok(())
    }
}

#[inline(never)]
fn chain_c(n: u32) -> u32 {
    use core::fmt::Write;
    // core::fmt::write -> <ThroughCore as Display>::fmt -> chain_d
    let _ = write!(NullWriter, "{}", ThroughCore(black_box(n + 1)));
    n
}

#[inline(never)]
fn chain_d(n: u32) -> u32 {
    black_box(chain_e(black_box(n + 1))) + 1
}

#[inline(never)]
fn chain_e(n: u32) -> u32 {
    if black_box(n) > 0 {
        panic!("backtrace test panic at depth {n}");
    }
    n
}

fn backtrace_panic() -> Result<(), &'static str> {
    black_box(chain_a(0));
    Err("chain returned")
}

/// Recurses to `depth` non-inlined frames, then times full backtrace walks
/// (unwind + symbol lookup, no printing) with the TSC.
#[inline(never)]
fn bench_depth(depth: u32, out: &mut [u64; 15]) -> usize {
    if depth > 1 {
        return black_box(bench_depth(black_box(depth - 1), out)).wrapping_add(black_box(0));
    }
    let mut frames = 0;
    for slot in out.iter_mut() {
        let regs = svsm_unwinder::capture_regs!();
        let t0 = rdtsc();
        frames = crate::backtrace::walk_only(regs, 32);
        *slot = rdtsc() - t0;
    }
    frames
}

fn backtrace_bench() -> Result<(), &'static str> {
    let mut samples = [0u64; 15];
    // 28 recursion frames plus the frames below them (down to _start): walk 32.
    let frames = bench_depth(28, &mut samples);
    samples.sort_unstable();
    let median = samples[samples.len() / 2];
    println!(
        "backtrace-bench: {frames} frames, median {median} TSC cycles per walk ({} per frame), min {} max {}",
        median / frames.max(1) as u64,
        samples[0],
        samples[samples.len() - 1]
    );
    if frames < 32 {
        return Err("fewer than 32 frames walked");
    }
    Ok(())
}

/// Makes the CPU's own #PF delivery hit the guard below the page-fault IST
/// stack: the #PF cannot be delivered, the CPU raises #DF on its own IST
/// stack, and the double-fault path reports the overflow.
fn pf_delivery_fails() -> Result<(), &'static str> {
    let pf_bottom = crate::stacks::REGISTRY
        .lock()
        .iter()
        .find(|(_, i)| i.kind == svsm_guards::StackKind::Ist(svsm_guards::IstKind::PageFault))
        .map(|(_, i)| i.range.bottom)
        .ok_or("no page-fault IST stack")?;
    // SAFETY: deliberately points the #PF IST slot at the bottom of the #PF
    // stack, so the next #PF cannot be delivered and becomes a #DF (on its
    // own, intact IST stack); the boot ends in the #DF report.
    unsafe { crate::cpu::gdt::set_ist(svsm_kernel::vectors::IST_PAGE_FAULT, pf_bottom) };
    // SAFETY: reads an unmapped address on purpose to raise #PF.
    unsafe { core::ptr::read_volatile(0xdead_0000 as *const u64) };
    Err("page fault was delivered")
}

/// An NMI is handled on its IST stack and returns to the interrupted code.
fn nmi_returns() -> Result<(), &'static str> {
    let cpu = crate::cpu::percpu::this_cpu();
    let before = cpu.nmi_count.load(Ordering::Relaxed);
    // SAFETY: software NMI; the handler counts it and returns.
    unsafe { core::arch::asm!("int 2") };
    if cpu.nmi_count.load(Ordering::Relaxed) != before + 1 {
        return Err("NMI was not counted");
    }
    Ok(())
}

/// The local APIC's interrupt command register (xAPIC, default base).
const APIC_ICR_LOW: u64 = 0xfee0_0300;
/// ICR: delivery mode NMI, destination shorthand "all including self"
/// (this one CPU).
const ICR_NMI_TO_ALL: u32 = (0b100 << 8) | (0b10 << 18);

/// Runs the hosted guest to its end, then sends this CPU a hardware NMI
/// through its local APIC: it must arrive, so hosting a guest left GIF set
/// (VMRUN's #VMEXIT clears it; `arch::svm::vmrun` sets it again).
fn guest_then_nmi() -> Result<(), &'static str> {
    let channel = crate::CHANNEL.get().ok_or("no channel configuration")?;
    let ram_end = crate::RAM_END.get().copied().ok_or("no memory map")?;
    match crate::guest::run(crate::platform::platform(), ram_end, "exit", channel) {
        Some(ExitCode::Success) => {}
        _ => return Err("the guest did not run and exit with success"),
    }
    let cpu = crate::cpu::percpu::this_cpu();
    let before = cpu.nmi_count.load(Ordering::Relaxed);
    let icr = svsm_bootdefs::layout::phys_to_virt(APIC_ICR_LOW) as *mut u32;
    // SAFETY: the xAPIC's ICR through the direct map; an NMI to this CPU,
    // whose handler counts it and returns.
    unsafe { icr.write_volatile(ICR_NMI_TO_ALL) };
    for _ in 0..1_000_000 {
        if cpu.nmi_count.load(Ordering::Relaxed) != before {
            println!("TEST guest-then-nmi: the NMI arrived after the guest ran");
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err("no NMI arrived after the guest ran (GIF left clear?)")
}

/// A value whose formatting panics: reporting the first panic panics again.
struct PanicsWhenFormatted;

impl core::fmt::Display for PanicsWhenFormatted {
    fn fmt(&self, _: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        panic!("panic while formatting a panic message")
    }
}

fn nested_panic() -> Result<(), &'static str> {
    panic!("outer panic: {}", PanicsWhenFormatted);
}
