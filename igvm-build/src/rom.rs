//! Reset-vector ROM generator: turns an IGVM native VP context
//! (`IgvmNativeVpContextX64`) into a `-bios` image for a QEMU without IGVM
//! support.
//!
//! The ROM is 64 KiB and QEMU maps it at `ROM_BASE..4 GiB`. Its layout:
//!
//! ```text
//! 0x0000  ROM GDT: null, flat code32 (0x08), flat data32 (0x10), code64 (0x18)
//! 0x0020  ROM GDT pseudo-descriptor (limit u16, base u32) for `o32 lgdt`
//! 0x0030  target GDTR pseudo-descriptor (limit u16, base u64) from the context
//! 0x0040  target IDTR pseudo-descriptor
//! 0x0050  iretq frame: RIP, CS, RFLAGS, RSP, SS
//! 0x0100  the VP context itself, verbatim (GPRs and gs_base are loaded from it)
//! 0x1000  32-bit code: CR4, CR3, EFER, CR0 (paging on), far jump to code64
//! 0x2000  64-bit code: GDTR/IDTR, data segments, gs_base, final CR4/CR0,
//!         GPRs, iretq
//! 0xF000  16-bit code: cli, o32 lgdt, CR0.PE, o32 far jump to code32
//! 0xFFF0  reset vector: near jump to 0xF000
//! ```
//!
//! Hand-off requirement: once CR0.PG is set the CPU runs on the context's
//! page tables, so they must identity-map the ROM pages that run after that
//! point (see [`hand_off_pages`]) present and executable. igvm-build's page
//! builder maps `ROM_WINDOW_START..ROM_WINDOW_END` that way;
//! [`check_hand_off_mapping`] verifies it for any file before booting.

use iced_x86::code_asm::*;
use iced_x86::{Code, Instruction, MemoryOperand, Register};
use igvm_defs::IgvmNativeVpContextX64;
use std::fmt;
use std::mem::offset_of;
use svsm_bootdefs::layout::{ROM_WINDOW_END, ROM_WINDOW_START};
use svsm_defs::cr::{Cr0, Cr4, Efer, RFlags};
use svsm_defs::desc::SegmentDescriptor;
use svsm_defs::msr;
use zerocopy::IntoBytes;

/// Size of the generated ROM (QEMU requires a multiple of 64 KiB).
pub const ROM_SIZE: usize = 64 * 1024;
/// Guest-physical (and, after the hand-off, virtual) base of the ROM.
pub const ROM_BASE: u64 = 0x1_0000_0000 - ROM_SIZE as u64;
const _: () = assert!(ROM_BASE >= ROM_WINDOW_START && ROM_BASE + ROM_SIZE as u64 <= ROM_WINDOW_END);

/// ROM offsets of the pieces (see the module documentation).
pub const GDT_OFF: usize = 0x0000;
pub const GDT_PTR_OFF: usize = 0x0020;
pub const TARGET_GDTR_OFF: usize = 0x0030;
pub const TARGET_IDTR_OFF: usize = 0x0040;
pub const IRET_FRAME_OFF: usize = 0x0050;
pub const CONTEXT_OFF: usize = 0x0100;
pub const CODE32_OFF: usize = 0x1000;
pub const CODE64_OFF: usize = 0x2000;
pub const CODE16_OFF: usize = 0xF000;
pub const RESET_VECTOR_OFF: usize = 0xFFF0;

/// Selectors of the ROM's own GDT.
pub const ROM_CS32: u16 = 0x08;
pub const ROM_DS32: u16 = 0x10;
pub const ROM_CS64: u16 = 0x18;

/// The ROM GDT. Every non-null descriptor has the accessed bit (bit 40)
/// preset: KVM cannot set it in a ROM and hangs otherwise.
pub const ROM_GDT: [u64; 4] = [
    SegmentDescriptor::NULL.bits(),
    SegmentDescriptor::CODE32.bits(),
    SegmentDescriptor::DATA.bits(),
    SegmentDescriptor::CODE64.bits(),
];

const CR0_PE: u64 = Cr0::PE.bits();
const CR0_PG: u64 = Cr0::PG.bits();
const CR4_PAE: u64 = Cr4::PAE.bits();
const CR4_LA57: u64 = Cr4::LA57.bits();
const CR4_PCIDE: u64 = Cr4::PCIDE.bits();
const CR4_SMEP: u64 = Cr4::SMEP.bits();
const EFER_LME: u64 = Efer::LME.bits();
const EFER_LMA: u64 = Efer::LMA.bits();
const EFER_NXE: u64 = Efer::NXE.bits();
const RFLAGS_RESERVED_ONE: u64 = RFlags::RESERVED_1.bits();
const MSR_EFER: u32 = msr::EFER;
const MSR_GS_BASE: u32 = msr::GS_BASE;

/// Why a VP context cannot be applied by the ROM, or why its page tables do
/// not allow the hand-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RomError {
    /// A control register / EFER value the ROM cannot enter long mode with.
    BadContext(String),
    /// The assembler refused an instruction (a bug in this module).
    Assemble(String),
    /// A page-table page needed by the walk is not provided by the file.
    MissingTable { va: u64, level: u8, table_gpa: u64 },
    /// The ROM page at `va` is not present in the context's page tables.
    NotPresent { va: u64, level: u8 },
    /// The ROM page at `va` is mapped no-execute (or not executable from CPL0).
    NotExecutable { va: u64, reason: &'static str },
    /// The ROM page at `va` does not map to the same physical address.
    NotIdentity { va: u64, pa: u64 },
}

impl fmt::Display for RomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HINT: &str = "the VP context's page tables must identity-map the reset ROM \
             (ROM_WINDOW_START..ROM_WINDOW_END) present and executable";
        match self {
            Self::BadContext(s) => write!(f, "unsupported VP context: {s}"),
            Self::Assemble(s) => write!(f, "ROM assembly failed: {s}"),
            Self::MissingTable {
                va,
                level,
                table_gpa,
            } => write!(
                f,
                "page walk for ROM page {va:#x}: level-{level} table at GPA {table_gpa:#x} \
                 is not in the file's page data; {HINT}"
            ),
            Self::NotPresent { va, level } => write!(
                f,
                "ROM page {va:#x} is not present (level-{level} entry); {HINT}"
            ),
            Self::NotExecutable { va, reason } => {
                write!(f, "ROM page {va:#x} is not executable ({reason}); {HINT}")
            }
            Self::NotIdentity { va, pa } => write!(
                f,
                "ROM page {va:#x} maps to physical {pa:#x}, not identity; {HINT}"
            ),
        }
    }
}

impl std::error::Error for RomError {}

impl From<IcedError> for RomError {
    fn from(e: IcedError) -> Self {
        Self::Assemble(e.to_string())
    }
}

/// Checks the parts of the context the ROM relies on.
pub fn validate_context(ctx: &IgvmNativeVpContextX64) -> Result<(), RomError> {
    let bad = |s: String| Err(RomError::BadContext(s));
    if ctx.cr0 & (CR0_PE | CR0_PG) != (CR0_PE | CR0_PG) {
        return bad(format!(
            "cr0 {:#x} lacks PE and PG (long mode only)",
            ctx.cr0
        ));
    }
    if ctx.cr0 >> 32 != 0 {
        return bad(format!("cr0 {:#x} has reserved upper bits set", ctx.cr0));
    }
    if ctx.cr4 & CR4_PAE == 0 {
        return bad(format!("cr4 {:#x} lacks PAE (long mode only)", ctx.cr4));
    }
    if ctx.cr4 & CR4_LA57 != 0 {
        return bad("5-level paging (CR4.LA57) is not supported".into());
    }
    if ctx.efer & EFER_LME == 0 {
        return bad(format!("efer {:#x} lacks LME (long mode only)", ctx.efer));
    }
    if ctx.cr3 >= 1 << 32 {
        return bad(format!(
            "cr3 {:#x} is not below 4 GiB (the ROM loads it in 32-bit mode)",
            ctx.cr3
        ));
    }
    if !is_canonical(ctx.rip) {
        return bad(format!("rip {:#x} is not canonical", ctx.rip));
    }
    Ok(())
}

fn is_canonical(va: u64) -> bool {
    let top = (va as i64) >> 47;
    top == 0 || top == -1
}

/// CR4 written before paging is enabled: PCIDE may only be set in long mode.
fn boot_cr4(ctx: &IgvmNativeVpContextX64) -> u64 {
    (ctx.cr4 | CR4_PAE) & !CR4_PCIDE
}

/// EFER written (once) before paging is enabled. LMA is set by the CPU.
fn boot_efer(ctx: &IgvmNativeVpContextX64) -> u64 {
    (ctx.efer | EFER_LME) & !EFER_LMA
}

fn rom_addr(off: usize) -> u64 {
    ROM_BASE + off as u64
}

fn assemble(
    bitness: u32,
    off: usize,
    body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> Result<Vec<u8>, RomError> {
    let mut a = CodeAssembler::new(bitness)?;
    body(&mut a)?;
    // 16-bit code runs with CS base 0xFFFF0000: its IP is the ROM offset.
    let ip = if bitness == 16 {
        off as u64
    } else {
        rom_addr(off)
    };
    Ok(a.assemble(ip)?)
}

fn code16() -> Result<Vec<u8>, RomError> {
    assemble(16, CODE16_OFF, |a| {
        a.cli()?;
        // o32 lgdt cs:[GDT_PTR_OFF]: the 32-bit form loads the full base.
        let gdt_ptr = MemoryOperand::with_displ(GDT_PTR_OFF as u64, 2);
        let gdt_ptr = MemoryOperand {
            segment_prefix: Register::CS,
            ..gdt_ptr
        };
        a.add_instruction(Instruction::with1(Code::Lgdt_m1632, gdt_ptr)?)?;
        a.mov(eax, cr0)?;
        a.or(eax, CR0_PE as i32)?;
        a.mov(cr0, eax)?;
        // o32 jmp far ROM_CS32:code32 (a 32-bit offset from 16-bit code).
        a.add_instruction(Instruction::with_far_branch(
            Code::Jmp_ptr1632,
            ROM_CS32,
            rom_addr(CODE32_OFF) as u32,
        )?)?;
        Ok(())
    })
}

fn code32(ctx: &IgvmNativeVpContextX64) -> Result<Vec<u8>, RomError> {
    let efer = boot_efer(ctx);
    assemble(32, CODE32_OFF, |a| {
        a.mov(ax, ROM_DS32 as u32)?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        a.mov(ss, ax)?;
        a.mov(fs, ax)?;
        a.mov(gs, ax)?;
        a.mov(eax, boot_cr4(ctx) as u32)?;
        a.mov(cr4, eax)?;
        a.mov(eax, ctx.cr3 as u32)?;
        a.mov(cr3, eax)?;
        a.mov(ecx, MSR_EFER)?;
        a.mov(eax, efer as u32)?;
        a.mov(edx, (efer >> 32) as u32)?;
        a.wrmsr()?;
        // Paging on: from here the ROM runs on the context's page tables.
        a.mov(eax, ctx.cr0 as u32)?;
        a.mov(cr0, eax)?;
        a.jmp_far(ROM_CS64, rom_addr(CODE64_OFF) as u32)?;
        Ok(())
    })
}

fn code64() -> Result<Vec<u8>, RomError> {
    type C = IgvmNativeVpContextX64;
    let f = |o: usize| o as i32;
    assemble(64, CODE64_OFF, |a| {
        a.mov(rbx, rom_addr(CONTEXT_OFF))?;
        a.mov(rsi, rom_addr(TARGET_GDTR_OFF))?;
        a.lgdt(ptr(rsi))?;
        a.mov(rsi, rom_addr(TARGET_IDTR_OFF))?;
        a.lidt(ptr(rsi))?;
        // Data segments first: loading GS resets the GS base.
        a.movzx(eax, word_ptr(rbx + f(offset_of!(C, data_selector))))?;
        a.mov(ds, ax)?;
        a.mov(es, ax)?;
        a.mov(fs, ax)?;
        a.mov(gs, ax)?;
        a.mov(ss, ax)?;
        a.mov(ecx, MSR_GS_BASE)?;
        a.mov(eax, dword_ptr(rbx + f(offset_of!(C, gs_base))))?;
        a.mov(edx, dword_ptr(rbx + f(offset_of!(C, gs_base) + 4)))?;
        a.wrmsr()?;
        // Final CR4 (PCIDE can only be set now) and CR0.
        a.mov(rax, qword_ptr(rbx + f(offset_of!(C, cr4))))?;
        a.mov(cr4, rax)?;
        a.mov(rax, qword_ptr(rbx + f(offset_of!(C, cr0))))?;
        a.mov(cr0, rax)?;
        a.mov(rsp, rom_addr(IRET_FRAME_OFF))?;
        let gprs = [
            (rax, offset_of!(C, rax)),
            (rcx, offset_of!(C, rcx)),
            (rdx, offset_of!(C, rdx)),
            (rbp, offset_of!(C, rbp)),
            (rsi, offset_of!(C, rsi)),
            (rdi, offset_of!(C, rdi)),
            (r8, offset_of!(C, r8)),
            (r9, offset_of!(C, r9)),
            (r10, offset_of!(C, r10)),
            (r11, offset_of!(C, r11)),
            (r12, offset_of!(C, r12)),
            (r13, offset_of!(C, r13)),
            (r14, offset_of!(C, r14)),
            (r15, offset_of!(C, r15)),
            // rbx holds the context pointer: last.
            (rbx, offset_of!(C, rbx)),
        ];
        for (reg, off) in gprs {
            a.mov(reg, qword_ptr(rbx + f(off)))?;
        }
        // RIP, CS, RFLAGS, RSP and SS at once.
        a.iretq()?;
        Ok(())
    })
}

fn reset_vector() -> Result<Vec<u8>, RomError> {
    assemble(16, RESET_VECTOR_OFF, |a| {
        a.jmp(CODE16_OFF as u64)?;
        // Never reached; keeps a stray fall-through from running garbage.
        a.hlt()?;
        Ok(())
    })
}

fn place(rom: &mut [u8], off: usize, limit: usize, bytes: &[u8]) -> Result<(), RomError> {
    if off + bytes.len() > limit {
        return Err(RomError::Assemble(format!(
            "block at {off:#x} ({} bytes) overruns {limit:#x}",
            bytes.len()
        )));
    }
    rom[off..off + bytes.len()].copy_from_slice(bytes);
    Ok(())
}

/// The iretq frame stored in the ROM: RIP, CS, RFLAGS, RSP, SS.
pub fn iret_frame(ctx: &IgvmNativeVpContextX64) -> [u64; 5] {
    [
        ctx.rip,
        u64::from(ctx.code_selector),
        ctx.rflags | RFLAGS_RESERVED_ONE,
        ctx.rsp,
        u64::from(ctx.data_selector),
    ]
}

/// Builds the 64 KiB reset-vector ROM that applies `ctx` and jumps to its RIP.
pub fn build_rom(ctx: &IgvmNativeVpContextX64) -> Result<Vec<u8>, RomError> {
    validate_context(ctx)?;
    let mut rom = vec![0u8; ROM_SIZE];

    for (i, d) in ROM_GDT.iter().enumerate() {
        place(&mut rom, GDT_OFF + i * 8, GDT_PTR_OFF, &d.to_le_bytes())?;
    }
    let mut gdt_ptr = Vec::with_capacity(6);
    gdt_ptr.extend_from_slice(&((ROM_GDT.len() * 8 - 1) as u16).to_le_bytes());
    gdt_ptr.extend_from_slice(&(rom_addr(GDT_OFF) as u32).to_le_bytes());
    place(&mut rom, GDT_PTR_OFF, TARGET_GDTR_OFF, &gdt_ptr)?;

    let pseudo = |limit: u16, base: u64| {
        let mut v = limit.to_le_bytes().to_vec();
        v.extend_from_slice(&base.to_le_bytes());
        v
    };
    place(
        &mut rom,
        TARGET_GDTR_OFF,
        TARGET_IDTR_OFF,
        &pseudo(ctx.gdtr_limit, ctx.gdtr_base),
    )?;
    place(
        &mut rom,
        TARGET_IDTR_OFF,
        IRET_FRAME_OFF,
        &pseudo(ctx.idtr_limit, ctx.idtr_base),
    )?;
    place(
        &mut rom,
        IRET_FRAME_OFF,
        CONTEXT_OFF,
        iret_frame(ctx).as_bytes(),
    )?;
    place(&mut rom, CONTEXT_OFF, CODE32_OFF, ctx.as_bytes())?;
    // Each code block must stay inside its page (the hand-off check looks at
    // exactly those pages).
    place(&mut rom, CODE32_OFF, CODE32_OFF + 0x1000, &code32(ctx)?)?;
    place(&mut rom, CODE64_OFF, CODE64_OFF + 0x1000, &code64()?)?;
    place(&mut rom, CODE16_OFF, RESET_VECTOR_OFF, &code16()?)?;
    place(&mut rom, RESET_VECTOR_OFF, ROM_SIZE, &reset_vector()?)?;
    Ok(rom)
}

/// ROM pages used after CR0.PG is set, with whether they must be executable:
/// the data page (ROM GDT, pseudo-descriptors, iretq frame, context), the
/// 32-bit code page (the instructions after `mov cr0`) and the 64-bit code page.
pub fn hand_off_pages() -> [(u64, bool); 3] {
    [
        (rom_addr(GDT_OFF), false),
        (rom_addr(CODE32_OFF), true),
        (rom_addr(CODE64_OFF), true),
    ]
}

use svsm_defs::paging::{ADDR_MASK as PTE_ADDR, PteFlags};
const PTE_PRESENT: u64 = PteFlags::PRESENT.bits();
const PTE_LARGE: u64 = PteFlags::HUGE.bits();
const PTE_NX: u64 = PteFlags::NO_EXECUTE.bits();
const PTE_USER: u64 = PteFlags::USER.bits();

/// Walks the 4-level page tables rooted at `ctx.cr3` for `va`. `read_u64`
/// returns the 8 bytes at a guest-physical address as the IGVM file loads
/// them, or `None` when the file provides no data there. Returns the physical
/// address `va` maps to.
pub fn translate(
    ctx: &IgvmNativeVpContextX64,
    va: u64,
    exec: bool,
    read_u64: &dyn Fn(u64) -> Option<u64>,
) -> Result<u64, RomError> {
    let nxe = ctx.efer & EFER_NXE != 0;
    let smep = ctx.cr4 & CR4_SMEP != 0;
    let mut table = ctx.cr3 & PTE_ADDR;
    let mut all_user = true;
    for (level, shift) in [(4u8, 39u32), (3, 30), (2, 21), (1, 12)] {
        let entry_gpa = table + ((va >> shift) & 511) * 8;
        let entry = read_u64(entry_gpa).ok_or(RomError::MissingTable {
            va,
            level,
            table_gpa: table,
        })?;
        if entry & PTE_PRESENT == 0 {
            return Err(RomError::NotPresent { va, level });
        }
        if entry & PTE_NX != 0 {
            if !nxe {
                return Err(RomError::NotExecutable {
                    va,
                    reason: "NX bit set while EFER.NXE is clear (reserved-bit fault)",
                });
            }
            if exec {
                return Err(RomError::NotExecutable {
                    va,
                    reason: "NX bit set",
                });
            }
        }
        all_user &= entry & PTE_USER != 0;
        let leaf = level == 1 || ((level == 3 || level == 2) && entry & PTE_LARGE != 0);
        if leaf {
            if exec && smep && all_user {
                return Err(RomError::NotExecutable {
                    va,
                    reason: "user page with CR4.SMEP set",
                });
            }
            let size = 1u64 << shift;
            let pa = (entry & PTE_ADDR & !(size - 1)) | (va & (size - 1));
            return Ok(pa);
        }
        table = entry & PTE_ADDR;
    }
    unreachable!("level 1 is always a leaf")
}

/// Verifies the hand-off requirement: CR3 below 4 GiB and every ROM page in
/// [`hand_off_pages`] identity mapped, present, and executable where needed.
pub fn check_hand_off_mapping(
    ctx: &IgvmNativeVpContextX64,
    read_u64: &dyn Fn(u64) -> Option<u64>,
) -> Result<(), RomError> {
    validate_context(ctx)?;
    for (va, exec) in hand_off_pages() {
        let pa = translate(ctx, va, exec, read_u64)?;
        if pa != va {
            return Err(RomError::NotIdentity { va, pa });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, FlowControl};
    use std::collections::BTreeMap;
    use zerocopy::{FromBytes, FromZeros};

    fn ctx() -> Box<IgvmNativeVpContextX64> {
        let mut c = IgvmNativeVpContextX64::new_box_zeroed().unwrap();
        c.rax = 0x1111;
        c.rbx = 0x2222;
        c.rdi = 0x10_0000;
        c.r15 = 0xdead_beef_0000_0015;
        c.rip = 0x11_0000;
        c.rsp = 0x10_c000;
        c.rflags = 0x2;
        c.gdtr_base = 0x10_0800;
        c.gdtr_limit = 0x17;
        c.idtr_base = 0x10_0900;
        c.idtr_limit = 0xfff;
        c.code_selector = 0x08;
        c.data_selector = 0x10;
        c.gs_base = 0xffff_8000_0000_1000;
        c.cr0 = 0x8001_0033;
        c.cr3 = 0x100_0000;
        c.cr4 = 0x20 | CR4_PCIDE;
        c.efer = EFER_LME | EFER_NXE;
        c
    }

    #[test]
    fn rom_size_is_a_multiple_of_64k() {
        let rom = build_rom(&ctx()).unwrap();
        assert!(!rom.is_empty());
        assert_eq!(rom.len() % (64 * 1024), 0);
        assert_eq!(ROM_BASE + rom.len() as u64, 1 << 32);
    }

    #[test]
    fn reset_vector_jumps_into_the_rom_entry() {
        let rom = build_rom(&ctx()).unwrap();
        let bytes = &rom[RESET_VECTOR_OFF..RESET_VECTOR_OFF + 16];
        let mut d = Decoder::with_ip(16, bytes, RESET_VECTOR_OFF as u64, DecoderOptions::NONE);
        let first = d.decode();
        assert!(!first.is_invalid());
        assert_eq!(first.flow_control(), FlowControl::UnconditionalBranch);
        assert_eq!(first.near_branch_target(), CODE16_OFF as u64);
        // The target decodes to cli then the o32 lgdt of the ROM GDT pointer.
        let code = &rom[CODE16_OFF..RESET_VECTOR_OFF];
        let mut d = Decoder::with_ip(16, code, CODE16_OFF as u64, DecoderOptions::NONE);
        assert_eq!(d.decode().code(), Code::Cli);
        let lgdt = d.decode();
        assert_eq!(lgdt.code(), Code::Lgdt_m1632);
        assert_eq!(lgdt.memory_displacement64(), GDT_PTR_OFF as u64);
        assert_eq!(lgdt.segment_prefix(), Register::CS);
        // ... and eventually the far jump to the 32-bit code.
        let far = d
            .into_iter()
            .find(|i| i.code() == Code::Jmp_ptr1632)
            .expect("o32 far jump");
        assert_eq!(far.far_branch_selector(), ROM_CS32);
        assert_eq!(u64::from(far.far_branch32()), ROM_BASE + CODE32_OFF as u64);
    }

    #[test]
    fn gdt_descriptors_have_the_accessed_bit() {
        let rom = build_rom(&ctx()).unwrap();
        let limit = u16::from_le_bytes([rom[GDT_PTR_OFF], rom[GDT_PTR_OFF + 1]]);
        let base = u32::from_le_bytes(rom[GDT_PTR_OFF + 2..GDT_PTR_OFF + 6].try_into().unwrap());
        assert_eq!(u64::from(base), ROM_BASE + GDT_OFF as u64);
        let n = (usize::from(limit) + 1) / 8;
        assert_eq!(n, 4);
        for i in 1..n {
            let d = u64::from_le_bytes(
                rom[GDT_OFF + i * 8..GDT_OFF + i * 8 + 8]
                    .try_into()
                    .unwrap(),
            );
            assert_ne!(d & (1 << 40), 0, "descriptor {i} lacks the accessed bit");
            assert_ne!(d & (1 << 47), 0, "descriptor {i} not present");
        }
        let cs64 = u64::from_le_bytes(
            rom[ROM_CS64 as usize..ROM_CS64 as usize + 8]
                .try_into()
                .unwrap(),
        );
        assert_ne!(cs64 & (1 << 53), 0, "code64 descriptor lacks L");
    }

    #[test]
    fn baked_context_values_round_trip() {
        let c = ctx();
        let rom = build_rom(&c).unwrap();
        let size = size_of::<IgvmNativeVpContextX64>();
        let back =
            IgvmNativeVpContextX64::read_from_bytes(&rom[CONTEXT_OFF..CONTEXT_OFF + size]).unwrap();
        assert_eq!(&back, &*c);
        let q = |off: usize| u64::from_le_bytes(rom[off..off + 8].try_into().unwrap());
        let w = |off: usize| u16::from_le_bytes(rom[off..off + 2].try_into().unwrap());
        assert_eq!(w(TARGET_GDTR_OFF), c.gdtr_limit);
        assert_eq!(q(TARGET_GDTR_OFF + 2), c.gdtr_base);
        assert_eq!(w(TARGET_IDTR_OFF), c.idtr_limit);
        assert_eq!(q(TARGET_IDTR_OFF + 2), c.idtr_base);
        let frame: Vec<u64> = (0..5).map(|i| q(IRET_FRAME_OFF + i * 8)).collect();
        assert_eq!(frame, [c.rip, 0x08, 0x2, c.rsp, 0x10]);
        // The 32-bit code loads CR3 and the boot CR4 (PCIDE cleared) as immediates.
        let code = &rom[CODE32_OFF..CODE32_OFF + 0x1000];
        let ins: Vec<_> =
            Decoder::with_ip(32, code, ROM_BASE + CODE32_OFF as u64, DecoderOptions::NONE)
                .into_iter()
                .take_while(|i| !i.is_invalid())
                .collect();
        let imm_before = |cr: Register| {
            let i = ins
                .iter()
                .position(|i| i.code() == Code::Mov_cr_r32 && i.op0_register() == cr)
                .unwrap();
            ins[i - 1].immediate32()
        };
        assert_eq!(imm_before(Register::CR3), c.cr3 as u32);
        assert_eq!(imm_before(Register::CR4), 0x20);
        assert_eq!(imm_before(Register::CR0), c.cr0 as u32);
        // The 64-bit code ends in iretq after loading every GPR.
        let code = &rom[CODE64_OFF..CODE64_OFF + 0x1000];
        let ins: Vec<_> =
            Decoder::with_ip(64, code, ROM_BASE + CODE64_OFF as u64, DecoderOptions::NONE)
                .into_iter()
                .take_while(|i| !i.is_invalid())
                .collect();
        let iret = ins
            .iter()
            .position(|i| i.code() == Code::Iretq)
            .expect("iretq");
        let loads = ins[..iret]
            .iter()
            .filter(|i| i.code() == Code::Mov_r64_rm64 && i.memory_base() == Register::RBX)
            .count();
        assert!(
            loads >= 17,
            "GPRs + cr0 + cr4 loaded from the context, got {loads}"
        );
    }

    #[test]
    fn bad_contexts_are_refused() {
        let mut c = ctx();
        c.cr3 = 0x1_0000_0000;
        assert!(matches!(build_rom(&c), Err(RomError::BadContext(_))));
        let mut c = ctx();
        c.cr0 &= !CR0_PG;
        assert!(matches!(build_rom(&c), Err(RomError::BadContext(_))));
        let mut c = ctx();
        c.efer = 0;
        assert!(matches!(build_rom(&c), Err(RomError::BadContext(_))));
        let mut c = ctx();
        c.rip = 0x0000_8000_0000_0000;
        assert!(matches!(build_rom(&c), Err(RomError::BadContext(_))));
    }

    /// Page tables in a map of gpa -> u64, as the lookup would see them.
    struct Tables {
        mem: BTreeMap<u64, u64>,
    }

    impl Tables {
        /// PML4 at 0x1000, PDPT at 0x2000, PD for 3..4 GiB at 0x3000 (2 MiB pages).
        fn good() -> Self {
            let mut mem = BTreeMap::new();
            mem.insert(0x1000, 0x2000 | 0x3);
            mem.insert(0x2000 + 3 * 8, 0x3000 | 0x3);
            for i in 0..512u64 {
                mem.insert(0x3000 + i * 8, (0xC000_0000 + (i << 21)) | 0x83);
            }
            Self { mem }
        }
        fn read(&self) -> impl Fn(u64) -> Option<u64> + '_ {
            // Pages present in the "file" read as zero where no entry was set.
            move |gpa| {
                if (0x1000..0x4000).contains(&gpa) {
                    Some(self.mem.get(&gpa).copied().unwrap_or(0))
                } else {
                    None
                }
            }
        }
        fn rom_pde(&mut self) -> &mut u64 {
            self.mem.get_mut(&(0x3000 + 511 * 8)).unwrap()
        }
    }

    fn ctx_cr3(root: u64) -> Box<IgvmNativeVpContextX64> {
        let mut c = ctx();
        c.cr3 = root;
        c.cr4 = 0x20;
        c
    }

    #[test]
    fn page_table_check_accepts_identity_rx() {
        let t = Tables::good();
        check_hand_off_mapping(&ctx_cr3(0x1000), &t.read()).unwrap();
        // 4 KiB leaf pages for the ROM work too.
        let mut t = Tables::good();
        *t.rom_pde() = 0x4000 | 0x3;
        for i in 0..512u64 {
            t.mem
                .insert(0x4000 + i * 8, (0xFFE0_0000 + (i << 12)) | 0x3);
        }
        let read = |gpa| {
            if (0x1000..0x5000).contains(&gpa) {
                Some(t.mem.get(&gpa).copied().unwrap_or(0))
            } else {
                None
            }
        };
        check_hand_off_mapping(&ctx_cr3(0x1000), &read).unwrap();
    }

    #[test]
    fn page_table_check_rejects_bad_tables() {
        let c = ctx_cr3(0x1000);
        // Not present.
        let mut t = Tables::good();
        *t.rom_pde() = 0;
        assert!(matches!(
            check_hand_off_mapping(&c, &t.read()),
            Err(RomError::NotPresent { level: 2, .. })
        ));
        // NX on the ROM.
        let mut t = Tables::good();
        *t.rom_pde() |= PTE_NX;
        assert!(matches!(
            check_hand_off_mapping(&c, &t.read()),
            Err(RomError::NotExecutable { .. })
        ));
        // Not identity.
        let mut t = Tables::good();
        *t.rom_pde() = 0x20_0000 | 0x83;
        let err = check_hand_off_mapping(&c, &t.read()).unwrap_err();
        assert_eq!(
            err,
            RomError::NotIdentity {
                va: ROM_BASE,
                pa: 0x20_0000 + (ROM_BASE & 0x1f_ffff)
            }
        );
        assert!(err.to_string().contains("identity-map the reset ROM"));
        // Table not in the file.
        let t = Tables::good();
        assert!(matches!(
            check_hand_off_mapping(&ctx_cr3(0x8000), &t.read()),
            Err(RomError::MissingTable {
                level: 4,
                table_gpa: 0x8000,
                ..
            })
        ));
        // CR3 above 4 GiB.
        assert!(matches!(
            check_hand_off_mapping(&ctx_cr3(0x1_0000_1000), &t.read()),
            Err(RomError::BadContext(_))
        ));
    }
}
