//! The APIC timer against a caller-supplied clock: `now` is a count of the
//! timer's input clock (before the divider), monotonic, in any unit the
//! caller chooses (the native host uses its own TSC-derived ticks). The
//! model never reads a clock itself; the caller polls it and arms its own
//! wake-up at [`Timer::next_deadline`].

use crate::regs::{self, LVT_MASKED, LVT_TIMER_MODE_MASK, LVT_TIMER_PERIODIC};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer {
    pub lvt: u32,
    pub initial: u32,
    pub dcr: u32,
    /// Input-clock ticks per count, fixed when the count was loaded.
    divisor: u64,
    /// When the count was loaded.
    start: u64,
    /// Expiries already signalled since `start`.
    fired: u64,
    armed: bool,
}

impl Default for Timer {
    fn default() -> Self {
        Timer {
            lvt: LVT_MASKED,
            initial: 0,
            dcr: 0,
            divisor: 2,
            start: 0,
            fired: 0,
            armed: false,
        }
    }
}

impl Timer {
    fn periodic(&self) -> bool {
        self.lvt & LVT_TIMER_MODE_MASK == LVT_TIMER_PERIODIC
    }

    fn period(&self) -> u64 {
        u64::from(self.initial) * self.divisor
    }

    /// Writing the initial count loads the counter (0 stops it).
    pub fn load(&mut self, initial: u32, now: u64) {
        self.initial = initial;
        self.divisor = regs::divisor(self.dcr);
        self.start = now;
        self.fired = 0;
        self.armed = initial != 0;
    }

    /// The input-clock time of the next expiry, if the timer runs.
    pub fn next_deadline(&self) -> Option<u64> {
        self.armed.then(|| {
            self.start
                .saturating_add(self.period().saturating_mul(self.fired + 1))
        })
    }

    /// Advances to `now`: `true` if the timer expired (once, however many
    /// periods passed: missed periodic ticks are coalesced, as a busy
    /// interrupt line would). A one-shot timer stops; a periodic one
    /// continues from its schedule, not from `now`.
    pub fn poll(&mut self, now: u64) -> bool {
        match self.next_deadline() {
            Some(d) if now >= d => {
                if self.periodic() {
                    self.fired = (now - self.start) / self.period();
                } else {
                    self.armed = false;
                }
                true
            }
            _ => false,
        }
    }

    /// The current-count register at `now`.
    pub fn current(&self, now: u64) -> u32 {
        if !self.armed || self.initial == 0 {
            return 0;
        }
        let elapsed = now.saturating_sub(self.start);
        let period = self.period();
        let into = if self.periodic() {
            elapsed % period
        } else if elapsed >= period {
            return 0;
        } else {
            elapsed
        };
        let left = (period - into).div_ceil(self.divisor);
        u32::try_from(left).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_counts_down_fires_once_and_stops() {
        let mut t = Timer {
            lvt: 0x40,
            dcr: 0b1011, // divide by 1
            ..Timer::default()
        };
        t.load(100, 1000);
        assert_eq!(t.current(1000), 100);
        assert_eq!(t.current(1060), 40);
        assert_eq!(t.next_deadline(), Some(1100));
        assert!(!t.poll(1099));
        assert!(t.poll(1100));
        assert!(!t.poll(5000));
        assert_eq!(t.current(1100), 0);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn periodic_reloads_on_schedule_and_coalesces() {
        let mut t = Timer {
            lvt: 0x40 | LVT_TIMER_PERIODIC,
            dcr: 0b0000, // divide by 2
            ..Timer::default()
        };
        t.load(50, 0); // period 100 input ticks
        assert!(t.poll(100));
        assert_eq!(t.next_deadline(), Some(200));
        assert!(t.poll(450), "three periods late: one expiry");
        assert_eq!(t.next_deadline(), Some(500));
        assert_eq!(t.current(460), 20);
        t.load(0, 470);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn divisors() {
        let want = [2, 4, 8, 16, 32, 64, 128, 1];
        for (code, w) in want.iter().enumerate() {
            let code = code as u32;
            let dcr = (code & 3) | ((code & 4) << 1);
            assert_eq!(regs::divisor(dcr), *w, "dcr {dcr:#x}");
        }
    }
}
