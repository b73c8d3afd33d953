//! Segment descriptors, the TSS and its descriptor, IDT gates and the
//! `lgdt`/`lidt` operand (AMD APM vol. 2, sections 4.7-4.8 and 8.9, 12.2.5).
//!
//! One definition of the flat 64-bit GDT: igvm-build's boot GDT (loaded by
//! the VP context), the reset ROM of the QEMU adapter and the kernel's own
//! GDT all take their descriptors from here.

/// Access byte bits (descriptor bits 40..47).
pub mod access {
    /// Accessed. Preset in every descriptor: KVM would otherwise try to set
    /// it, which fails for descriptors in read-only memory (a ROM).
    pub const ACCESSED: u8 = 1 << 0;
    /// Code: readable; data: writable.
    pub const RW: u8 = 1 << 1;
    /// Code segment (executable).
    pub const EXECUTABLE: u8 = 1 << 3;
    /// Code or data (not a system descriptor).
    pub const CODE_DATA: u8 = 1 << 4;
    /// Present.
    pub const PRESENT: u8 = 1 << 7;
    /// System descriptor type: available 64-bit TSS.
    pub const TSS64_AVAILABLE: u8 = 0x9;
    /// System descriptor type: 64-bit interrupt gate.
    pub const INTERRUPT_GATE64: u8 = 0xe;
}

/// Flag nibble (descriptor bits 52..55).
pub mod flags {
    /// 64-bit code segment.
    pub const LONG: u8 = 1 << 1;
    /// Default operand size 32 bits (D/B).
    pub const SIZE32: u8 = 1 << 2;
    /// Limit counted in 4 KiB units.
    pub const GRANULARITY: u8 = 1 << 3;
}

/// An 8-byte code or data segment descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct SegmentDescriptor(u64);

impl SegmentDescriptor {
    pub const NULL: Self = Self(0);
    /// Flat 64-bit code, DPL 0, readable, accessed.
    pub const CODE64: Self = Self::new(
        0,
        0xf_ffff,
        access::PRESENT | access::CODE_DATA | access::EXECUTABLE | access::RW | access::ACCESSED,
        flags::GRANULARITY | flags::LONG,
    );
    /// Flat 32-bit code (4 GiB), DPL 0, readable, accessed.
    pub const CODE32: Self = Self::new(
        0,
        0xf_ffff,
        access::PRESENT | access::CODE_DATA | access::EXECUTABLE | access::RW | access::ACCESSED,
        flags::GRANULARITY | flags::SIZE32,
    );
    /// Flat data (4 GiB), DPL 0, writable, accessed.
    pub const DATA: Self = Self::new(
        0,
        0xf_ffff,
        access::PRESENT | access::CODE_DATA | access::RW | access::ACCESSED,
        flags::GRANULARITY | flags::SIZE32,
    );

    /// Encodes a descriptor from its base, 20-bit limit, access byte and flag nibble.
    pub const fn new(base: u32, limit: u32, access: u8, flags: u8) -> Self {
        let base = base as u64;
        let limit = limit as u64;
        Self(
            (limit & 0xffff)
                | ((base & 0xff_ffff) << 16)
                | ((access as u64) << 40)
                | (((limit >> 16) & 0xf) << 48)
                | (((flags as u64) & 0xf) << 52)
                | (((base >> 24) & 0xff) << 56),
        )
    }

    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    pub const fn bits(self) -> u64 {
        self.0
    }

    pub const fn access(self) -> u8 {
        (self.0 >> 40) as u8
    }

    pub const fn flags(self) -> u8 {
        ((self.0 >> 52) & 0xf) as u8
    }

    pub const fn base(self) -> u32 {
        (((self.0 >> 16) & 0xff_ffff) | (((self.0 >> 56) & 0xff) << 24)) as u32
    }

    pub const fn limit(self) -> u32 {
        ((self.0 & 0xffff) | (((self.0 >> 48) & 0xf) << 16)) as u32
    }

    /// The segment attributes as a VP context (IGVM / Hyper-V register
    /// layout) holds them: access byte in bits 0..7, flags in bits 12..15.
    pub const fn vp_context_attributes(self) -> u16 {
        self.access() as u16 | ((self.flags() as u16) << 12)
    }

    /// The segment attributes as the VMCB/VMSA holds them: access byte in
    /// bits 0..7, flags in bits 8..11.
    pub const fn vmcb_attributes(self) -> u16 {
        self.access() as u16 | ((self.flags() as u16) << 8)
    }
}

/// Selectors of the kernel GDT; the boot GDT is its first three entries.
pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
/// The TSS descriptor (two slots: 0x18 and 0x20).
pub const TSS_SEL: u16 = 0x18;

/// The GDT the VP context loads before the kernel runs: null, code, data.
pub const BOOT_GDT: [SegmentDescriptor; 3] = [
    SegmentDescriptor::NULL,
    SegmentDescriptor::CODE64,
    SegmentDescriptor::DATA,
];

/// The 64-bit task-state segment (AMD APM vol. 2, figure 12-8).
#[repr(C, packed(4))]
#[derive(Clone, Copy, Debug, Default)]
pub struct Tss {
    _reserved0: u32,
    /// Stack pointers for privilege levels 0-2.
    pub rsp: [u64; 3],
    _reserved1: u64,
    /// Interrupt stack table: IST slot n (1-based in a gate) is `ist[n - 1]`.
    pub ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    /// Offset of the I/O permission bitmap; `size_of::<Tss>()` means none.
    pub iomap_base: u16,
}

impl Tss {
    /// An empty TSS without an I/O permission bitmap.
    pub const fn new() -> Self {
        Self {
            _reserved0: 0,
            rsp: [0; 3],
            _reserved1: 0,
            ist: [0; 7],
            _reserved2: 0,
            _reserved3: 0,
            iomap_base: core::mem::size_of::<Tss>() as u16,
        }
    }
}

/// The 16-byte system descriptor of a TSS at `base` (two GDT slots).
pub const fn tss_descriptor(base: u64) -> [u64; 2] {
    let limit = (core::mem::size_of::<Tss>() - 1) as u64;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (((access::PRESENT | access::TSS64_AVAILABLE) as u64) << 40)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [low, base >> 32]
}

/// A 16-byte IDT gate descriptor (AMD APM vol. 2, figure 4-24).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    /// A present, DPL 0, 64-bit interrupt gate to `handler` through code
    /// selector `selector`, on IST slot `ist` (0: the interrupted stack).
    pub const fn interrupt(handler: u64, selector: u16, ist: u8) -> Self {
        Self {
            offset_low: handler as u16,
            selector,
            ist: ist & 0x7,
            type_attr: access::PRESENT | access::INTERRUPT_GATE64,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }

    pub const fn handler(&self) -> u64 {
        self.offset_low as u64
            | ((self.offset_mid as u64) << 16)
            | ((self.offset_high as u64) << 32)
    }

    pub const fn ist(&self) -> u8 {
        self.ist
    }

    pub const fn selector(&self) -> u16 {
        self.selector
    }

    pub const fn is_present(&self) -> bool {
        self.type_attr & access::PRESENT != 0
    }
}

/// The operand of `lgdt`/`lidt`: limit and linear base of a table.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug)]
pub struct DescriptorTablePointer {
    pub limit: u16,
    pub base: u64,
}

impl DescriptorTablePointer {
    /// Describes the table `t` (base and limit from its address and size).
    pub fn of<T>(t: &T) -> Self {
        Self {
            limit: (core::mem::size_of::<T>() - 1) as u16,
            base: core::ptr::from_ref(t) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_descriptors_have_the_architectural_encoding() {
        // Values from the AMD APM descriptor formats, as every x86-64 kernel writes them.
        assert_eq!(SegmentDescriptor::CODE64.bits(), 0x00af_9b00_0000_ffff);
        assert_eq!(SegmentDescriptor::CODE32.bits(), 0x00cf_9b00_0000_ffff);
        assert_eq!(SegmentDescriptor::DATA.bits(), 0x00cf_9300_0000_ffff);
        assert_eq!(SegmentDescriptor::CODE64.vp_context_attributes(), 0xa09b);
        assert_eq!(SegmentDescriptor::DATA.vp_context_attributes(), 0xc093);
        assert_eq!(SegmentDescriptor::CODE64.vmcb_attributes(), 0xa9b);
    }

    #[test]
    fn descriptor_fields_round_trip() {
        let d = SegmentDescriptor::new(0x1234_5678, 0xa_bcde, 0x93, 0x4);
        assert_eq!(d.base(), 0x1234_5678);
        assert_eq!(d.limit(), 0xa_bcde);
        assert_eq!(d.access(), 0x93);
        assert_eq!(d.flags(), 0x4);
        assert_eq!(SegmentDescriptor::from_bits(d.bits()), d);
    }

    #[test]
    fn tss_layout_and_descriptor() {
        assert_eq!(core::mem::size_of::<Tss>(), 104);
        assert_eq!(core::mem::offset_of!(Tss, rsp), 4);
        assert_eq!(core::mem::offset_of!(Tss, ist), 36);
        assert_eq!(core::mem::offset_of!(Tss, iomap_base), 102);
        assert_eq!({ Tss::new().iomap_base }, 104);
        let [lo, hi] = tss_descriptor(0xffff_ffff_8123_4567);
        assert_eq!(lo & 0xffff, 103, "limit");
        assert_eq!((lo >> 40) & 0xff, 0x89, "present, available 64-bit TSS");
        assert_eq!((lo >> 16) & 0xff_ffff, 0x23_4567);
        assert_eq!(lo >> 56, 0x81);
        assert_eq!(hi, 0xffff_ffff);
    }

    #[test]
    fn interrupt_gate_encoding() {
        assert_eq!(core::mem::size_of::<Gate>(), 16);
        let g = Gate::interrupt(0xffff_ffff_8012_3456, KERNEL_CS, 2);
        assert_eq!(g.handler(), 0xffff_ffff_8012_3456);
        assert_eq!(g.ist(), 2);
        assert_eq!(g.selector(), 0x08);
        assert!(g.is_present());
        assert_eq!(g.type_attr, 0x8e);
        assert!(!Gate::default().is_present());
        // Bytes as the CPU reads them.
        assert_eq!(g.offset_low, 0x3456);
        assert_eq!(g.offset_mid, 0x8012);
        assert_eq!(g.offset_high, 0xffff_ffff);
    }

    #[test]
    fn table_pointer_describes_the_table() {
        let table = [0u64; 5];
        let p = DescriptorTablePointer::of(&table);
        assert_eq!({ p.limit }, 39);
        assert_eq!({ p.base }, table.as_ptr() as u64);
        assert_eq!(core::mem::size_of::<DescriptorTablePointer>(), 10);
    }
}
