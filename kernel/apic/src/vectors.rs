//! 256-bit vector registers (IRR, ISR, TMR, the allow-list) and the
//! priority rules between them.

/// Vectors 0..=30 are exceptions (or reserved for them, #VC and #HV
/// included): the emulated APIC never holds or delivers one.
pub const FIRST_INJECTABLE: u8 = 31;

/// One bit per vector, as the APIC's 8 x 32-bit registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VectorSet(pub [u32; 8]);

impl VectorSet {
    pub fn set(&mut self, v: u8) {
        self.0[usize::from(v >> 5)] |= 1 << (v & 31);
    }
    pub fn clear(&mut self, v: u8) {
        self.0[usize::from(v >> 5)] &= !(1 << (v & 31));
    }
    pub fn contains(&self, v: u8) -> bool {
        self.0[usize::from(v >> 5)] & (1 << (v & 31)) != 0
    }
    /// The highest vector in the set.
    pub fn highest(&self) -> Option<u8> {
        self.0
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| (i as u32 * 32 + 31 - w.leading_zeros()) as u8)
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    /// The number of vectors in the set.
    pub fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }
}

/// A vector's priority class (bits 7:4).
pub const fn class(v: u8) -> u8 {
    v >> 4
}

/// The processor priority: the task priority, or the class of the highest
/// in-service vector if that is higher (then with its low bits cleared).
pub fn ppr(tpr: u8, isr: &VectorSet) -> u8 {
    let isrv = isr.highest().unwrap_or(0);
    if class(tpr) >= class(isrv) {
        tpr
    } else {
        isrv & 0xF0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_highest() {
        let mut s = VectorSet::default();
        assert_eq!(s.highest(), None);
        for v in [31, 32, 200, 255, 63] {
            s.set(v);
        }
        assert_eq!(s.highest(), Some(255));
        assert_eq!(s.len(), 5);
        s.clear(255);
        assert_eq!(s.highest(), Some(200));
        assert!(s.contains(31) && !s.contains(30));
        assert_eq!(s.0[0], 0x8000_0000);
    }

    #[test]
    fn ppr_is_the_higher_class() {
        let mut isr = VectorSet::default();
        assert_eq!(ppr(0x35, &isr), 0x35);
        isr.set(0x61);
        assert_eq!(ppr(0x35, &isr), 0x60);
        assert_eq!(ppr(0x65, &isr), 0x65, "equal class: TPR");
        assert_eq!(ppr(0x70, &isr), 0x70);
    }
}
