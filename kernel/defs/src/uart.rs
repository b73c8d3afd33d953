//! The 16550 UART registers the consoles of stage2 and the kernel program.

/// I/O port base of the first serial port.
pub const COM1: u16 = 0x3f8;
/// Register offsets from the base port.
pub const THR: u16 = 0; // transmit holding (write), divisor low with DLAB
pub const IER: u16 = 1; // interrupt enable, divisor high with DLAB
pub const FCR: u16 = 2; // FIFO control (write)
pub const LCR: u16 = 3; // line control
pub const MCR: u16 = 4; // modem control
pub const LSR: u16 = 5; // line status
/// LSR bit: the transmit holding register is empty.
pub const LSR_THR_EMPTY: u8 = 0x20;
/// LCR: divisor latch access.
pub const LCR_DLAB: u8 = 0x80;
/// LCR: 8 data bits, no parity, 1 stop bit.
pub const LCR_8N1: u8 = 0x03;
/// FCR: FIFOs on and cleared, 14-byte trigger.
pub const FCR_ENABLE_CLEAR: u8 = 0xc7;
/// MCR: DTR and RTS.
pub const MCR_DTR_RTS: u8 = 0x03;
/// Divisor for 115200 baud.
pub const DIVISOR_115200: u8 = 1;
