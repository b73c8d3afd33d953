//! The SVSM kernel.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod cpu;
mod fault;
mod io;
mod mm;
mod platform;
mod serial;
mod stacks;
mod testcases;

use core::arch::global_asm;
use cpu::gdt::{Gdt, IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, IST_PAGE_FAULT, Tss};
use spin::Once;
use svsm_bootdefs::{BootInfo, ExitCode, READY_MARKER, layout};

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
static BSP_TABLES: TablesCell = TablesCell(core::cell::UnsafeCell::new((Gdt::new(), unsafe_zeroed_tss())));

const fn unsafe_zeroed_tss() -> Tss {
    // SAFETY: an all-zero TSS is a valid (empty) TSS.
    unsafe { core::mem::zeroed() }
}

pub const IST_STACK_SIZE: u64 = 32 * 1024;

extern "C" fn kernel_main(boot_info_phys: *const BootInfo) -> ! {
    let plat = platform::platform();
    serial::CONSOLE.init(serial::Uart16550::new(plat.io(), serial::COM1));
    serial::init_logger(log::LevelFilter::Info);

    // SAFETY: stage2 passes the boot-info page, still identity mapped; it is
    // copied before the identity map goes away.
    let bi = BOOT_INFO.call_once(|| unsafe { core::ptr::read(boot_info_phys) });
    if let Err(why) = bi.validate() {
        println!("SVSM: bad boot info: {why}");
        shutdown(ExitCode::BootError);
    }
    log::info!(
        "SVSM kernel {} on {} platform, kernel region {:#x}..{:#x}",
        env!("CARGO_PKG_VERSION"),
        plat.kind().name(),
        bi.kernel_region_start,
        bi.kernel_region_end
    );

    mm::frames::init(bi.free_phys_start, bi.kernel_region_end);

    // IST stacks first: from here on every fault lands on a healthy stack.
    let mut ist = [0u64; 4];
    for (i, slot) in ist.iter_mut().enumerate() {
        let Some(s) = stacks::alloc_stack(IST_STACK_SIZE) else {
            println!("SVSM: out of memory for IST stack {i}");
            shutdown(ExitCode::BootError);
        };
        *slot = s.top;
    }
    // SAFETY: bring-up of CPU 0 runs once, before any other use of its tables.
    let (gdt, tss) = unsafe { &mut *BSP_TABLES.0.get() };
    tss.ist[IST_DOUBLE_FAULT as usize - 1] = ist[0];
    tss.ist[IST_PAGE_FAULT as usize - 1] = ist[1];
    tss.ist[IST_NMI as usize - 1] = ist[2];
    tss.ist[IST_MACHINE_CHECK as usize - 1] = ist[3];
    tss.iomap_base = core::mem::size_of::<Tss>() as u16;
    gdt.load(tss);
    cpu::percpu::init(0);
    cpu::idt::load();
    if let Err(e) = plat.setup_exception_handling() {
        println!("SVSM: platform exception setup failed: {e:?}");
        shutdown(ExitCode::BootError);
    }

    paging_self_check();
    mm::paging::drop_identity_map();

    let cmdline = read_cmdline(bi);
    log::info!("command line: {:?}", cmdline.as_str());

    if let Some(name) = cmdline.test_name() {
        testcases::run(name);
    }
    println!("{READY_MARKER}");
    shutdown(ExitCode::Success);
}

fn paging_self_check() {
    let text = kernel_main as *const () as u64;
    if let Some((_, flags)) = mm::paging::translate(text) {
        if flags & mm::paging::NO_EXECUTE != 0 || flags & mm::paging::WRITABLE != 0 {
            println!("SVSM: kernel text is not RX");
            shutdown(ExitCode::BootError);
        }
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
        self.as_str().split_ascii_whitespace().find_map(|w| w.strip_prefix("test="))
    }
}

fn read_cmdline(bi: &BootInfo) -> Cmdline {
    let mut c = Cmdline { buf: [0; 256], len: 0 };
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
    println!("PANIC: {}", info);
    shutdown(ExitCode::Panic)
}
