//! 16550 UART console and the `log` backend.

use crate::arch::io::IoPort;
use core::fmt;
use spin::Mutex;
use svsm_defs::uart;

pub use svsm_defs::uart::COM1;

pub struct Uart16550 {
    io: &'static dyn IoPort,
    base: u16,
}

impl Uart16550 {
    /// A driver for the UART at port `base`.
    ///
    /// # Safety
    /// The eight ports from `base` belong to a 16550 UART that nothing else
    /// drives.
    pub const unsafe fn new(io: &'static dyn IoPort, base: u16) -> Self {
        Self { io, base }
    }

    fn out(&self, reg: u16, val: u8) {
        // SAFETY: `reg` is one of this UART's registers, owned per `new`.
        unsafe { self.io.outb(self.base + reg, val) };
    }

    fn inp(&self, reg: u16) -> u8 {
        // SAFETY: as in `out`.
        unsafe { self.io.inb(self.base + reg) }
    }

    pub fn init(&self) {
        self.out(uart::IER, 0x00); // no interrupts
        self.out(uart::LCR, uart::LCR_DLAB);
        self.out(uart::THR, uart::DIVISOR_115200);
        self.out(uart::IER, 0x00);
        self.out(uart::LCR, uart::LCR_8N1);
        self.out(uart::FCR, uart::FCR_ENABLE_CLEAR);
        self.out(uart::MCR, uart::MCR_DTR_RTS);
    }

    pub fn write_byte(&self, c: u8) {
        let mut spins = 0u32;
        while self.inp(uart::LSR) & uart::LSR_THR_EMPTY == 0 && spins < 100_000 {
            spins += 1;
        }
        self.out(uart::THR, c);
    }

    pub fn write_bytes(&self, s: &[u8]) {
        for &c in s {
            if c == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(c);
        }
    }
}

/// The console every kernel message goes through.
pub struct Console {
    uart: Mutex<Option<Uart16550>>,
}

pub static CONSOLE: Console = Console {
    uart: Mutex::new(None),
};

impl Console {
    pub fn init(&self, uart: Uart16550) {
        uart.init();
        *self.uart.lock() = Some(uart);
    }

    pub fn write_str_raw(&self, s: &str) {
        if let Some(u) = self.uart.lock().as_ref() {
            u.write_bytes(s.as_bytes());
        }
    }

    pub fn is_locked(&self) -> bool {
        self.uart.is_locked()
    }

    /// Breaks the console lock: used on the fatal paths (panic, fault
    /// reports), where the interrupted context may hold it.
    pub fn force_unlock(&self) {
        if self.uart.is_locked() {
            // SAFETY: only called on a fatal path: the other CPUs are
            // stopped (or being stopped) and the path never returns to an
            // interrupted lock holder.
            unsafe { self.uart.force_unlock() };
        }
    }
}

/// `core::fmt::Write` adapter over the console.
pub struct ConsoleWriter;

impl fmt::Write for ConsoleWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        CONSOLE.write_str_raw(s);
        Ok(())
    }
}

#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::serial::ConsoleWriter, $($arg)*);
    }};
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = write!($crate::serial::ConsoleWriter, $($arg)*);
    }};
}

struct SerialLogger;

impl log::Log for SerialLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let level = match record.level() {
                log::Level::Error => "ERROR",
                log::Level::Warn => "WARN ",
                log::Level::Info => "INFO ",
                log::Level::Debug => "DEBUG",
                log::Level::Trace => "TRACE",
            };
            crate::println!("[{level}] {}", record.args());
        }
    }

    fn flush(&self) {}
}

static LOGGER: SerialLogger = SerialLogger;

pub fn init_logger(max: log::LevelFilter) {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(max);
    }
}
