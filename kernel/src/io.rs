//! x86 port I/O. On SNP/TDX port I/O traps (#VC/#VE) and is emulated; the
//! platform decides which implementation a driver gets.

use core::arch::asm;

/// Port I/O as seen by a device driver.
pub trait IoPort: Sync {
    fn outb(&self, port: u16, val: u8);
    fn inb(&self, port: u16) -> u8;
    fn outl(&self, port: u16, val: u32);
}

/// Direct `in`/`out` instructions (native platform).
pub struct DirectIo;

impl IoPort for DirectIo {
    fn outb(&self, port: u16, val: u8) {
        // SAFETY: port I/O has no memory effects visible to Rust; the kernel
        // runs at CPL0 with IOPL irrelevant.
        unsafe {
            asm!("out dx, al", in("dx") port, in("al") val, options(nomem, nostack, preserves_flags))
        };
    }

    fn inb(&self, port: u16) -> u8 {
        let v: u8;
        // SAFETY: as in `outb`.
        unsafe {
            asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
        };
        v
    }

    fn outl(&self, port: u16, val: u32) {
        // SAFETY: as in `outb`.
        unsafe {
            asm!("out dx, eax", in("dx") port, in("eax") val, options(nomem, nostack, preserves_flags))
        };
    }
}
