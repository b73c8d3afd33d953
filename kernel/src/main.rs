//! The SVSM kernel.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod backtrace;
mod cpu;
mod fault;
mod io;
mod mm;
mod platform;
mod serial;
mod stacks;
mod task;
mod testcases;

extern crate alloc;

use core::arch::global_asm;
use cpu::gdt::{Gdt, IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, IST_PAGE_FAULT, Tss};
use platform::PageValidation;
use spin::Once;
use svsm_bootdefs::{BootInfo, ExitCode, READY_MARKER, layout};
use svsm_guards::{IstKind, Owner, StackKind};

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

static BOOT_INFO: Once<BootInfo> = Once::new();

pub fn boot_info() -> &'static BootInfo {
    BOOT_INFO.get().expect("boot info not initialised")
}

/// Ends the SVSM through the platform (isa-debug-exit natively).
pub fn shutdown(code: ExitCode) -> ! {
    platform::platform().shutdown(code)
}

struct TablesCell(core::cell::UnsafeCell<(Gdt, Tss)>);
// SAFETY: only CPU 0 touches its tables, once, during bring-up.
unsafe impl Sync for TablesCell {}
static BSP_TABLES: TablesCell = TablesCell(core::cell::UnsafeCell::new((
    Gdt::new(),
    unsafe_zeroed_tss(),
)));

/// Points IST slot `slot` (1-based) of CPU 0 at `top`; returns the old value.
pub fn set_ist(slot: u8, top: u64) -> u64 {
    // SAFETY: single CPU; the TSS is only read by the CPU at exception entry,
    // and a u64 store into it is atomic with respect to that.
    let (_, tss) = unsafe { &mut *BSP_TABLES.0.get() };
    let old = tss.ist[slot as usize - 1];
    tss.ist[slot as usize - 1] = top;
    old
}

const fn unsafe_zeroed_tss() -> Tss {
    // SAFETY: an all-zero TSS is a valid (empty) TSS.
    unsafe { core::mem::zeroed() }
}

/// IST stacks of the boot CPU: (IST slot, kind, name).
const IST_STACKS: [(u8, IstKind, &str); 4] = [
    (IST_DOUBLE_FAULT, IstKind::DoubleFault, "cpu0-df"),
    (IST_PAGE_FAULT, IstKind::PageFault, "cpu0-pf"),
    (IST_NMI, IstKind::Nmi, "cpu0-nmi"),
    (IST_MACHINE_CHECK, IstKind::MachineCheck, "cpu0-mc"),
];

fn fatal_boot(what: &str, why: &dyn core::fmt::Display) -> ! {
    println!("SVSM: boot failed: {what}: {why}");
    shutdown(ExitCode::BootError)
}

extern "C" fn kernel_main(boot_info_phys: *const BootInfo) -> ! {
    let plat = platform::platform();
    serial::CONSOLE.init(serial::Uart16550::new(plat.io(), serial::COM1));
    serial::init_logger(log::LevelFilter::Info);

    // SAFETY: stage2 passes the boot-info page, still identity mapped; it is
    // copied before the identity map goes away.
    let bi = BOOT_INFO.call_once(|| unsafe { core::ptr::read(boot_info_phys) });
    if let Err(why) = bi.validate() {
        fatal_boot("bad boot info", &why);
    }
    log::info!(
        "SVSM kernel {} on {} platform, kernel region {:#x}..{:#x}",
        env!("CARGO_PKG_VERSION"),
        plat.kind().name(),
        bi.kernel_region_start,
        bi.kernel_region_end
    );

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
    // The memory map comes from the host: untrusted until validated.
    // SAFETY: the parameter page lies inside the direct map and is only read.
    let map = unsafe {
        core::slice::from_raw_parts(
            layout::phys_to_virt(bi.memory_map_gpa) as *const u8,
            bi.memory_map_size as usize,
        )
    };
    match svsm_bootdefs::memmap::validate_for_kernel(
        map,
        bi.kernel_region_start,
        bi.kernel_region_end,
    ) {
        Ok(m) => log::info!(
            "memory map: {} entries, {} MiB of RAM, up to {:#x}",
            m.entries,
            m.ram_bytes >> 20,
            m.ram_end
        ),
        Err(e) => fatal_boot("memory map", &e),
    }
    if let Err(e) = stacks::init(bi) {
        fatal_boot("stack registry", &e);
    }

    // IST stacks first: from here on every fault lands on a healthy stack.
    // SAFETY: bring-up of CPU 0 runs once, before any other use of its tables.
    let (gdt, tss) = unsafe { &mut *BSP_TABLES.0.get() };
    let mut ist_tops = [0u64; 4];
    for (i, (slot, kind, name)) in IST_STACKS.iter().enumerate() {
        match stacks::alloc(StackKind::Ist(*kind), Owner::cpu(0), name) {
            Ok(info) => {
                tss.ist[*slot as usize - 1] = info.range.top;
                ist_tops[i] = info.range.top;
            }
            Err(e) => fatal_boot("IST stack", &e),
        }
    }
    tss.iomap_base = core::mem::size_of::<Tss>() as u16;
    gdt.load(tss);
    cpu::percpu::init(0);
    cpu::idt::load();
    if let Err(e) = plat.setup_exception_handling() {
        fatal_boot("platform exception setup", &format_args!("{e:?}"));
    }
    backtrace::init(bi.symtab_virt, bi.symtab_size);

    paging_self_check();
    mm::paging::drop_identity_map();

    // Fault-path self-test on every IST stack (also gives their high-water marks).
    for top in ist_tops {
        task::call_on_stack(top, ist_self_test, 0);
    }

    let cmdline = read_cmdline(bi);
    log::info!("command line: {:?}", cmdline.as_str());
    let case = cmdline
        .test_name()
        .map(|n| testcases::find(n).unwrap_or_else(|| testcases::unknown(n)));
    if let Some(case) = case.filter(|c| c.on == testcases::RunsOn::Boot) {
        testcases::run(case);
    }
    CMDLINE.call_once(|| cmdline);

    // The boot stack has done its job: CPU 0 continues on its per-CPU stack.
    match stacks::alloc(StackKind::PerCpu, Owner::cpu(0), "cpu0") {
        Ok(info) => task::call_on_stack(info.range.top, cpu_main, 0),
        Err(e) => fatal_boot("per-CPU stack", &e),
    }
    unreachable!("cpu_main returned");
}

extern "C" fn ist_self_test(_: u64) {
    fault::fault_path_dry_run();
}

static CMDLINE: Once<Cmdline> = Once::new();

extern "C" fn cpu_main(_: u64) {
    if let Err(e) = task::run_task("init", init_task) {
        fatal_boot("init task", &e);
    }
    stacks::print_high_water_marks();
    shutdown(ExitCode::Success);
}

fn init_task() {
    let case = CMDLINE
        .get()
        .and_then(|c| c.test_name())
        .map(|n| testcases::find(n).unwrap_or_else(|| testcases::unknown(n)));
    if let Some(case) = case {
        testcases::run(case);
    }
    let (free, total) = mm::frames::stats();
    log::info!("memory: {free} of {total} kernel frames free");
    println!("{READY_MARKER}");
}

fn paging_self_check() {
    let text = kernel_main as *const () as u64;
    if let Some((_, flags)) = mm::paging::translate(text)
        && (flags & mm::paging::NO_EXECUTE != 0 || flags & mm::paging::WRITABLE != 0)
    {
        println!("SVSM: kernel text is not RX");
        shutdown(ExitCode::BootError);
    }
}

/// The IGVM command line, copied into kernel memory.
pub struct Cmdline {
    buf: [u8; 256],
    len: usize,
}

impl Cmdline {
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<invalid utf-8>")
    }

    /// `test=<name>` selects a named in-kernel test case.
    pub fn test_name(&self) -> Option<&str> {
        self.as_str()
            .split_ascii_whitespace()
            .find_map(|w| w.strip_prefix("test="))
    }
}

fn read_cmdline(bi: &BootInfo) -> Cmdline {
    let mut c = Cmdline {
        buf: [0; 256],
        len: 0,
    };
    let max = (bi.cmdline_size as usize).min(c.buf.len());
    let src = layout::phys_to_virt(bi.cmdline_gpa) as *const u8;
    for i in 0..max {
        // SAFETY: the parameter page is inside the direct map; read byte-wise.
        let b = unsafe { src.add(i).read_volatile() };
        if b == 0 {
            break;
        }
        c.buf[i] = b;
        c.len = i + 1;
    }
    c
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    serial::CONSOLE.force_unlock();
    if PANICKING.swap(true, core::sync::atomic::Ordering::SeqCst) {
        // A panic while reporting a panic (e.g. inside the backtrace): no
        // formatting, no backtrace, so it cannot recurse again.
        serial::CONSOLE.write_str_raw("PANIC: nested panic while reporting a panic\n");
        shutdown(ExitCode::Panic)
    }
    println!("PANIC: {}", info);
    backtrace::print_here();
    shutdown(ExitCode::Panic)
}

/// Set by the first panic; a second one takes the minimal path.
static PANICKING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
