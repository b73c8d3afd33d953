//! The GDT and TSS of a CPU: the flat kernel code and data descriptors
//! (from `svsm-defs`) and the TSS descriptor with the IST stacks.

use core::cell::UnsafeCell;
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

/// The boot CPU's GDT and TSS.
struct Tables {
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
    let tss_base = core::ptr::from_ref(&t.tss) as u64;
    t.gdt.set_tss(tss_base);
    let gdt: &'static Gdt = &t.gdt;
    // SAFETY: the GDT and TSS are 'static; the GDT holds the flat code and
    // data descriptors at KERNEL_CS / KERNEL_DS and the TSS at TSS_SEL; the
    // TSS's IST slots are all 0 (no gate names one yet).
    unsafe { crate::arch::desc::load_gdt(gdt) };
}

/// Points IST slot `slot` (1-based) of CPU 0 at `top`; returns the old value.
///
/// # Safety
/// `top` is the top of a mapped stack reserved for the slot's vectors, or
/// the caller means the next exception on that slot to fail its delivery.
pub unsafe fn set_ist(slot: u8, top: u64) -> u64 {
    let ist = (slot as usize).checked_sub(1).filter(|&i| i < 7);
    let Some(i) = ist else { return 0 };
    // SAFETY: single CPU; the CPU reads the TSS only at exception entry,
    // and an aligned 8-byte store is atomic with respect to that.
    let tss = unsafe { &mut (*BSP_TABLES.0.get()).tss };
    let old = tss.ist[i];
    tss.ist[i] = top;
    old
}
