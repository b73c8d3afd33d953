//! The kernel heap (`alloc`), backed by frames reached through the direct map.

use super::frames;
use core::ptr::NonNull;
use svsm_bootdefs::layout::{DIRECT_MAP_BASE, phys_to_virt};
use svsm_defs::PhysAddr;

pub struct KernelPages;

// SAFETY: pages come from the frame allocator (exclusive, zeroed, 4 KiB
// aligned) and are addressed through the direct map; neither method uses the heap.
unsafe impl svsm_mm::PageSource for KernelPages {
    fn alloc_pages(&self, count: usize) -> Option<NonNull<u8>> {
        let pa = frames::alloc_frames(count)?;
        NonNull::new(phys_to_virt(pa.as_u64()) as *mut u8)
    }

    unsafe fn free_pages(&self, ptr: NonNull<u8>, count: usize) {
        frames::free_frames(PhysAddr::new(ptr.as_ptr() as u64 - DIRECT_MAP_BASE), count);
    }
}

#[global_allocator]
pub static HEAP: svsm_mm::Heap<KernelPages> = svsm_mm::Heap::new(KernelPages);
