//! Port I/O: the console (COM1, whose writes the SVSM collects into
//! `guest:` lines) and the exit port (the SVSM turns the value into its
//! own exit code).

use core::arch::asm;
use core::fmt;

const COM1: u16 = 0x3f8;

pub fn outb(port: u16, v: u8) {
    // SAFETY: port I/O in the guest exits to the SVSM, which emulates it.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack)) };
}

pub fn outl(port: u16, v: u32) {
    // SAFETY: as in `outb`.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack)) };
}

pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(|b| outb(COM1, b));
        Ok(())
    }
}

#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write;
        let _ = writeln!($crate::io::Console, $($arg)*);
    }};
}

/// Ends the guest: 0 passes, anything else fails.
pub fn exit(code: u32) -> ! {
    outl(svsm_bootdefs::DEBUG_EXIT_PORT, code);
    loop {
        // SAFETY: HLT stops this vCPU; the SVSM ends a halted guest.
        unsafe { asm!("hlt", options(nomem, nostack)) };
    }
}

pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the time-stamp counter.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}
