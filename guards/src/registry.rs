//! The stack registry and allocator: a fixed-capacity table of every stack
//! (no heap needed, usable as a `static` behind the kernel's lock), which
//! hands out slots of the stack area and classifies any address.

use core::fmt;

use crate::kind::{Owner, StackKind, valid_name};
use crate::layout::{
    BOOT_STACK_RANGE, MAX_STACK_SIZE, PAGE_SIZE, SLOT_COUNT, StackRange, slot_layout,
};

/// Default registry capacity for the kernel (see `docs/guards.md`).
pub const MAX_STACKS: usize = 128;

/// Index of a registered stack. Stays valid until the stack is freed; an
/// id of a freed stack is rejected until its entry is reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StackId(pub u16);

/// Everything known about one stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackInfo {
    pub kind: StackKind,
    pub owner: Owner,
    pub name: &'static str,
    pub range: StackRange,
}

/// Where an address lies relative to the registered stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classification {
    /// Inside the stack proper.
    InStack(StackId),
    /// In the lower guard: `bytes_past_limit = bottom - addr` (>= 1).
    Overflow {
        stack: StackId,
        bytes_past_limit: u64,
    },
    /// In the upper guard: `bytes_past_limit = addr - top + 1` (>= 1).
    Underflow {
        stack: StackId,
        bytes_past_limit: u64,
    },
    /// Not in any registered stack or guard.
    Unrelated,
}

impl Classification {
    /// The stack an address belongs to, whether inside it or in its guard.
    pub const fn stack(self) -> Option<StackId> {
        match self {
            Classification::InStack(s)
            | Classification::Overflow { stack: s, .. }
            | Classification::Underflow { stack: s, .. } => Some(s),
            Classification::Unrelated => None,
        }
    }

    /// Whether the address is in a guard.
    pub const fn is_guard_hit(self) -> bool {
        matches!(
            self,
            Classification::Overflow { .. } | Classification::Underflow { .. }
        )
    }
}

impl StackInfo {
    /// Classifies `addr` against this stack alone.
    pub const fn classify(&self, id: StackId, addr: u64) -> Classification {
        let r = &self.range;
        if !r.contains_guarded(addr) {
            Classification::Unrelated
        } else if addr < r.bottom {
            Classification::Overflow {
                stack: id,
                bytes_past_limit: r.bottom - addr,
            }
        } else if addr < r.top {
            Classification::InStack(id)
        } else {
            Classification::Underflow {
                stack: id,
                bytes_past_limit: addr - r.top + 1,
            }
        }
    }

    /// How far RSP is below the bottom of the stack (0 if it is not).
    pub const fn rsp_below_bottom(&self, rsp: u64) -> u64 {
        self.range.bottom.saturating_sub(rsp)
    }

    /// How far RSP is above the top of the stack (0 if it is not; RSP equal
    /// to `top` is an empty stack, not an underflow).
    pub const fn rsp_above_top(&self, rsp: u64) -> u64 {
        rsp.saturating_sub(self.range.top)
    }
}

/// Why a registry operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackError {
    /// All entries are in use.
    RegistryFull,
    /// No free slot in the stack area.
    AreaExhausted,
    /// Size zero, not page aligned, or above `MAX_STACK_SIZE`.
    BadSize(u64),
    /// Name empty, too long or with characters other than `[A-Za-z0-9._-]`.
    BadName,
    /// Fixed range misaligned, out of order, or a guard under one page.
    BadRange,
    /// The guarded range overlaps an already registered stack.
    Overlap(StackId),
    /// Boot and stage2 stacks are registered at fixed places, not allocated.
    NotAllocatable(StackKind),
    /// The id does not name a registered stack.
    InvalidId(StackId),
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackError::RegistryFull => f.write_str("stack registry full"),
            StackError::AreaExhausted => f.write_str("stack area exhausted"),
            StackError::BadSize(s) => write!(
                f,
                "bad stack size {s:#x} (must be a non-zero multiple of {PAGE_SIZE:#x} up to {MAX_STACK_SIZE:#x})"
            ),
            StackError::BadName => f.write_str("bad stack name (1-32 chars of [A-Za-z0-9._-])"),
            StackError::BadRange => {
                f.write_str("bad stack range (page aligned, guard_lo < bottom < top < guard_hi)")
            }
            StackError::Overlap(id) => write!(f, "stack range overlaps stack #{}", id.0),
            StackError::NotAllocatable(k) => {
                write!(f, "{k} stacks have a fixed place and are only registered")
            }
            StackError::InvalidId(id) => write!(f, "no stack #{}", id.0),
        }
    }
}

/// Fixed-capacity stack registry and stack-area allocator.
///
/// Allocation is next-fit over slots 1.. with a cursor that only moves
/// forward: a freed slot is handed out again only after the cursor has
/// wrapped around the whole area (2 Mi slots), so a dangling pointer into a
/// freed stack faults instead of landing in a new stack.
pub struct StackRegistry<const N: usize = MAX_STACKS> {
    entries: [Option<StackInfo>; N],
    next_slot: u64,
}

impl<const N: usize> Default for StackRegistry<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> StackRegistry<N> {
    /// An empty registry (usable in a `static`).
    pub const fn new() -> Self {
        assert!(N <= u16::MAX as usize);
        StackRegistry {
            entries: [None; N],
            next_slot: 1,
        }
    }

    fn insert(&mut self, info: StackInfo) -> Result<StackId, StackError> {
        if !valid_name(info.name) {
            return Err(StackError::BadName);
        }
        if !info.range.is_valid() {
            return Err(StackError::BadRange);
        }
        if let Some(id) = self.overlapping(&info.range) {
            return Err(StackError::Overlap(id));
        }
        let free = self
            .entries
            .iter()
            .position(Option::is_none)
            .ok_or(StackError::RegistryFull)?;
        self.entries[free] = Some(info);
        Ok(StackId(free as u16))
    }

    fn overlapping(&self, range: &StackRange) -> Option<StackId> {
        self.iter()
            .find(|(_, info)| info.range.overlaps(range))
            .map(|(id, _)| id)
    }

    /// Registers a stack at a fixed place (stage2's, from the boot info, or
    /// any stack not allocated here). Its guarded range must not overlap a
    /// registered one; allocation will then avoid it.
    pub fn register_fixed(
        &mut self,
        kind: StackKind,
        owner: Owner,
        name: &'static str,
        range: StackRange,
    ) -> Result<StackId, StackError> {
        self.insert(StackInfo {
            kind,
            owner,
            name,
            range,
        })
    }

    /// Registers the boot stack at its fixed place in slot 0
    /// ([`BOOT_STACK_RANGE`]), as CPU 0's stack named `boot`.
    pub fn register_boot_stack(&mut self) -> Result<StackId, StackError> {
        self.register_fixed(StackKind::Boot, Owner::cpu(0), "boot", BOOT_STACK_RANGE)
    }

    /// Allocates a stack of the kind's default size. See [`Self::allocate_sized`].
    pub fn allocate(
        &mut self,
        kind: StackKind,
        owner: Owner,
        name: &'static str,
    ) -> Result<StackId, StackError> {
        match kind.default_size() {
            Some(size) => self.allocate_sized(kind, owner, name, size),
            None => Err(StackError::NotAllocatable(kind)),
        }
    }

    /// Allocates a slot for a stack of `size` bytes and registers it. The
    /// kernel then maps `range.bottom..range.top` (and only that) from
    /// [`Self::get`]; the guards must stay unmapped.
    pub fn allocate_sized(
        &mut self,
        kind: StackKind,
        owner: Owner,
        name: &'static str,
        size: u64,
    ) -> Result<StackId, StackError> {
        if !kind.is_allocatable() {
            return Err(StackError::NotAllocatable(kind));
        }
        if size == 0 || !size.is_multiple_of(PAGE_SIZE) || size > MAX_STACK_SIZE {
            return Err(StackError::BadSize(size));
        }
        if !valid_name(name) {
            return Err(StackError::BadName);
        }
        if self.entries.iter().all(Option::is_some) {
            return Err(StackError::RegistryFull);
        }
        // At most N slots are taken, so at most N + 1 candidates are tried.
        let usable = SLOT_COUNT - 1;
        for _ in 0..usable.min(N as u64 + 1) {
            let slot = self.next_slot;
            self.next_slot = if slot + 1 >= SLOT_COUNT { 1 } else { slot + 1 };
            let Some(range) = slot_layout(slot, size) else {
                continue;
            };
            if self.overlapping(&range).is_none() {
                return self.insert(StackInfo {
                    kind,
                    owner,
                    name,
                    range,
                });
            }
        }
        Err(StackError::AreaExhausted)
    }

    /// Removes a stack from the registry and returns its record. The kernel
    /// must have unmapped its pages (and flushed the TLB) before, since the
    /// range may eventually be handed out again.
    pub fn free(&mut self, id: StackId) -> Result<StackInfo, StackError> {
        self.entries
            .get_mut(usize::from(id.0))
            .and_then(Option::take)
            .ok_or(StackError::InvalidId(id))
    }

    /// The record of a registered stack.
    pub fn get(&self, id: StackId) -> Option<&StackInfo> {
        self.entries.get(usize::from(id.0))?.as_ref()
    }

    /// All registered stacks, by id.
    pub fn iter(&self) -> impl Iterator<Item = (StackId, &StackInfo)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|info| (StackId(i as u16), info)))
    }

    /// Number of registered stacks.
    pub fn len(&self) -> usize {
        self.entries.iter().filter(|e| e.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Classifies an address: inside a stack, in its lower guard (overflow),
    /// its upper guard (underflow), or unrelated. Guarded ranges never
    /// overlap, so at most one stack matches.
    pub fn classify(&self, addr: u64) -> Classification {
        self.iter()
            .map(|(id, info)| info.classify(id, addr))
            .find(|c| *c != Classification::Unrelated)
            .unwrap_or(Classification::Unrelated)
    }

    /// The stack (with its id) holding `addr` in the stack proper or a guard.
    pub fn find(&self, addr: u64) -> Option<(StackId, &StackInfo)> {
        self.iter()
            .find(|(_, info)| info.range.contains_guarded(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::IstKind;
    use crate::layout::*;
    use std::boxed::Box;
    use std::vec::Vec;

    fn reg() -> Box<StackRegistry<64>> {
        Box::new(StackRegistry::new())
    }

    #[test]
    fn boot_stack_and_first_allocations() {
        let mut r = reg();
        let boot = r.register_boot_stack().unwrap();
        assert_eq!(r.get(boot).unwrap().range, BOOT_STACK_RANGE);
        let df = r
            .allocate(StackKind::Ist(IstKind::DoubleFault), Owner::cpu(0), "df")
            .unwrap();
        let info = *r.get(df).unwrap();
        assert_eq!(info.range, slot_layout(1, IST_DF_STACK_SIZE).unwrap());
        let t = r
            .allocate(StackKind::Task, Owner::task(0, 3), "t3")
            .unwrap();
        assert_eq!(
            r.get(t).unwrap().range,
            slot_layout(2, TASK_STACK_SIZE).unwrap()
        );
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn kernel_registry_fits_its_bss_budget() {
        // docs/guards.md promises about 8 KiB for MAX_STACKS entries.
        assert!(core::mem::size_of::<StackRegistry>() <= 8 * 1024 + 64);
    }

    #[test]
    fn slot_zero_is_never_allocated_even_without_boot_registration() {
        let mut r = reg();
        let id = r.allocate(StackKind::Task, Owner::cpu(0), "t").unwrap();
        assert_eq!(slot_of(r.get(id).unwrap().range.guard_lo), Some(1));
    }

    #[test]
    fn rejects_bad_requests() {
        let mut r = reg();
        assert_eq!(
            r.allocate(StackKind::Boot, Owner::cpu(0), "b"),
            Err(StackError::NotAllocatable(StackKind::Boot))
        );
        assert_eq!(
            r.allocate(StackKind::Stage2, Owner::cpu(0), "s"),
            Err(StackError::NotAllocatable(StackKind::Stage2))
        );
        assert_eq!(
            r.allocate_sized(StackKind::Task, Owner::cpu(0), "t", 100),
            Err(StackError::BadSize(100))
        );
        assert_eq!(
            r.allocate_sized(
                StackKind::Task,
                Owner::cpu(0),
                "t",
                MAX_STACK_SIZE + PAGE_SIZE
            ),
            Err(StackError::BadSize(MAX_STACK_SIZE + PAGE_SIZE))
        );
        assert_eq!(
            r.allocate(StackKind::Task, Owner::cpu(0), "has space"),
            Err(StackError::BadName)
        );
        let boot = r.register_boot_stack().unwrap();
        assert_eq!(r.register_boot_stack(), Err(StackError::Overlap(boot)));
        let bad = StackRange {
            guard_lo: 0x1000,
            bottom: 0x1000,
            top: 0x2000,
            guard_hi: 0x3000,
        };
        assert_eq!(
            r.register_fixed(StackKind::Stage2, Owner::cpu(0), "stage2", bad),
            Err(StackError::BadRange)
        );
        assert!(!r.is_empty() && r.len() == 1);
        assert_eq!(r.free(StackId(7)), Err(StackError::InvalidId(StackId(7))));
        assert_eq!(
            r.free(StackId(9999)),
            Err(StackError::InvalidId(StackId(9999)))
        );
    }

    #[test]
    fn registry_full() {
        let mut r = Box::new(StackRegistry::<3>::new());
        for name in ["a", "b", "c"] {
            r.allocate(StackKind::Task, Owner::cpu(0), name).unwrap();
        }
        assert_eq!(
            r.allocate(StackKind::Task, Owner::cpu(0), "d"),
            Err(StackError::RegistryFull)
        );
        r.free(StackId(1)).unwrap();
        let id = r.allocate(StackKind::Task, Owner::cpu(0), "d").unwrap();
        assert_eq!(id, StackId(1));
        // The cursor moved on: the new stack is in slot 4, not freed slot 2.
        assert_eq!(slot_of(r.get(id).unwrap().range.bottom), Some(4));
    }

    #[test]
    fn freed_slot_reused_only_after_wrap() {
        let mut r = reg();
        let a = r.allocate(StackKind::Task, Owner::cpu(0), "a").unwrap();
        let a_range = r.free(a).unwrap().range;
        let b = r.allocate(StackKind::Task, Owner::cpu(0), "b").unwrap();
        assert_ne!(r.get(b).unwrap().range, a_range);
        // Move the cursor to the last slot; the next allocation wraps to 1.
        r.free(b).unwrap();
        r.next_slot = SLOT_COUNT - 1;
        let c = r.allocate(StackKind::Task, Owner::cpu(0), "c").unwrap();
        assert_eq!(
            slot_of(r.get(c).unwrap().range.bottom),
            Some(SLOT_COUNT - 1)
        );
        let d = r.allocate(StackKind::Task, Owner::cpu(0), "d").unwrap();
        assert_eq!(r.get(d).unwrap().range, a_range);
    }

    #[test]
    fn allocation_skips_fixed_ranges_in_the_area() {
        let mut r = reg();
        let fixed = slot_layout(1, TASK_STACK_SIZE).unwrap();
        let f = r
            .register_fixed(StackKind::Task, Owner::cpu(1), "fixed", fixed)
            .unwrap();
        let a = r.allocate(StackKind::Task, Owner::cpu(0), "a").unwrap();
        assert_eq!(slot_of(r.get(a).unwrap().range.bottom), Some(2));
        assert_eq!(r.classify(fixed.bottom), Classification::InStack(f));
    }

    fn check_edges(r: &StackRegistry<64>, id: StackId) {
        let g = r.get(id).unwrap().range;
        let ov = |n| Classification::Overflow {
            stack: id,
            bytes_past_limit: n,
        };
        let un = |n| Classification::Underflow {
            stack: id,
            bytes_past_limit: n,
        };
        // Just outside the guarded range: never this stack (unrelated or a neighbour).
        assert_ne!(r.classify(g.guard_lo - 1).stack(), Some(id));
        assert_ne!(r.classify(g.guard_hi).stack(), Some(id));
        assert_eq!(r.classify(g.guard_lo), ov(g.bottom - g.guard_lo));
        assert_eq!(r.classify(g.bottom - 1), ov(1));
        assert_eq!(r.classify(g.bottom), Classification::InStack(id));
        assert_eq!(r.classify(g.top - 1), Classification::InStack(id));
        assert_eq!(r.classify(g.top), un(1));
        assert_eq!(r.classify(g.top + 8), un(9));
        assert_eq!(r.classify(g.guard_hi - 1), un(g.guard_hi - g.top));
    }

    #[test]
    fn classification_edges() {
        let mut r = reg();
        let boot = r.register_boot_stack().unwrap();
        let pf = r
            .allocate(StackKind::Ist(IstKind::PageFault), Owner::cpu(0), "pf")
            .unwrap();
        let stage2 = StackRange {
            guard_lo: 0x10_4000,
            bottom: 0x10_8000,
            top: 0x10_c000,
            guard_hi: 0x11_0000,
        };
        let s2 = r
            .register_fixed(StackKind::Stage2, Owner::cpu(0), "stage2", stage2)
            .unwrap();
        for id in [boot, pf, s2] {
            check_edges(&r, id);
        }
        // Exact numbers for the boot stack.
        assert_eq!(r.classify(STACK_AREA_BASE - 1), Classification::Unrelated);
        assert_eq!(
            r.classify(STACK_AREA_BASE),
            Classification::Overflow {
                stack: boot,
                bytes_past_limit: GUARD_SIZE
            }
        );
        assert_eq!(
            r.classify(BOOT_STACK_BOTTOM - 8),
            Classification::Overflow {
                stack: boot,
                bytes_past_limit: 8
            }
        );
        // The boot slot's upper guard touches slot 1's lower guard.
        assert_eq!(
            r.classify(STACK_AREA_BASE + SLOT_SIZE - 1),
            Classification::Underflow {
                stack: boot,
                bytes_past_limit: SLOT_SIZE - GUARD_SIZE - BOOT_STACK_SIZE
            }
        );
        assert_eq!(
            r.classify(STACK_AREA_BASE + SLOT_SIZE),
            Classification::Overflow {
                stack: pf,
                bytes_past_limit: SLOT_SIZE - GUARD_SIZE - IST_PF_STACK_SIZE
            }
        );
        // stage2: 16 KiB guards.
        assert_eq!(
            r.classify(0x10_7ff8),
            Classification::Overflow {
                stack: s2,
                bytes_past_limit: 8
            }
        );
        assert_eq!(r.classify(0x10_3fff), Classification::Unrelated);
        assert_eq!(r.classify(0x11_0000), Classification::Unrelated);
        assert_eq!(r.find(0x10_a000).map(|(id, _)| id), Some(s2));
        assert!(r.classify(0x10_c000).is_guard_hit());
        assert_eq!(r.classify(0x10_c000).stack(), Some(s2));
        // After freeing, the range is unrelated.
        r.free(pf).unwrap();
        assert_eq!(
            r.classify(STACK_AREA_BASE + SLOT_SIZE),
            Classification::Unrelated
        );
    }

    #[test]
    fn rsp_distances() {
        let info = StackInfo {
            kind: StackKind::Task,
            owner: Owner::task(1, 2),
            name: "t",
            range: slot_layout(3, TASK_STACK_SIZE).unwrap(),
        };
        let r = info.range;
        assert_eq!(info.rsp_below_bottom(r.bottom - 0x40), 0x40);
        assert_eq!(info.rsp_below_bottom(r.bottom), 0);
        assert_eq!(info.rsp_below_bottom(r.top), 0);
        assert_eq!(info.rsp_above_top(r.top), 0);
        assert_eq!(info.rsp_above_top(r.top + 16), 16);
        assert_eq!(info.rsp_above_top(r.bottom), 0);
    }

    // The shared seeded PRNG of the host tests.
    use svsm_testkit::Rng;

    /// Brute-force oracle: classify `addr` from the list of live stacks.
    fn oracle(live: &[(StackId, StackRange)], addr: u64) -> Classification {
        let hits: Vec<_> = live
            .iter()
            .filter(|(_, g)| g.contains_guarded(addr))
            .collect();
        assert!(
            hits.len() <= 1,
            "address {addr:#x} in {} guarded ranges",
            hits.len()
        );
        match hits.first() {
            None => Classification::Unrelated,
            Some((id, g)) if addr < g.bottom => Classification::Overflow {
                stack: *id,
                bytes_past_limit: g.bottom - addr,
            },
            Some((id, g)) if addr >= g.top => Classification::Underflow {
                stack: *id,
                bytes_past_limit: addr - g.top + 1,
            },
            Some((id, _)) => Classification::InStack(*id),
        }
    }

    #[test]
    fn property_random_allocation_sequences() {
        const KINDS: [StackKind; 6] = [
            StackKind::PerCpu,
            StackKind::Ist(IstKind::DoubleFault),
            StackKind::Ist(IstKind::PageFault),
            StackKind::Ist(IstKind::Nmi),
            StackKind::Task,
            StackKind::Shadow,
        ];
        let mut checked = 0u64;
        for seed in 0..200u64 {
            let mut rng = Rng::new(seed);
            let mut r = reg();
            if seed % 2 == 0 {
                r.register_boot_stack().unwrap();
            }
            // Occasionally start near the end of the area to exercise wrap.
            if seed % 5 == 0 {
                r.next_slot = SLOT_COUNT - 1 - rng.below(40);
            }
            for _ in 0..300 {
                let live: Vec<StackId> = r.iter().map(|(id, _)| id).collect();
                if !live.is_empty() && rng.below(3) == 0 {
                    let id = live[rng.below(live.len() as u64) as usize];
                    let info = r.free(id).unwrap();
                    assert_eq!(r.classify(info.range.bottom), Classification::Unrelated);
                } else {
                    let kind = KINDS[rng.below(KINDS.len() as u64) as usize];
                    let res = if rng.below(4) == 0 {
                        let size = (1 + rng.below(MAX_STACK_SIZE / PAGE_SIZE)) * PAGE_SIZE;
                        r.allocate_sized(kind, Owner::cpu(rng.below(8) as u32), "rnd", size)
                    } else {
                        r.allocate(kind, Owner::cpu(0), "dflt")
                    };
                    match res {
                        Ok(id) => {
                            let g = r.get(id).unwrap().range;
                            assert!(g.is_valid());
                            assert!(g.lower_guard_size() >= GUARD_SIZE);
                            assert!(g.upper_guard_size() >= GUARD_SIZE);
                            assert!(g.guard_lo >= STACK_AREA_BASE + SLOT_SIZE);
                            assert!(g.guard_hi <= STACK_AREA_END);
                        }
                        Err(StackError::RegistryFull) => assert_eq!(r.len(), 64),
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
                let live: Vec<(StackId, StackRange)> =
                    r.iter().map(|(id, info)| (id, info.range)).collect();
                for (i, (_, a)) in live.iter().enumerate() {
                    for (_, b) in &live[i + 1..] {
                        assert!(!a.overlaps(b), "{a:x?} overlaps {b:x?}");
                    }
                }
                // Edges of every live stack, plus random addresses near them.
                for (_, g) in &live {
                    let mut probes = [
                        g.guard_lo.wrapping_sub(1),
                        g.guard_lo,
                        g.bottom - 1,
                        g.bottom,
                        g.top - 1,
                        g.top,
                        g.guard_hi - 1,
                        g.guard_hi,
                        0,
                    ];
                    probes[8] = g.guard_lo + rng.below(g.guard_hi - g.guard_lo + PAGE_SIZE);
                    for a in probes {
                        assert_eq!(r.classify(a), oracle(&live, a), "addr {a:#x}");
                        checked += 1;
                    }
                }
                let a = STACK_AREA_BASE + rng.below(4 << 20);
                assert_eq!(r.classify(a), oracle(&live, a));
            }
        }
        assert!(checked > 100_000, "only {checked} probes");
    }
}
