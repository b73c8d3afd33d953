//! In-kernel backtraces: DWARF-CFI unwinding (svsm-unwinder) over the
//! kernel's own `.eh_frame_hdr`/`.eh_frame`, reading memory only inside
//! registered stacks, symbolized with the symbol table igvm-build embedded.

use crate::serial::ConsoleWriter;
use crate::stacks;
use spin::{Mutex, Once};
use svsm_bootdefs::symtab::SymTab;
use svsm_guards::{StackKind, StackRegistry};
use svsm_unwinder::{CfiSections, Frame, Memory, Module, Regs, StopReason, UnwindState, Walk};

unsafe extern "C" {
    static __eh_frame_hdr_start: u8;
    static __eh_frame_hdr_end: u8;
    static __eh_frame_start: u8;
    static __eh_frame_end: u8;
}

/// Unwinder scratch state: built once at boot, never on the fault path.
static STATE: Mutex<UnwindState> = Mutex::new(UnwindState::new_unprepared());
static SYMTAB: Once<Option<SymTab<'static>>> = Once::new();

fn section(start: &'static u8, end: &'static u8) -> (&'static [u8], u64) {
    let s = start as *const u8 as u64;
    let e = end as *const u8 as u64;
    // SAFETY: linker-script symbols delimit a mapped read-only section.
    (
        unsafe { core::slice::from_raw_parts(start as *const u8, (e - s) as usize) },
        s,
    )
}

fn module() -> Option<Module<'static>> {
    // SAFETY: taking addresses of linker symbols.
    let (hdr, hdr_addr) = section(unsafe { &__eh_frame_hdr_start }, unsafe {
        &__eh_frame_hdr_end
    });
    // SAFETY: as above.
    let (eh, eh_addr) = section(unsafe { &__eh_frame_start }, unsafe { &__eh_frame_end });
    Module::new(CfiSections {
        eh_frame_hdr: hdr,
        eh_frame_hdr_addr: hdr_addr,
        eh_frame: eh,
        eh_frame_addr: eh_addr,
    })
    .ok()
}

/// Prepares the unwinder state and the symbol table (call once at boot).
pub fn init(symtab_virt: u64, symtab_size: u64) {
    // Built here, on the boot stack, so no fault path carries its temporary.
    STATE.lock().prepare();
    SYMTAB.call_once(|| {
        if symtab_virt == 0 || symtab_size == 0 {
            return None;
        }
        // SAFETY: igvm-build mapped the symbol table read-only at this address.
        let bytes =
            unsafe { core::slice::from_raw_parts(symtab_virt as *const u8, symtab_size as usize) };
        SymTab::parse(bytes).ok()
    });
}

/// Memory accessor: 8-byte reads inside registered, mapped stacks only.
struct StackMemory<'a> {
    registry: &'a StackRegistry,
}

impl Memory for StackMemory<'_> {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        if !addr.is_multiple_of(8) {
            return None;
        }
        let (_, info) = self.registry.find(addr)?;
        if info.kind == StackKind::Stage2 || !info.range.contains(addr) || addr + 8 > info.range.top
        {
            return None;
        }
        // SAFETY: registered stacks (other than stage2's) are mapped over
        // [bottom, top) for as long as they are registered.
        Some(unsafe { (addr as *const u64).read_volatile() })
    }

    /// Lets the unwinder follow `svsm_call_on_stack` onto another stack.
    fn stack_id(&self, addr: u64) -> Option<u64> {
        self.registry.find(addr).map(|(_, i)| i.range.bottom)
    }
}

pub fn symbolize(pc: u64) -> Option<(&'static str, u64)> {
    SYMTAB.get()?.as_ref()?.lookup(pc)
}

/// Prints a BACKTRACE block starting from `regs` (docs/serial-formats.md).
pub fn print_from(regs: Regs) -> Option<StopReason> {
    let modules = [module()?];
    let registry = stacks::registry_for_fault();
    let mem = StackMemory {
        registry: &registry,
    };
    let state_lock = &STATE;
    if state_lock.is_locked() {
        // SAFETY: fatal path on a single CPU; the holder never resumes.
        unsafe { state_lock.force_unlock() };
    }
    let mut state = state_lock.lock();
    let walk = Walk::new(&modules, &mem, &mut state, regs);
    let build_id = crate::bootinfo::get().build_id();
    let vector = |f: &Frame| {
        // Every entry stub frame has its vector number 56 bytes below its CFA.
        f.exception
            .and_then(|e| mem.read_u64(e.stub_cfa.wrapping_sub(56)))
            .map(|v| v as u32)
    };
    svsm_unwinder::write_backtrace(&mut ConsoleWriter, build_id, walk, symbolize, vector).ok()
}

/// Prints a backtrace of the calling context.
#[inline(never)]
pub fn print_here() -> Option<StopReason> {
    print_from(svsm_unwinder::capture_regs!())
}

/// Walks (without printing) from `regs`; returns the frame count.
#[inline(never)]
pub fn walk_only(regs: Regs, limit: usize) -> usize {
    let Some(m) = module() else { return 0 };
    let modules = [m];
    let registry = stacks::REGISTRY.lock();
    let mem = StackMemory {
        registry: &registry,
    };
    let state_lock = &STATE;
    let mut state = state_lock.lock();
    let mut n = 0;
    for f in Walk::new(&modules, &mem, &mut state, regs).with_limit(limit) {
        let _ = symbolize(f.lookup_pc());
        n += 1;
    }
    n
}
