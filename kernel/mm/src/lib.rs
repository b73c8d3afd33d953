//! Kernel memory-management logic, host-testable: the physical frame
//! allocator and the kernel heap (usable as `#[global_allocator]`, guarded
//! by the kernel's one spin-lock type, `spin::Mutex`). No hardware access:
//! the kernel hands in addresses and pages.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(test)]
extern crate std;

mod frame;
mod heap;

pub use frame::{FRAME_SIZE, FrameAllocator, FrameError, MAX_FRAMES};
pub use heap::{
    Heap, HeapStats, LARGEST_SMALL_CLASS, PAGE_SIZE, PageSource, SIZE_CLASSES, size_class,
};
