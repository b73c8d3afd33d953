//! Every stack of the kernel, from the guards registry: allocation with
//! unmapped guards on both sides, painting for high-water marks, and the
//! address classification the fault handlers use.

use crate::mm::{frames, paging};
use spin::Mutex;
use svsm_bootdefs::BootInfo;
use svsm_bootdefs::layout::{PAGE_SIZE, STAGE2_GUARD_SIZE, phys_to_virt};
use svsm_defs::VirtAddr;
use svsm_guards::{
    Owner, PAINT_PATTERN, StackError, StackId, StackInfo, StackKind, StackRange, StackRegistry,
    paint_words_high_water,
};

pub static REGISTRY: Mutex<StackRegistry> = Mutex::new(StackRegistry::new());

/// The registry on a fatal path: never blocks on a lock the interrupted
/// context may hold. The reporting CPU has stopped every other CPU first
/// (`cpu::smp::stop_others`), and the fatal path never returns to it.
pub fn registry_for_fault() -> spin::MutexGuard<'static, StackRegistry> {
    if let Some(g) = REGISTRY.try_lock() {
        return g;
    }
    // SAFETY: see above; the holder (this CPU or a stopped one) never
    // runs again.
    unsafe { REGISTRY.force_unlock() };
    REGISTRY.lock()
}

#[derive(Debug)]
pub enum StackAllocError {
    Registry(StackError),
    OutOfMemory,
    Map(paging::MapError),
}

impl core::fmt::Display for StackAllocError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Registry(e) => write!(f, "{e}"),
            Self::OutOfMemory => f.write_str("out of memory"),
            Self::Map(e) => write!(f, "mapping failed: {e:?}"),
        }
    }
}

/// Registers the stacks that exist before the kernel runs: the boot stack
/// and stage2's identity-mapped stack (both painted by igvm-build).
pub fn init(bi: &BootInfo) -> Result<(), StackError> {
    let mut r = REGISTRY.lock();
    r.register_boot_stack()?;
    r.register_fixed(
        StackKind::Stage2,
        Owner::cpu(0),
        "stage2",
        StackRange {
            guard_lo: bi.stage2_stack_bottom - STAGE2_GUARD_SIZE,
            bottom: bi.stage2_stack_bottom,
            top: bi.stage2_stack_top,
            guard_hi: bi.stage2_stack_top + STAGE2_GUARD_SIZE,
        },
    )?;
    Ok(())
}

/// Allocates a stack of the kind's default size, maps it (RW, NX) and paints it.
pub fn alloc(
    kind: StackKind,
    owner: Owner,
    name: &'static str,
) -> Result<StackInfo, StackAllocError> {
    let size = kind
        .default_size()
        .ok_or(StackAllocError::Registry(StackError::NotAllocatable(kind)))?;
    alloc_sized(kind, owner, name, size)
}

pub fn alloc_sized(
    kind: StackKind,
    owner: Owner,
    name: &'static str,
    size: u64,
) -> Result<StackInfo, StackAllocError> {
    let (id, info) = {
        let mut r = REGISTRY.lock();
        let id = r
            .allocate_sized(kind, owner, name, size)
            .map_err(StackAllocError::Registry)?;
        (id, *r.get(id).expect("just allocated"))
    };
    let mut va = info.range.bottom;
    while va < info.range.top {
        let Some(pa) = frames::alloc_frame() else {
            release(id, va);
            return Err(StackAllocError::OutOfMemory);
        };
        // SAFETY: the registry reserved [bottom, top) for this stack alone
        // (nothing else maps it), and `pa` was just allocated.
        let mapped = unsafe {
            paging::map_page(
                VirtAddr::new(va),
                pa,
                paging::DATA_RW,
                &mut frames::alloc_frame,
            )
        };
        if let Err(e) = mapped {
            frames::free_frames(pa, 1);
            release(id, va);
            return Err(StackAllocError::Map(e));
        }
        va += PAGE_SIZE;
    }
    // SAFETY: [bottom, top) was just mapped RW for this stack only.
    let words = unsafe {
        core::slice::from_raw_parts_mut(
            info.range.bottom as *mut u64,
            (info.range.size() / 8) as usize,
        )
    };
    words.fill(PAINT_PATTERN);
    Ok(info)
}

/// Unmaps [bottom, mapped_end) of a stack, shoots the range down on the
/// other CPUs (a task's stack may have been touched elsewhere, e.g. by a
/// high-water-mark scan), then frees its frames and its registry entry.
fn release(id: StackId, mapped_end: u64) {
    let bottom = REGISTRY
        .lock()
        .get(id)
        .map(|i| i.range.bottom)
        .unwrap_or(mapped_end);
    let mut frames_out = [None; (svsm_guards::MAX_STACK_SIZE / PAGE_SIZE) as usize];
    let mut va = bottom;
    for slot in frames_out.iter_mut() {
        if va >= mapped_end {
            break;
        }
        // SAFETY: the stack is being released: nothing runs on it or
        // references it any more.
        *slot = unsafe { paging::unmap_page(VirtAddr::new(va)) };
        va += PAGE_SIZE;
    }
    crate::cpu::tlb::shootdown(bottom, (va - bottom) / PAGE_SIZE);
    for pa in frames_out.into_iter().flatten() {
        frames::free_frames(pa, 1);
    }
    let _ = REGISTRY.lock().free(id);
}

/// Frees an allocated stack (task exit).
pub fn free(info: &StackInfo) {
    let id = REGISTRY
        .lock()
        .iter()
        .find(|(_, i)| i.range == info.range)
        .map(|(id, _)| id);
    if let Some(id) = id {
        release(id, info.range.top);
    }
}

/// Bytes of `info` ever used, by scanning for the paint pattern from the bottom.
pub fn high_water(info: &StackInfo) -> Option<u64> {
    let base = match info.kind {
        // stage2's stack is identity mapped only while stage2 runs; read it
        // through the direct map (its addresses are physical).
        StackKind::Stage2 => phys_to_virt(info.range.bottom),
        _ => info.range.bottom,
    };
    if info.kind != StackKind::Stage2 && !paging::is_mapped(VirtAddr::new(base), info.range.size())
    {
        return None;
    }
    // SAFETY: the whole stack is mapped (checked above, or the direct map);
    // reading words that the owner may be writing is benign here.
    let words = unsafe {
        core::slice::from_raw_parts(base as *const u64, (info.range.size() / 8) as usize)
    };
    Some(paint_words_high_water(words) as u64)
}

/// Prints one `STACK-HWM` line per registered stack.
pub fn print_high_water_marks() {
    let r = REGISTRY.lock();
    for (_, info) in r.iter() {
        if let Some(used) = high_water(info) {
            crate::println!("{}", info.hwm_record(used));
        }
    }
}

/// The stack containing `addr` (inside the stack proper).
#[cfg_attr(not(feature = "testcases"), allow(dead_code))] // test cases
pub fn stack_of(addr: u64) -> Option<StackRange> {
    let r = REGISTRY.lock();
    r.find(addr)
        .map(|(_, i)| i.range)
        .filter(|rg| rg.contains(addr))
}
