//! stage2: the minimal stage between the platform's VP-context state and the
//! SVSM kernel.
//!
//! igvm-build did all layout work on the host: the page tables (CR3 in the VP
//! context), the kernel image placement, the boot stack and the boot info.
//! The VP context (native) or VMSA (SEV-SNP) already starts us in 64-bit
//! mode on our own guarded stack, with the platform in RSI (a `PlatformKind`
//! value igvm-build put there, measured on SNP). stage2 checks the boot info
//! and jumps to the kernel on the kernel's boot stack with the boot-info
//! pointer in `rdi`. Natively it reports on the serial port; on SNP port
//! I/O would raise #VC with no handler yet, so it stays silent and reports
//! a bad boot info through a GHCB MSR-protocol termination request. On SNP
//! every page stage2 and the kernel start with was validated by the launch
//! (SNP_LAUNCH_UPDATE); the kernel validates the rest of its memory.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use core::arch::{asm, global_asm};
use svsm_bootdefs::{BootInfo, ExitCode, layout};

global_asm!(
    ".section .text.start, \"ax\"",
    ".global _start",
    "_start:",
    ".cfi_startproc",
    // Outermost frame: unwinders stop here.
    ".cfi_undefined rip",
    "mov rsp, {stack_top}",
    "xor ebp, ebp",
    "mov rdi, {boot_info}",
    // RSI: the platform, from the VP context / VMSA.
    "call {main}",
    "ud2",
    ".cfi_endproc",
    stack_top = const layout::STAGE2_STACK_TOP,
    boot_info = const layout::BOOT_INFO_GPA,
    main = sym stage2_main,
);

use svsm_bootdefs::PlatformKind;
use svsm_defs::ghcb::msr_protocol::terminate_request;
use svsm_defs::msr;
use svsm_defs::uart::{COM1, LSR, LSR_THR_EMPTY};

/// The termination reason stage2 sends on SNP: the SVSM's reason set (3),
/// code 9 (stage2: bad boot info); see docs/snp.md.
const SNP_TERMINATE_BAD_BOOT_INFO: u64 = terminate_request(3, 9);

/// SNP: asks the hypervisor to end the guest (GHCB MSR protocol), then
/// halts should it resume us.
fn snp_terminate() -> ! {
    // SAFETY: WRMSR of the GHCB MSR (never intercepted for an SEV-ES/SNP
    // guest) with a termination request, then VMGEXIT (`rep vmmcall`): the
    // hypervisor ends the guest; nothing of ours is touched.
    unsafe {
        asm!(
            "wrmsr",
            "rep vmmcall",
            in("ecx") msr::GHCB,
            in("eax") SNP_TERMINATE_BAD_BOOT_INFO as u32,
            in("edx") (SNP_TERMINATE_BAD_BOOT_INFO >> 32) as u32,
            options(nomem, nostack)
        )
    };
    halt()
}

fn halt() -> ! {
    loop {
        // SAFETY: halting with interrupts off stops this CPU.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) };
    }
}

fn outb(port: u16, val: u8) {
    // SAFETY: port I/O to the legacy UART and the debug-exit device only.
    unsafe { asm!("out dx, al", in("dx") port, in("al") val, options(nomem, nostack)) };
}

fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: port I/O to the legacy UART only.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack)) };
    v
}

fn putc(c: u8) {
    // Wait for the transmitter holding register to be empty.
    while inb(COM1 + LSR) & LSR_THR_EMPTY == 0 {}
    outb(COM1, c);
}

fn puts(s: &str) {
    s.bytes().for_each(putc);
}

fn puthex(v: u64) {
    puts("0x");
    for i in (0..16).rev() {
        let d = ((v >> (i * 4)) & 0xf) as u8;
        putc(if d < 10 { b'0' + d } else { b'a' + d - 10 });
    }
}

fn exit(code: ExitCode) -> ! {
    // SAFETY: isa-debug-exit port; QEMU terminates.
    unsafe {
        asm!("out dx, eax", in("dx") svsm_bootdefs::DEBUG_EXIT_PORT, in("eax") code as u32, options(nomem, nostack))
    };
    halt()
}

extern "C" fn stage2_main(boot_info: *const BootInfo, platform: u64) -> ! {
    // SAFETY: igvm-build placed the boot-info page at BOOT_INFO_GPA, identity
    // mapped and read-only for us; BootInfo is plain data valid for any bytes.
    let bi = unsafe { &*boot_info };
    let snp = platform == PlatformKind::Snp as u64;
    if let Err(why) = bi.validate() {
        if snp {
            snp_terminate();
        }
        puts("stage2: bad boot info: ");
        puts(why);
        puts("\n");
        exit(ExitCode::BootError);
    }
    if u64::from(bi.platform) != platform {
        if snp {
            snp_terminate();
        }
        puts("stage2: boot info is for another platform\n");
        exit(ExitCode::BootError);
    }
    if !snp {
        puts("stage2: kernel entry ");
        puthex(bi.kernel_entry);
        puts(", boot stack top ");
        puthex(bi.boot_stack_top);
        puts("\n");
    }
    // SAFETY: the kernel entry and its boot stack are mapped by igvm-build in
    // the current page tables; this jump never returns.
    unsafe {
        asm!(
            "mov rsp, {stack}",
            "xor ebp, ebp",
            "jmp {entry}",
            stack = in(reg) bi.boot_stack_top,
            entry = in(reg) bi.kernel_entry,
            in("rdi") boot_info,
            options(noreturn)
        )
    }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // The platform argument is gone by now; the boot info's platform field
    // decides whether port I/O is safe (on SNP it would raise #VC, with no
    // handler here).
    // SAFETY: the boot-info page is mapped read-only at BOOT_INFO_GPA (see
    // `stage2_main`); any bit pattern is a valid u32.
    let platform = unsafe {
        core::ptr::read_volatile(core::ptr::addr_of!(
            (*(layout::BOOT_INFO_GPA as *const BootInfo)).platform
        ))
    };
    if platform == PlatformKind::Snp as u32 {
        snp_terminate();
    }
    puts("stage2: panic\n");
    exit(ExitCode::Panic)
}
