//! GDT and TSS. One GDT+TSS pair per CPU, living in the per-CPU area.

use core::arch::asm;
use core::mem::size_of;

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
pub const TSS_SEL: u16 = 0x18;

/// IST slots (1-based in the IDT, 0-based in `Tss::ist`).
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_PAGE_FAULT: u8 = 2;
pub const IST_NMI: u8 = 3;
pub const IST_MACHINE_CHECK: u8 = 4;

#[repr(C, packed(4))]
#[derive(Default)]
pub struct Tss {
    _reserved0: u32,
    pub rsp: [u64; 3],
    _reserved1: u64,
    pub ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    pub iomap_base: u16,
}

/// Descriptors have the accessed bit preset (KVM otherwise tries to write it).
const CODE64: u64 = 0x00af_9b00_0000_ffff;
const DATA: u64 = 0x00cf_9300_0000_ffff;

#[repr(C, align(16))]
pub struct Gdt {
    entries: [u64; 5],
}

impl Gdt {
    pub const fn new() -> Self {
        Self {
            entries: [0, CODE64, DATA, 0, 0],
        }
    }

    fn set_tss(&mut self, tss: &Tss) {
        let base = tss as *const Tss as u64;
        let limit = (size_of::<Tss>() - 1) as u64;
        let low = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89u64 << 40) // present, 64-bit available TSS
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        self.entries[3] = low;
        self.entries[4] = base >> 32;
    }

    /// Loads this GDT and the TSS, and reloads the segment registers.
    pub fn load(&'static mut self, tss: &'static Tss) {
        self.set_tss(tss);
        let ptr = super::DescriptorTablePointer::of(self);
        // SAFETY: the GDT and TSS are 'static; the selectors name valid
        // descriptors in it; the far return reloads CS with the code selector.
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
}

impl Default for Gdt {
    fn default() -> Self {
        Self::new()
    }
}
