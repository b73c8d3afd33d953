//! The IDT: one interrupt gate per exception vector, each pointing at its
//! entry stub in `exceptions`, with IST stacks for #DF, #PF, NMI and #MC.

use super::gdt::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, IST_PAGE_FAULT, KERNEL_CS};
use core::arch::asm;
use spin::Once;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    fn interrupt(handler: u64, ist: u8) -> Self {
        Self {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist,
            type_attr: 0x8e, // present, DPL0, 64-bit interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

pub const NUM_VECTORS: usize = 32;

#[repr(C, align(16))]
struct Idt {
    gates: [Gate; NUM_VECTORS],
}

static IDT: Once<Idt> = Once::new();

/// Which IST slot a vector uses (0 = the interrupted stack).
pub fn ist_for_vector(vector: usize) -> u8 {
    match vector {
        2 => IST_NMI,
        8 => IST_DOUBLE_FAULT,
        14 => IST_PAGE_FAULT,
        18 => IST_MACHINE_CHECK,
        _ => 0,
    }
}

/// Builds the IDT once and loads it on this CPU.
pub fn load() {
    let idt = IDT.call_once(|| {
        let mut gates = [Gate::default(); NUM_VECTORS];
        for (v, gate) in gates.iter_mut().enumerate() {
            *gate = Gate::interrupt(super::exceptions::stub_address(v), ist_for_vector(v));
        }
        Idt { gates }
    });
    let ptr = super::DescriptorTablePointer::of(idt);
    // SAFETY: the IDT is 'static and every gate points at a valid entry stub.
    unsafe { asm!("lidt [{}]", in(reg) &ptr, options(nostack, preserves_flags)) };
}
