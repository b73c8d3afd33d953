//! The GDT and TSS of a CPU: the flat kernel code and data descriptors
//! (from `svsm-defs`) and the TSS descriptor with the IST stacks.

use core::cell::UnsafeCell;
use core::sync::atomic::Ordering;
use svsm_defs::desc::{SegmentDescriptor, Tss, tss_descriptor};

pub use svsm_defs::desc::{KERNEL_CS, KERNEL_DS, TSS_SEL};

#[repr(C, align(16))]
pub struct Gdt {
    entries: [u64; 5],
}

impl Gdt {
    pub const fn new() -> Self {
        Self {
            entries: [
                SegmentDescriptor::NULL.bits(),
                SegmentDescriptor::CODE64.bits(),
                SegmentDescriptor::DATA.bits(),
                0,
                0,
            ],
        }
    }

    /// Points the TSS descriptor (`TSS_SEL`) at the TSS at `tss_base`.
    fn set_tss(&mut self, tss_base: u64) {
        let [lo, hi] = tss_descriptor(tss_base);
        self.entries[(TSS_SEL / 8) as usize] = lo;
        self.entries[(TSS_SEL / 8) as usize + 1] = hi;
    }
}

impl Default for Gdt {
    fn default() -> Self {
        Self::new()
    }
}

// The selectors index the entries above.
const _: () = {
    assert!(KERNEL_CS == 8 && KERNEL_DS == 16 && TSS_SEL == 24);
};

/// A CPU's GDT and TSS (the boot CPU's are static, an AP's are allocated
/// once and never freed). `PerCpu::tables` points at them.
pub struct Tables {
    gdt: Gdt,
    tss: Tss,
}

struct TablesCell(UnsafeCell<Tables>);
// SAFETY: only CPU 0 touches its tables: once in `load_bsp`, then only the
// IST slot stores of `set_ist`.
unsafe impl Sync for TablesCell {}

static BSP_TABLES: TablesCell = TablesCell(UnsafeCell::new(Tables {
    gdt: Gdt::new(),
    tss: Tss::new(),
}));

/// Loads the boot CPU's GDT and TSS (its IST slots still empty: `set_ist`
/// fills them once the IST stacks exist).
///
/// # Safety
/// Runs once, on CPU 0, before anything else uses its tables.
pub unsafe fn load_bsp() {
    // SAFETY: first and only mutable use of the GDT (the caller's obligation).
    let t: &'static mut Tables = unsafe { &mut *BSP_TABLES.0.get() };
    // SAFETY: the tables are CPU 0's, 'static, and not yet loaded.
    unsafe { load(0, t) };
}

/// Points `t`'s TSS descriptor at its TSS, records `t` as CPU `cpu`'s tables
/// and loads them on this CPU.
///
/// # Safety
/// `t` belongs to CPU `cpu`, which is this CPU; every non-zero IST slot of
/// its TSS is the top of a mapped stack reserved for that slot.
unsafe fn load(cpu: usize, t: &'static mut Tables) {
    let tss_base = core::ptr::from_ref(&t.tss) as u64;
    t.gdt.set_tss(tss_base);
    super::percpu::cpu(cpu)
        .tables
        .store(core::ptr::from_mut(t) as u64, Ordering::Release);
    let gdt: &'static Gdt = &t.gdt;
    // SAFETY: the GDT and TSS are 'static; the GDT holds the flat code and
    // data descriptors at KERNEL_CS / KERNEL_DS and the TSS at TSS_SEL; the
    // TSS's IST slots are 0 or name mapped stacks (the caller's obligation).
    unsafe { crate::arch::desc::load_gdt(gdt) };
}

/// Builds an AP's tables, with its IST stacks (slot, top) already in its
/// TSS; `load_ap` loads them on the AP.
pub fn prepare_ap(ist: &[(u8, u64)]) -> &'static mut Tables {
    let t = alloc::boxed::Box::leak(alloc::boxed::Box::new(Tables {
        gdt: Gdt::new(),
        tss: Tss::new(),
    }));
    for &(slot, top) in ist {
        if let Some(i) = (slot as usize).checked_sub(1).filter(|&i| i < 7) {
            t.tss.ist[i] = top;
        }
    }
    t
}

/// Loads AP `cpu`'s tables (from `prepare_ap`) on this CPU.
///
/// # Safety
/// This CPU is AP `cpu`, `t` came from `prepare_ap` for it with the tops of
/// mapped IST stacks reserved for it, and no other CPU uses `t`.
pub unsafe fn load_ap(cpu: usize, t: &'static mut Tables) {
    // SAFETY: the caller's obligations.
    unsafe { load(cpu, t) };
}

/// Points IST slot `slot` (1-based) of this CPU at `top`; returns the old value.
///
/// # Safety
/// `top` is the top of a mapped stack reserved for the slot's vectors, or
/// the caller means the next exception on that slot to fail its delivery.
pub unsafe fn set_ist(slot: u8, top: u64) -> u64 {
    let ist = (slot as usize).checked_sub(1).filter(|&i| i < 7);
    let Some(i) = ist else { return 0 };
    let t = super::percpu::this_cpu().tables.load(Ordering::Acquire) as *mut Tables;
    if t.is_null() {
        return 0;
    }
    // SAFETY: `t` is this CPU's tables ('static, used by this CPU only);
    // the CPU reads the TSS only at exception entry, and an aligned 8-byte
    // store is atomic with respect to that.
    let tss = unsafe { &mut (*t).tss };
    let old = tss.ist[i];
    tss.ist[i] = top;
    old
}
