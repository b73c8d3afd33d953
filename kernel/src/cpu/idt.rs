//! The IDT: one interrupt gate per exception vector, each pointing at its
//! entry stub in `arch::entry`. The early IDT runs every vector on the
//! interrupted stack (before the IST stacks exist); the full IDT sends #DF,
//! #PF, NMI, #MC and #VC to their IST stacks.

use crate::arch::entry::stub_address;
use spin::Once;
use svsm_defs::desc::Gate;
use svsm_kernel::vectors::{NUM_VECTORS, gates};

#[repr(C, align(16))]
struct Idt {
    gates: [Gate; NUM_VECTORS],
}

static EARLY_IDT: Once<Idt> = Once::new();
static IDT: Once<Idt> = Once::new();

/// Loads the early IDT (no IST stacks) on this CPU.
///
/// # Safety
/// The kernel GDT (with `KERNEL_CS`) is loaded on this CPU.
pub unsafe fn load_early() {
    let idt = EARLY_IDT.call_once(|| Idt {
        gates: gates(stub_address, false),
    });
    // SAFETY: the IDT is 'static, every gate points at the entry stub of its
    // vector on the interrupted stack; the caller loaded the GDT.
    unsafe { crate::arch::desc::load_idt(idt) };
}

/// Loads the full IDT on this CPU.
///
/// # Safety
/// The kernel GDT is loaded and the TSS's IST slots for NMI, #DF, #PF, #MC
/// and #VC hold the tops of mapped IST stacks.
pub unsafe fn load() {
    let idt = IDT.call_once(|| Idt {
        gates: gates(stub_address, true),
    });
    // SAFETY: the IDT is 'static, every gate points at the entry stub of its
    // vector; the caller loaded the GDT and the IST stacks.
    unsafe { crate::arch::desc::load_idt(idt) };
}
