//! The guest pages the core protocol has made the SVSM's: the VMSAs of the
//! vCPUs it created and the memory the guest deposited, plus the Calling
//! Areas of those vCPUs. Kept here, not only in the backend, so that every
//! backend gets the same guarantees: the guest can never PVALIDATE, deposit,
//! remap a Calling Area onto, or have a list read from or written to a page
//! the SVSM owns.

use alloc::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Vmsa,
    Deposited,
}

/// Non-overlapping owned ranges, and the CAAs of the vCPUs created here.
#[derive(Debug, Default)]
pub(super) struct Owned {
    /// Start GPA -> (end GPA, kind).
    ranges: BTreeMap<u64, (u64, Kind)>,
    /// VMSA GPA -> CAA GPA of each vCPU created by CREATE_VCPU.
    caas: BTreeMap<u64, u64>,
}

impl Owned {
    pub(super) const fn new() -> Self {
        Self {
            ranges: BTreeMap::new(),
            caas: BTreeMap::new(),
        }
    }

    /// Whether `[gpa, gpa + len)` shares a byte with an owned range. The
    /// ranges never overlap each other, so the last one starting before the
    /// end of the query is the only candidate.
    pub(super) fn overlaps(&self, gpa: u64, len: u64) -> bool {
        let end = gpa.saturating_add(len);
        self.ranges
            .range(..end)
            .next_back()
            .is_some_and(|(_, &(e, _))| e > gpa)
    }

    /// Whether the page at `page` is the Calling Area of a vCPU created here
    /// or `current` (the caller's).
    pub(super) fn is_ca(&self, page: u64, len: u64, current: u64) -> bool {
        let hit = |c: u64| c < page.saturating_add(len) && page < c.saturating_add(0x1000);
        hit(current) || self.caas.values().any(|&c| hit(c))
    }

    /// Records an owned range (the caller checked it overlaps nothing).
    pub(super) fn insert(&mut self, gpa: u64, len: u64, kind: Kind) {
        self.ranges.insert(gpa, (gpa + len, kind));
    }

    pub(super) fn remove(&mut self, gpa: u64) {
        self.ranges.remove(&gpa);
    }

    pub(super) fn add_vcpu(&mut self, vmsa: u64, caa: u64) {
        self.insert(vmsa, 0x1000, Kind::Vmsa);
        self.caas.insert(vmsa, caa);
    }

    pub(super) fn remove_vcpu(&mut self, vmsa: u64) {
        if self.ranges.get(&vmsa).is_some_and(|r| r.1 == Kind::Vmsa) {
            self.ranges.remove(&vmsa);
        }
        self.caas.remove(&vmsa);
    }

    /// A created vCPU's Calling Area moved from `old` to `new`.
    pub(super) fn move_ca(&mut self, old: u64, new: u64) {
        for c in self.caas.values_mut().filter(|c| **c == old) {
            *c = new;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_queries() {
        let mut o = Owned::new();
        o.insert(0x10_0000, 0x1000, Kind::Vmsa);
        o.insert(0x20_0000, 0x20_0000, Kind::Deposited);
        assert!(o.overlaps(0x10_0000, 0x1000));
        assert!(o.overlaps(0xf_f000, 0x2000));
        assert!(!o.overlaps(0xf_f000, 0x1000));
        assert!(!o.overlaps(0x10_1000, 0x1000));
        assert!(o.overlaps(0x3f_f000, 0x1000));
        assert!(o.overlaps(0, u64::MAX));
        assert!(!o.overlaps(0x40_0000, 0x1000));
        o.add_vcpu(0x50_0000, 0x51_0000);
        assert!(o.is_ca(0x51_0000, 0x1000, 0x1000) && o.is_ca(0x1000, 8, 0x1000));
        assert!(o.is_ca(0x40_0000, 0x20_0000, 0x1000));
        o.move_ca(0x51_0000, 0x52_0000);
        assert!(!o.is_ca(0x51_0000, 0x1000, 0x1000) && o.is_ca(0x52_0000, 0x1000, 0x1000));
        o.remove_vcpu(0x50_0000);
        assert!(!o.overlaps(0x50_0000, 0x1000) && !o.is_ca(0x52_0000, 0x1000, 0x1000));
    }
}
