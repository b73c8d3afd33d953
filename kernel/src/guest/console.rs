//! The guest's serial console: bytes it writes to COM1 (IOIO exits) are
//! collected per line and printed with a `guest:` prefix, so the SVSM's log
//! shows the guest's lines whole.

use alloc::vec::Vec;

/// Longest line kept; longer lines are printed in pieces.
const MAX_LINE: usize = 200;

#[derive(Default)]
pub struct GuestConsole {
    line: Vec<u8>,
}

impl GuestConsole {
    pub fn put(&mut self, b: u8) {
        match b {
            b'\n' => self.flush(),
            b'\r' => {}
            _ => {
                self.line.push(b);
                if self.line.len() >= MAX_LINE {
                    self.flush();
                }
            }
        }
    }

    pub fn flush(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = core::str::from_utf8(&self.line).unwrap_or("<not UTF-8>");
        crate::println!("guest: {text}");
        self.line.clear();
    }
}
