//! Descriptor-table loads: LGDT with the segment-register reload and LTR,
//! and LIDT.

use core::arch::asm;
use svsm_defs::desc::{DescriptorTablePointer, KERNEL_CS, KERNEL_DS, TSS_SEL};

/// Loads the GDT `gdt`, reloads CS/DS/ES/SS with the kernel selectors and
/// loads the task register with `TSS_SEL`.
///
/// # Safety
/// `gdt` stays alive and unmoved while loaded (it is `'static`), holds a
/// flat 64-bit code descriptor at `KERNEL_CS`, a data descriptor at
/// `KERNEL_DS` and an available TSS descriptor at `TSS_SEL` whose TSS is
/// `'static` too; every IST entry of that TSS is 0 or the top of a mapped
/// stack.
pub unsafe fn load_gdt<T>(gdt: &'static T) {
    let ptr = DescriptorTablePointer::of(gdt);
    // SAFETY: the caller's obligations; the far return reloads CS with the
    // code selector, the data selectors name the data descriptor.
    unsafe {
        asm!(
            "lgdt [{ptr}]",
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov ss, {ds:x}",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "ltr {tss:x}",
            ptr = in(reg) &ptr,
            ds = in(reg) KERNEL_DS as u64,
            cs = in(reg) KERNEL_CS as u64,
            tss = in(reg) TSS_SEL as u64,
            tmp = out(reg) _,
        )
    };
}

/// Loads the IDT `idt`.
///
/// # Safety
/// `idt` is `'static`, and every present gate points at an entry stub that
/// handles its vector, with a code selector and IST slot valid in the loaded
/// GDT and TSS.
pub unsafe fn load_idt<T>(idt: &'static T) {
    let ptr = DescriptorTablePointer::of(idt);
    // SAFETY: the caller's obligations.
    unsafe { asm!("lidt [{}]", in(reg) &ptr, options(nostack, preserves_flags)) };
}
