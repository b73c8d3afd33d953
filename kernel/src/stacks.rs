//! Guarded kernel stacks (interim; the guards crate takes this over).

use crate::mm::{frames, paging};
use spin::Mutex;
use svsm_bootdefs::layout::PAGE_SIZE;
use svsm_guards::{BOOT_STACK_TOP, GUARD_SIZE};

static NEXT_VA: Mutex<u64> = Mutex::new(BOOT_STACK_TOP + GUARD_SIZE);

#[derive(Clone, Copy, Debug)]
pub struct Stack {
    pub bottom: u64,
    pub top: u64,
}

/// Allocates and maps a stack of `size` bytes with unmapped guards around it.
pub fn alloc_stack(size: u64) -> Option<Stack> {
    let mut next = NEXT_VA.lock();
    let bottom = *next + GUARD_SIZE;
    let top = bottom + size;
    let mut va = bottom;
    while va < top {
        let pa = frames::alloc_frame()?;
        paging::map_page(va, pa, paging::DATA_RW, &mut frames::alloc_frame).ok()?;
        va += PAGE_SIZE;
    }
    *next = top;
    Some(Stack { bottom, top })
}
