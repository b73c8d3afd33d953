//! Guest-physical and virtual addresses as distinct types, so a physical
//! address cannot be passed where a virtual one is expected (or the reverse).

use core::fmt;

/// A guest-physical address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct PhysAddr(u64);

/// A virtual address in the kernel's address space.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct VirtAddr(u64);

impl PhysAddr {
    pub const fn new(pa: u64) -> Self {
        Self(pa)
    }

    pub const fn as_u64(self) -> u64 {
        self.0
    }

    pub const fn is_aligned(self, align: u64) -> bool {
        self.0 & (align - 1) == 0
    }

    pub const fn align_down(self, align: u64) -> Self {
        Self(self.0 & !(align - 1))
    }

    /// `self + off`, or `None` on overflow.
    pub const fn checked_add(self, off: u64) -> Option<Self> {
        match self.0.checked_add(off) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// The 4 KiB frame number.
    pub const fn pfn(self) -> u64 {
        self.0 >> 12
    }
}

impl VirtAddr {
    /// Any 64-bit value; use [`VirtAddr::new_canonical`] for values from outside.
    pub const fn new(va: u64) -> Self {
        Self(va)
    }

    /// Only canonical 48-bit addresses (bits 63..47 all equal).
    pub const fn new_canonical(va: u64) -> Option<Self> {
        let top = va >> 47;
        if top == 0 || top == 0x1_ffff {
            Some(Self(va))
        } else {
            None
        }
    }

    pub const fn as_u64(self) -> u64 {
        self.0
    }

    pub fn as_ptr<T>(self) -> *const T {
        self.0 as *const T
    }

    pub fn as_mut_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }

    pub const fn is_aligned(self, align: u64) -> bool {
        self.0 & (align - 1) == 0
    }

    pub const fn align_down(self, align: u64) -> Self {
        Self(self.0 & !(align - 1))
    }

    /// `self + off`, or `None` on overflow.
    pub const fn checked_add(self, off: u64) -> Option<Self> {
        match self.0.checked_add(off) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }
}

impl fmt::Debug for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhysAddr({:#x})", self.0)
    }
}

impl fmt::Debug for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtAddr({:#x})", self.0)
    }
}

impl fmt::LowerHex for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl fmt::LowerHex for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_addresses() {
        assert!(VirtAddr::new_canonical(0x0000_7fff_ffff_ffff).is_some());
        assert!(VirtAddr::new_canonical(0xffff_8000_0000_0000).is_some());
        assert!(VirtAddr::new_canonical(0x0000_8000_0000_0000).is_none());
        assert!(VirtAddr::new_canonical(0xfff7_ffff_ffff_ffff).is_none());
    }

    #[test]
    fn alignment_and_overflow() {
        let pa = PhysAddr::new(0x1234_5678);
        assert_eq!(pa.align_down(4096), PhysAddr::new(0x1234_5000));
        assert!(!pa.is_aligned(4096));
        assert_eq!(pa.pfn(), 0x12345);
        assert_eq!(PhysAddr::new(u64::MAX).checked_add(1), None);
        assert_eq!(VirtAddr::new(8).checked_add(8), Some(VirtAddr::new(16)));
        assert_eq!(std::format!("{pa:?}"), "PhysAddr(0x12345678)");
    }
}
