//! The SVSM kernel: the boot sequence of CPU 0, the init task and the panic
//! handler. The layers below it are described in `docs/kernel.md`.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod ap;
mod arch;
mod backtrace;
mod bootinfo;
mod cpu;
mod fault;
mod guest;
mod mm;
mod platform;
mod serial;
mod stacks;
mod task;
#[cfg(feature = "testcases")]
mod testcases;

extern crate alloc;

use core::arch::global_asm;
use platform::{PageValidation, SvsmPlatform, shutdown};
use spin::Once;
use svsm_bootdefs::channel::ChannelConfig;
use svsm_bootdefs::{BootInfo, ExitCode, READY_MARKER, layout};
use svsm_guards::{IstKind, Owner, StackKind};
use svsm_kernel::cmdline::Cmdline;
use svsm_kernel::vectors::{
    IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, IST_PAGE_FAULT, IST_VMM_COMMUNICATION,
};

global_asm!(
    ".section .text.start, \"ax\"",
    ".global _start",
    ".type _start, @function",
    "_start:",
    ".cfi_startproc",
    // The outermost frame: the unwinder stops here.
    ".cfi_undefined rip",
    // stage2 set rsp to the top of the guarded boot stack and rdi to the boot info.
    "xor ebp, ebp",
    "call {main}",
    "ud2",
    ".cfi_endproc",
    ".size _start, . - _start",
    main = sym kernel_main,
);

/// Whether this image has the in-kernel test cases (the test image).
const TESTCASES_BUILT: bool = cfg!(feature = "testcases");

/// IST stacks of the boot CPU: (IST slot, kind, name).
const IST_STACKS: [(u8, IstKind, &str); 5] = [
    (IST_DOUBLE_FAULT, IstKind::DoubleFault, "cpu0-df"),
    (IST_PAGE_FAULT, IstKind::PageFault, "cpu0-pf"),
    (IST_NMI, IstKind::Nmi, "cpu0-nmi"),
    (IST_MACHINE_CHECK, IstKind::MachineCheck, "cpu0-mc"),
    (IST_VMM_COMMUNICATION, IstKind::Vc, "cpu0-vc"),
];

fn fatal_boot(what: &str, why: &dyn core::fmt::Display) -> ! {
    println!("SVSM: boot failed: {what}: {why}");
    shutdown(ExitCode::BootError)
}

/// A boot failure found before the console exists: the report goes through
/// the console of `platform::platform()` (see there which one that is
/// before a platform was chosen).
fn early_fatal(what: &str, why: &dyn core::fmt::Display) -> ! {
    console_init(platform::platform());
    fatal_boot(what, why)
}

fn console_init(plat: &dyn SvsmPlatform) {
    // SAFETY: COM1 is the platform's console UART; only the console drives it.
    serial::CONSOLE.init(unsafe { serial::Uart16550::new(plat.io(), serial::COM1) });
    serial::init_logger(log::LevelFilter::Info);
}

extern "C" fn kernel_main(boot_info_phys: *const BootInfo) -> ! {
    // Nothing before the exception handlers are live may use port I/O or
    // CPUID: on SNP and TDX both trap (#VC / #VE).
    // SAFETY: stage2 passes the boot-info page, still identity mapped; it is
    // copied here, before the identity map goes away.
    let bi = bootinfo::init(unsafe { core::ptr::read(boot_info_phys) });
    // SAFETY: CPU 0's bring-up, once, before anything else uses its tables.
    unsafe { cpu::gdt::load_bsp() };
    cpu::percpu::init(0);
    // SAFETY: the GDT and TSS are loaded; the early IDT uses no IST slot.
    unsafe { cpu::idt::load_early() };
    if let Err(why) = bi.validate() {
        early_fatal("bad boot info", &why);
    }
    let plat = platform::choose(bi.platform).unwrap_or_else(|e| early_fatal("platform", &e));
    if let Err(e) = plat.setup_exception_handling() {
        early_fatal("platform exception setup", &format_args!("{e:?}"));
    }
    mm::paging::init(plat.page_encryption());
    console_init(plat); // the first port I/O
    log::info!(
        "SVSM kernel {} on {} platform, kernel region {:#x}..{:#x}",
        env!("CARGO_PKG_VERSION"),
        plat.kind().name(),
        bi.kernel_region_start,
        bi.kernel_region_end
    );
    log_cpu_vendor(plat); // the first CPUID

    RAM_END.call_once(|| memory_init(bi, plat));
    let ist = ist_init();
    backtrace::init(bi.symtab_virt, bi.symtab_size);

    paging_self_check();
    // SAFETY: stage2 is done and the boot info was copied: nothing uses the
    // low identity map any more.
    unsafe { mm::paging::drop_identity_map() };

    // Fault-path self-test on every IST stack (also gives their high-water marks).
    for (_, top) in ist {
        // SAFETY: no exception is in flight, so nothing uses the IST stack
        // while the self-test runs on it.
        unsafe { arch::stack::call_on_stack(top, ist_self_test, 0) };
    }

    // The other CPUs, each on its own guarded stacks, waiting for work.
    ap::start_all(plat);

    let cmdline = read_cmdline(bi);
    log::info!("command line: {:?}", cmdline.as_str());
    let test = match cmdline.test_selection(TESTCASES_BUILT) {
        Ok(t) => t,
        Err(e) => fatal_boot("command line", &e),
    };
    #[cfg(feature = "testcases")]
    testcases::run_if_on(test, testcases::RunsOn::Boot);
    let _ = test;
    CMDLINE.call_once(|| cmdline);
    CHANNEL.call_once(read_channel);

    // The boot stack has done its job: CPU 0 continues on its per-CPU stack.
    match stacks::alloc(StackKind::PerCpu, Owner::cpu(0), "cpu0") {
        // SAFETY: the per-CPU stack was just mapped for CPU 0 alone.
        Ok(info) => unsafe { arch::stack::call_on_stack(info.range.top, cpu_main, 0) },
        Err(e) => fatal_boot("per-CPU stack", &e),
    }
    unreachable!("cpu_main returned");
}

/// Validates the kernel's free memory, starts the frame allocator, checks
/// the loader's memory map and registers the stacks that already exist.
/// Returns the end of RAM.
fn memory_init(bi: &BootInfo, plat: &dyn SvsmPlatform) -> u64 {
    // The kernel's free memory must be validated before use (PVALIDATE on
    // SNP, page acceptance on TDX; nothing natively).
    if let Err(e) = plat.validate_pages(
        bi.free_phys_start,
        bi.kernel_region_end - bi.free_phys_start,
        PageValidation::Valid,
    ) {
        fatal_boot("validating kernel memory", &format_args!("{e:?}"));
    }
    if let Err(e) = mm::frames::init(bi.free_phys_start, bi.kernel_region_end) {
        fatal_boot("frame allocator", &e);
    }
    // The memory map comes from the host: copied once (onto the heap, not
    // the stack), then validated from the copy.
    let map = copy_parameter_area(bi.memory_map_gpa, bi.memory_map_size);
    match svsm_bootdefs::memmap::validate_for_kernel(
        &map,
        bi.kernel_region_start,
        bi.kernel_region_end,
    ) {
        Ok(m) => {
            log::info!(
                "memory map: {} entries, {} MiB of RAM, up to {:#x}",
                m.entries,
                m.ram_bytes >> 20,
                m.ram_end
            );
            if let Err(e) = stacks::init(bi) {
                fatal_boot("stack registry", &e);
            }
            m.ram_end
        }
        Err(e) => fatal_boot("memory map", &e),
    }
}

/// A copy of the loader-filled parameter area at `gpa` (`size` bytes, as
/// igvm-build laid it out), read once, byte by byte, through the direct map.
fn copy_parameter_area(gpa: u64, size: u64) -> alloc::vec::Vec<u8> {
    let src = layout::phys_to_virt(gpa) as *const u8;
    (0..size as usize)
        .map(|i| {
            // SAFETY: the parameter area lies inside the direct map and
            // `i` stays below its size; a volatile read keeps it one read.
            unsafe { src.add(i).read_volatile() }
        })
        .collect()
}

/// Allocates CPU 0's IST stacks, points its TSS at them and switches to the
/// full IDT: from here on NMI, #DF, #PF, #MC and #VC land on healthy stacks.
/// Returns (IST slot, stack top) per IST stack.
fn ist_init() -> [(u8, u64); IST_STACKS.len()] {
    let mut ist = [(0u8, 0u64); IST_STACKS.len()];
    for (i, (slot, kind, name)) in IST_STACKS.iter().enumerate() {
        match stacks::alloc(StackKind::Ist(*kind), Owner::cpu(0), name) {
            Ok(info) => ist[i] = (*slot, info.range.top),
            Err(e) => fatal_boot("IST stack", &e),
        }
    }
    for (slot, top) in ist {
        // SAFETY: `top` is the top of a stack just mapped for this slot.
        unsafe { cpu::gdt::set_ist(slot, top) };
    }
    // SAFETY: the GDT is loaded and every IST slot the IDT names holds a stack.
    unsafe { cpu::idt::load() };
    ist
}

extern "C" fn ist_self_test(_: u64) {
    fault::fault_path_dry_run();
}

static CMDLINE: Once<Cmdline> = Once::new();
/// The end of RAM (from the memory map).
static RAM_END: Once<u64> = Once::new();
/// The channel configuration (`read_channel`).
static CHANNEL: Once<ChannelConfig> = Once::new();
/// How the hosted guest ended, when one ran.
static GUEST_EXIT: Once<ExitCode> = Once::new();

extern "C" fn cpu_main(_: u64) {
    if let Err(e) = task::run_task("init", init_task) {
        fatal_boot("init task", &e);
    }
    if let Err(e) = task::run_task("vcpu-loop", guest_task) {
        fatal_boot("guest task", &e);
    }
    stacks::print_high_water_marks();
    shutdown(GUEST_EXIT.get().copied().unwrap_or(ExitCode::Success));
}

/// Runs the hosted guest (if the image carries one and the CPU has AMD-V
/// with nested paging) on its own task stack.
fn guest_task() {
    let arg = CMDLINE.get().and_then(|c| c.guest_arg()).unwrap_or("");
    let ram_end = RAM_END.get().copied().unwrap_or(0);
    let Some(channel) = CHANNEL.get() else {
        return;
    };
    if let Some(code) = guest::run(platform::platform(), ram_end, arg, channel) {
        GUEST_EXIT.call_once(|| code);
    }
}

fn init_task() {
    #[cfg(feature = "testcases")]
    if let Some(c) = CMDLINE.get() {
        // Refused on the boot stack already when the image has no test cases.
        testcases::run_if_on(c.test_name(), testcases::RunsOn::Task);
    }
    let (free, total) = mm::frames::stats();
    log::info!("memory: {free} of {total} kernel frames free");
    println!("{READY_MARKER}");
}

/// Logs the CPU vendor (CPUID leaf 0); CPUID may trap, so this runs only
/// once the exception handlers are live.
fn log_cpu_vendor(plat: &dyn platform::SvsmPlatform) {
    let r = plat.cpuid(0, 0);
    let mut v = [0u8; 12];
    v[..4].copy_from_slice(&r.ebx.to_le_bytes());
    v[4..8].copy_from_slice(&r.edx.to_le_bytes());
    v[8..].copy_from_slice(&r.ecx.to_le_bytes());
    log::info!(
        "CPU: {} (max basic leaf {:#x})",
        core::str::from_utf8(&v).unwrap_or("?"),
        r.eax
    );
}

fn paging_self_check() {
    use mm::paging::PteFlags;
    let text = svsm_defs::VirtAddr::new(kernel_main as *const () as u64);
    if let Some((_, flags)) = mm::paging::translate(text)
        && flags.intersects(PteFlags::NO_EXECUTE | PteFlags::WRITABLE)
    {
        fatal_boot("paging", &"kernel text is not RX");
    }
}

/// The SVSM<->VMM channel configuration from the measured configuration
/// page (copied once, then checked as untrusted input). A refused one ends
/// the boot.
fn read_channel() -> ChannelConfig {
    let page = copy_parameter_area(layout::CONFIG_PAGE_GPA, layout::PAGE_SIZE);
    match svsm_bootdefs::config::read_channel(&page) {
        Ok(c) => {
            log::info!(
                "channel: guest VMPL {}, {} protocol(s), features {:#x}, PVALIDATE budget {}",
                c.guest_vmpl(),
                c.protocols().len(),
                c.features(),
                c.pvalidate_budget()
            );
            c
        }
        Err(e) => fatal_boot("channel configuration", &e),
    }
}

/// Copies the command line out of the configuration page that igvm-build
/// writes as measured page data (`bootdefs::config`), once.
fn read_cmdline(bi: &BootInfo) -> Cmdline {
    let src = layout::phys_to_virt(bi.cmdline_gpa) as *const u8;
    let max = usize::try_from(bi.cmdline_size).unwrap_or(usize::MAX);
    Cmdline::copy_from(max, |i| {
        // SAFETY: the configuration page is inside the direct map and `i` stays
        // below both its size and the copy's limit; read byte-wise, once.
        unsafe { src.add(i).read_volatile() }
    })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match cpu::smp::claim_fatal() {
        cpu::smp::FatalClaim::First => {}
        cpu::smp::FatalClaim::Nested => {
            // A panic while reporting a fatal error on this CPU (e.g. inside
            // the backtrace): no formatting, no backtrace, so it cannot
            // recurse again.
            serial::CONSOLE.force_unlock();
            serial::CONSOLE.write_str_raw("PANIC: nested panic while reporting a panic\n");
            shutdown(ExitCode::Panic)
        }
        // Another CPU reports: this one waits to be stopped (and printed).
        cpu::smp::FatalClaim::Other => arch::x86::halt_forever(),
    }
    // The other CPUs stop first and print their state.
    fault::stop_others_for_report();
    println!("PANIC: {}", info);
    println!("PANIC on cpu {}", cpu::percpu::this_cpu().cpu_id());
    backtrace::print_here();
    shutdown(ExitCode::Panic)
}
