//! Kernel memory: physical frames, page tables, heap.

pub mod frames;
pub mod heap;
pub mod paging;
