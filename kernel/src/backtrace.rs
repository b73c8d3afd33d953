//! In-kernel backtraces: unwinding (svsm-unwinder) through the compact
//! unwind table igvm-build compiled from the kernel's `.eh_frame`, reading
//! memory only inside registered stacks, symbolized with the symbol table
//! igvm-build embedded.

use crate::serial::ConsoleWriter;
use crate::stacks;
use spin::Once;
use svsm_bootdefs::symtab::SymTab;
use svsm_guards::{StackKind, StackRegistry};
use svsm_unwinder::{Frame, Memory, Regs, StopReason, UnwindTable, Walk};

static SYMTAB: Once<Option<SymTab<'static>>> = Once::new();
/// The kernel's compact unwind table, compiled by igvm-build from the
/// kernel's CFI and checked against gimli at every instruction by the
/// unwinder's host tests. Walks read only this table: no gimli code is
/// reachable from a fault path, which keeps its stack small and fixed.
static TABLE: Once<Option<UnwindTable<'static>>> = Once::new();

/// The read-only region igvm-build mapped at `virt`, if any.
fn region(virt: u64, size: u64) -> Option<&'static [u8]> {
    if virt == 0 || size == 0 {
        return None;
    }
    // SAFETY: igvm-build mapped `size` bytes read-only at `virt` for the
    // kernel's lifetime (boot info).
    Some(unsafe { core::slice::from_raw_parts(virt as *const u8, size as usize) })
}

/// Parses the symbol table and the unwind table (call once at boot).
pub fn init(symtab_virt: u64, symtab_size: u64) {
    SYMTAB.call_once(|| SymTab::parse(region(symtab_virt, symtab_size)?).ok());
    let bi = crate::bootinfo::get();
    TABLE.call_once(|| UnwindTable::parse(region(bi.unwind_virt, bi.unwind_size)?).ok());
}

/// The unwind tables a walk reads (none if igvm-build embedded none: a
/// backtrace then ends at frame #00 with `no-fde`).
fn tables() -> &'static [UnwindTable<'static>] {
    match TABLE.get() {
        Some(Some(t)) => core::slice::from_ref(t),
        _ => &[],
    }
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
        if info.kind == StackKind::Stage2
            || !info.range.contains(addr)
            || addr.checked_add(8)? > info.range.top
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
#[inline(never)]
pub fn print_from(regs: Regs) -> Option<StopReason> {
    let registry = stacks::registry_for_fault();
    let mem = StackMemory {
        registry: &registry,
    };
    let walk = Walk::from_tables(tables(), &mem, regs);
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
    let registry = stacks::REGISTRY.lock();
    let mem = StackMemory {
        registry: &registry,
    };
    let mut n = 0;
    for f in Walk::from_tables(tables(), &mem, regs).with_limit(limit) {
        let _ = symbolize(f.lookup_pc());
        n += 1;
    }
    n
}
