//! Application-processor start-up code: the real-mode trampoline a start-up
//! IPI runs (real mode -> protected mode -> long mode on the page tables
//! and control-register values the boot CPU hands over) and the kernel
//! entry stub it jumps to. The trampoline is assembled here as data and
//! copied to `AP_TRAMPOLINE_GPA` (below 1 MiB, where a SIPI can point) before
//! each start-up; its parameter block sits at `PARAMS_OFFSET` in that page.

use core::arch::global_asm;
use core::mem::offset_of;
use svsm_bootdefs::layout::{AP_TRAMPOLINE_GPA, PAGE_SIZE, phys_to_virt};
use svsm_defs::desc::SegmentDescriptor;

/// What the trampoline loads, at `AP_TRAMPOLINE_GPA + PARAMS_OFFSET`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrampolineParams {
    /// Null, 32-bit code (0x08), data (0x10), 64-bit code (0x18).
    gdt: [u64; 4],
    /// The LGDT operand: limit, then the 32-bit base in two halves.
    gdtr: [u16; 4],
    /// Page tables the AP starts on (below 4 GiB: loaded in 32-bit mode);
    /// they must identity map the trampoline page.
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub cr0: u64,
    /// Kernel virtual address the AP jumps to (`entry_stub`).
    pub entry: u64,
    /// RSP at `entry`, and RDI (the argument of `svsm_ap_main`).
    pub stack_top: u64,
    pub arg: u64,
}

pub const PARAMS_OFFSET: u64 = 0xf00;
const SEL_CODE32: u16 = 0x08;
const SEL_CODE64: u16 = 0x18;

const _: () = {
    assert!(
        PARAMS_OFFSET as usize + core::mem::size_of::<TrampolineParams>() <= PAGE_SIZE as usize
    );
    assert!(offset_of!(TrampolineParams, gdtr) == 0x20);
};

global_asm!(
    ".pushsection .rodata.svsm_ap_trampoline, \"a\"",
    ".global svsm_ap_trampoline",
    "svsm_ap_trampoline:",
    ".code16",
    "cli",
    "cld",
    // CS = page >> 4, IP = 0: the parameter block is DS-relative.
    "mov ax, cs",
    "mov ds, ax",
    "lgdt [{params_off} + {gdtr}]",
    "mov eax, cr0",
    "or al, 1",
    "mov cr0, eax",
    // ljmpl code32:page+tramp32
    ".byte 0x66, 0xea",
    ".long {page} + (svsm_ap_tramp32 - svsm_ap_trampoline)",
    ".short {code32}",
    ".code32",
    "svsm_ap_tramp32:",
    "mov ax, {data}",
    "mov ds, ax",
    "mov es, ax",
    "mov ss, ax",
    "mov eax, dword ptr [{params} + {cr4}]",
    "mov cr4, eax",
    "mov eax, dword ptr [{params} + {cr3}]",
    "mov cr3, eax",
    "mov ecx, {efer_msr}",
    "mov eax, dword ptr [{params} + {efer}]",
    "mov edx, dword ptr [{params} + {efer} + 4]",
    "wrmsr",
    // PG with EFER.LME set: long mode (compatibility mode until the jump).
    "mov eax, dword ptr [{params} + {cr0}]",
    "mov cr0, eax",
    ".byte 0xea",
    ".long {page} + (svsm_ap_tramp64 - svsm_ap_trampoline)",
    ".short {code64}",
    ".code64",
    "svsm_ap_tramp64:",
    "mov rsp, qword ptr [{params} + {stack}]",
    "mov rdi, qword ptr [{params} + {arg}]",
    "mov rax, qword ptr [{params} + {entry}]",
    "jmp rax",
    ".global svsm_ap_trampoline_end",
    "svsm_ap_trampoline_end:",
    ".popsection",
    // The kernel-side entry: the outermost frame of every AP (the unwinder
    // stops here), on the AP's per-CPU stack.
    ".section .text.svsm_ap_start, \"ax\"",
    // A trap first: whatever the linker places before this section (a
    // function ending in a call that does not return) never runs on into
    // the AP entry, and stackcheck sees it end here.
    ".type svsm_ap_start_fence, @function",
    "svsm_ap_start_fence:",
    ".cfi_startproc",
    ".cfi_undefined rip",
    "ud2",
    ".cfi_endproc",
    ".size svsm_ap_start_fence, . - svsm_ap_start_fence",
    ".global svsm_ap_start",
    ".type svsm_ap_start, @function",
    "svsm_ap_start:",
    ".cfi_startproc",
    ".cfi_undefined rip",
    "xor ebp, ebp",
    "call svsm_ap_main",
    "ud2",
    ".cfi_endproc",
    ".size svsm_ap_start, . - svsm_ap_start",
    page = const AP_TRAMPOLINE_GPA,
    params = const AP_TRAMPOLINE_GPA + PARAMS_OFFSET,
    params_off = const PARAMS_OFFSET,
    gdtr = const offset_of!(TrampolineParams, gdtr),
    cr3 = const offset_of!(TrampolineParams, cr3),
    cr4 = const offset_of!(TrampolineParams, cr4),
    efer = const offset_of!(TrampolineParams, efer),
    cr0 = const offset_of!(TrampolineParams, cr0),
    entry = const offset_of!(TrampolineParams, entry),
    stack = const offset_of!(TrampolineParams, stack_top),
    arg = const offset_of!(TrampolineParams, arg),
    efer_msr = const svsm_defs::msr::EFER,
    code32 = const SEL_CODE32,
    code64 = const SEL_CODE64,
    data = const 0x10,
);

unsafe extern "C" {
    static svsm_ap_trampoline: u8;
    static svsm_ap_trampoline_end: u8;
    fn svsm_ap_start();
}

/// The kernel entry of an AP (`svsm_ap_start`: calls `svsm_ap_main(arg)` on
/// the stack the AP was given).
pub fn entry_stub() -> u64 {
    svsm_ap_start as *const () as u64
}

impl TrampolineParams {
    /// Parameters with the trampoline's own GDT filled in.
    pub fn new() -> Self {
        let gdt_base = AP_TRAMPOLINE_GPA + PARAMS_OFFSET + offset_of!(Self, gdt) as u64;
        Self {
            gdt: [
                SegmentDescriptor::NULL.bits(),
                SegmentDescriptor::CODE32.bits(),
                SegmentDescriptor::DATA.bits(),
                SegmentDescriptor::CODE64.bits(),
            ],
            gdtr: [
                (4 * 8 - 1) as u16,
                gdt_base as u16,
                (gdt_base >> 16) as u16,
                0,
            ],
            ..Self::default()
        }
    }
}

/// Copies the trampoline and `params` to `AP_TRAMPOLINE_GPA`.
///
/// # Safety
/// The trampoline page is RAM reserved for AP start-up and no AP is
/// executing in it.
pub unsafe fn install(params: &TrampolineParams) {
    let start = core::ptr::addr_of!(svsm_ap_trampoline);
    let len = core::ptr::addr_of!(svsm_ap_trampoline_end) as usize - start as usize;
    assert!(
        len as u64 <= PARAMS_OFFSET,
        "AP trampoline overlaps its parameters"
    );
    let page = phys_to_virt(AP_TRAMPOLINE_GPA) as *mut u8;
    // SAFETY: the page is reserved for this (the caller's obligation) and
    // reached through the direct map; the code is `len` bytes of rodata and
    // the parameter block fits behind it (checked above and at compile time).
    unsafe {
        core::ptr::copy_nonoverlapping(start, page, len);
        page.add(PARAMS_OFFSET as usize)
            .cast::<TrampolineParams>()
            .write_volatile(*params);
    }
}
