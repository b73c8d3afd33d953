//! Layout of the stack area: constants, slot arithmetic and [`StackRange`].

/// Page size of every mapping in the stack area.
pub const PAGE_SIZE: u64 = 4096;

/// Minimum size of the unmapped guard region below and above every stack
/// allocated in the stack area (see `docs/guards.md` for the choice).
pub const GUARD_SIZE: u64 = 64 * 1024;

/// Base of the stack area: PML4 slot 510 (512 GiB of virtual space).
pub const STACK_AREA_BASE: u64 = 0xffff_ff00_0000_0000;
/// Size of the stack area.
pub const STACK_AREA_SIZE: u64 = 512 << 30;
/// First byte above the stack area.
pub const STACK_AREA_END: u64 = STACK_AREA_BASE + STACK_AREA_SIZE;

/// Stride of the stack area: every allocated stack and its two guards fill
/// exactly one slot. Unmapped slack in a slot belongs to the lower guard.
pub const SLOT_SIZE: u64 = 256 * 1024;
/// Number of slots in the stack area (slot 0 is the boot stack's).
pub const SLOT_COUNT: u64 = STACK_AREA_SIZE / SLOT_SIZE;
/// Largest stack that fits in a slot between two full guards.
pub const MAX_STACK_SIZE: u64 = SLOT_SIZE - 2 * GUARD_SIZE;

/// The kernel boot stack lives in slot 0 right above a full lower guard;
/// igvm-build maps `BOOT_STACK_BOTTOM..BOOT_STACK_TOP` before the kernel
/// runs, so its place is fixed. It is also CPU 0's kernel stack.
pub const BOOT_STACK_SIZE: u64 = 64 * 1024;
pub const BOOT_STACK_BOTTOM: u64 = STACK_AREA_BASE + GUARD_SIZE;
pub const BOOT_STACK_TOP: u64 = BOOT_STACK_BOTTOM + BOOT_STACK_SIZE;
/// The boot stack with its guards: the rest of slot 0 is its upper guard.
pub const BOOT_STACK_RANGE: StackRange = StackRange {
    guard_lo: STACK_AREA_BASE,
    bottom: BOOT_STACK_BOTTOM,
    top: BOOT_STACK_TOP,
    guard_hi: STACK_AREA_BASE + SLOT_SIZE,
};

/// Per-CPU kernel stack: every CPU's `cpu_main` runs on it (CPU 0 switches
/// to its own from the boot stack once boot is done).
pub const PERCPU_STACK_SIZE: u64 = 64 * 1024;
/// IST stack for #DF: prints the report and a backtrace.
pub const IST_DF_STACK_SIZE: u64 = 32 * 1024;
/// IST stack for #PF: classification, report and backtrace.
pub const IST_PF_STACK_SIZE: u64 = 32 * 1024;
/// IST stack for NMI: the other CPUs' stop/shootdown requests, or the
/// fatal report with a backtrace (as #MC and #VC: 24 KiB holds one fatal
/// report plus one nested exception's, see stackcheck.toml).
pub const IST_NMI_STACK_SIZE: u64 = 24 * 1024;
/// IST stack for #MC.
pub const IST_MC_STACK_SIZE: u64 = 24 * 1024;
/// IST stack for #VC (SEV-SNP): instruction emulation through the GHCB, or
/// the fatal report.
pub const IST_VC_STACK_SIZE: u64 = 24 * 1024;
/// Kernel task stack.
pub const TASK_STACK_SIZE: u64 = 32 * 1024;
/// Reserved for CET shadow stacks (not used yet).
pub const SHADOW_STACK_SIZE: u64 = 16 * 1024;

const _: () = {
    assert!(STACK_AREA_BASE.is_multiple_of(SLOT_SIZE));
    assert!(STACK_AREA_SIZE.is_multiple_of(SLOT_SIZE));
    assert!(GUARD_SIZE.is_multiple_of(PAGE_SIZE) && GUARD_SIZE >= PAGE_SIZE);
    assert!(BOOT_STACK_SIZE <= MAX_STACK_SIZE);
    assert!(PERCPU_STACK_SIZE <= MAX_STACK_SIZE);
    assert!(IST_DF_STACK_SIZE <= MAX_STACK_SIZE && IST_PF_STACK_SIZE <= MAX_STACK_SIZE);
    assert!(IST_NMI_STACK_SIZE <= MAX_STACK_SIZE && IST_MC_STACK_SIZE <= MAX_STACK_SIZE);
    assert!(IST_VC_STACK_SIZE <= MAX_STACK_SIZE);
    assert!(TASK_STACK_SIZE <= MAX_STACK_SIZE && SHADOW_STACK_SIZE <= MAX_STACK_SIZE);
    assert!(BOOT_STACK_TOP + GUARD_SIZE <= STACK_AREA_BASE + SLOT_SIZE);
};

/// A stack and its guards: `[guard_lo, bottom)` is the lower (overflow)
/// guard, `[bottom, top)` the stack, `[top, guard_hi)` the upper
/// (underflow) guard. The stack grows down from `top`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StackRange {
    pub guard_lo: u64,
    pub bottom: u64,
    pub top: u64,
    pub guard_hi: u64,
}

impl StackRange {
    /// Checks page alignment, order and that each guard is at least a page.
    pub const fn is_valid(&self) -> bool {
        let aligned = self.guard_lo.is_multiple_of(PAGE_SIZE)
            && self.bottom.is_multiple_of(PAGE_SIZE)
            && self.top.is_multiple_of(PAGE_SIZE)
            && self.guard_hi.is_multiple_of(PAGE_SIZE);
        // With page alignment, strict order means each part is >= a page.
        aligned && self.guard_lo < self.bottom && self.bottom < self.top && self.top < self.guard_hi
    }

    /// Size of the stack itself in bytes.
    pub const fn size(&self) -> u64 {
        self.top - self.bottom
    }

    pub const fn lower_guard_size(&self) -> u64 {
        self.bottom - self.guard_lo
    }

    pub const fn upper_guard_size(&self) -> u64 {
        self.guard_hi - self.top
    }

    /// Whether `addr` lies in the stack or one of its guards.
    pub const fn contains_guarded(&self, addr: u64) -> bool {
        self.guard_lo <= addr && addr < self.guard_hi
    }

    /// Whether `addr` lies in the stack proper.
    pub const fn contains(&self, addr: u64) -> bool {
        self.bottom <= addr && addr < self.top
    }

    /// Whether the guarded ranges of `self` and `other` share a byte.
    pub const fn overlaps(&self, other: &StackRange) -> bool {
        self.guard_lo < other.guard_hi && other.guard_lo < self.guard_hi
    }
}

/// The layout of an allocated stack of `size` bytes in `slot` (1 ..
/// `SLOT_COUNT`): the stack ends one full guard below the end of the slot,
/// so its upper guard is exactly `GUARD_SIZE` and its lower guard is the
/// rest of the slot below it (at least `GUARD_SIZE`). `None` for slot 0
/// (the boot stack's, see [`BOOT_STACK_RANGE`]), a slot outside the area, or
/// a size that is zero, not page aligned or above [`MAX_STACK_SIZE`].
pub const fn slot_layout(slot: u64, size: u64) -> Option<StackRange> {
    if slot == 0 || slot >= SLOT_COUNT {
        return None;
    }
    if size == 0 || !size.is_multiple_of(PAGE_SIZE) || size > MAX_STACK_SIZE {
        return None;
    }
    let guard_lo = STACK_AREA_BASE + slot * SLOT_SIZE;
    let guard_hi = guard_lo + SLOT_SIZE;
    let top = guard_hi - GUARD_SIZE;
    Some(StackRange {
        guard_lo,
        bottom: top - size,
        top,
        guard_hi,
    })
}

/// The slot holding `addr`, if it is in the stack area.
pub const fn slot_of(addr: u64) -> Option<u64> {
    if addr < STACK_AREA_BASE || addr >= STACK_AREA_END {
        return None;
    }
    Some((addr - STACK_AREA_BASE) / SLOT_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_stack_is_fixed_in_slot_zero() {
        assert_eq!(BOOT_STACK_BOTTOM, 0xffff_ff00_0001_0000);
        assert_eq!(BOOT_STACK_TOP, 0xffff_ff00_0002_0000);
        assert!(BOOT_STACK_RANGE.is_valid());
        assert_eq!(BOOT_STACK_RANGE.lower_guard_size(), GUARD_SIZE);
        assert_eq!(
            BOOT_STACK_RANGE.upper_guard_size(),
            SLOT_SIZE - GUARD_SIZE - BOOT_STACK_SIZE
        );
        assert_eq!(slot_of(BOOT_STACK_RANGE.guard_lo), Some(0));
        assert_eq!(slot_of(BOOT_STACK_RANGE.guard_hi - 1), Some(0));
        assert_eq!(slot_of(BOOT_STACK_RANGE.guard_hi), Some(1));
    }

    #[test]
    fn slot_layout_arithmetic() {
        let r = slot_layout(1, TASK_STACK_SIZE).unwrap();
        assert_eq!(r.guard_lo, 0xffff_ff00_0004_0000);
        assert_eq!(r.guard_hi, 0xffff_ff00_0008_0000);
        assert_eq!(r.top, 0xffff_ff00_0007_0000);
        assert_eq!(r.bottom, 0xffff_ff00_0006_8000);
        assert_eq!(r.size(), TASK_STACK_SIZE);
        assert_eq!(r.upper_guard_size(), GUARD_SIZE);
        assert_eq!(
            r.lower_guard_size(),
            SLOT_SIZE - GUARD_SIZE - TASK_STACK_SIZE
        );
        assert!(r.is_valid());

        let max = slot_layout(SLOT_COUNT - 1, MAX_STACK_SIZE).unwrap();
        assert_eq!(max.guard_hi, STACK_AREA_END);
        assert_eq!(max.lower_guard_size(), GUARD_SIZE);
        assert_eq!(max.upper_guard_size(), GUARD_SIZE);
        assert!(max.is_valid());
    }

    #[test]
    fn slot_layout_rejects() {
        assert_eq!(slot_layout(0, TASK_STACK_SIZE), None);
        assert_eq!(slot_layout(SLOT_COUNT, TASK_STACK_SIZE), None);
        assert_eq!(slot_layout(1, 0), None);
        assert_eq!(slot_layout(1, 4095), None);
        assert_eq!(slot_layout(1, MAX_STACK_SIZE + PAGE_SIZE), None);
    }

    #[test]
    fn slot_of_edges() {
        assert_eq!(slot_of(STACK_AREA_BASE - 1), None);
        assert_eq!(slot_of(STACK_AREA_END), None);
        assert_eq!(slot_of(STACK_AREA_END - 1), Some(SLOT_COUNT - 1));
        assert_eq!(slot_of(STACK_AREA_BASE + 5 * SLOT_SIZE + 17), Some(5));
    }

    #[test]
    fn range_validity() {
        let ok = StackRange {
            guard_lo: 0x1000,
            bottom: 0x2000,
            top: 0x4000,
            guard_hi: 0x5000,
        };
        assert!(ok.is_valid());
        assert!(
            !StackRange {
                guard_lo: 0x2000,
                ..ok
            }
            .is_valid(),
            "no lower guard"
        );
        assert!(
            !StackRange {
                guard_hi: 0x4000,
                ..ok
            }
            .is_valid(),
            "no upper guard"
        );
        assert!(
            !StackRange {
                top: 0x2000,
                guard_hi: 0x3000,
                ..ok
            }
            .is_valid(),
            "empty stack"
        );
        assert!(
            !StackRange {
                bottom: 0x2008,
                ..ok
            }
            .is_valid(),
            "misaligned"
        );
        let other = StackRange {
            guard_lo: 0x5000,
            bottom: 0x6000,
            top: 0x7000,
            guard_hi: 0x8000,
        };
        assert!(!ok.overlaps(&other) && !other.overlaps(&ok));
        let touching = StackRange {
            guard_lo: 0x4000,
            ..other
        };
        assert!(ok.overlaps(&touching) && touching.overlaps(&ok));
    }
}
