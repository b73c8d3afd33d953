//! Port I/O instructions. On SEV-SNP and TDX port I/O traps (#VC / #VE) and
//! is emulated by the platform; `platform::SvsmPlatform::io` decides which
//! implementation of `IoPort` a driver gets.

use core::arch::asm;

/// Port I/O as seen by a device driver.
///
/// # Safety
/// Every method's caller must own the port it accesses: a port write can
/// reset the machine, start DMA or reprogram a device someone else drives.
pub trait IoPort: Sync {
    /// # Safety
    /// The caller owns `port` (see the trait).
    unsafe fn outb(&self, port: u16, val: u8);
    /// # Safety
    /// The caller owns `port` (see the trait).
    unsafe fn inb(&self, port: u16) -> u8;
    /// # Safety
    /// The caller owns `port` (see the trait).
    unsafe fn outl(&self, port: u16, val: u32);
}

/// Direct `in`/`out` instructions (native platform).
pub struct DirectIo;

impl IoPort for DirectIo {
    unsafe fn outb(&self, port: u16, val: u8) {
        // SAFETY: OUT touches no memory visible to Rust; the caller owns the port.
        unsafe {
            asm!("out dx, al", in("dx") port, in("al") val, options(nomem, nostack, preserves_flags))
        };
    }

    unsafe fn inb(&self, port: u16) -> u8 {
        let v: u8;
        // SAFETY: as in `outb`.
        unsafe {
            asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
        };
        v
    }

    unsafe fn outl(&self, port: u16, val: u32) {
        // SAFETY: as in `outb`.
        unsafe {
            asm!("out dx, eax", in("dx") port, in("eax") val, options(nomem, nostack, preserves_flags))
        };
    }
}

impl DirectIo {
    /// A 16-bit OUT (not part of `IoPort`: only native-platform code that
    /// talks to QEMU's fw_cfg selector needs it).
    ///
    /// # Safety
    /// The caller owns `port` (see `IoPort`).
    pub unsafe fn outw(&self, port: u16, val: u16) {
        // SAFETY: as in `outb`.
        unsafe {
            asm!("out dx, ax", in("dx") port, in("ax") val, options(nomem, nostack, preserves_flags))
        };
    }
}
