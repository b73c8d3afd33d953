//! Physical frames of the kernel region (svsm-mm's bitmap allocator).

use spin::Mutex;
use svsm_bootdefs::layout::{PAGE_SIZE, phys_to_virt};
use svsm_defs::PhysAddr;
use svsm_mm::FrameAllocator;

static FRAMES: Mutex<FrameAllocator> = Mutex::new(FrameAllocator::empty());

pub fn init(start: u64, end: u64) -> Result<(), svsm_mm::FrameError> {
    FRAMES.lock().init(start, end)
}

fn zero(pa: u64, count: usize) {
    // SAFETY: the frames were just handed out exclusively; the direct map covers them.
    unsafe { core::ptr::write_bytes(phys_to_virt(pa) as *mut u8, 0, count * PAGE_SIZE as usize) };
}

/// Allocates one zeroed 4 KiB frame.
pub fn alloc_frame() -> Option<PhysAddr> {
    let pa = FRAMES.lock().alloc().ok()?;
    zero(pa, 1);
    Some(PhysAddr::new(pa))
}

/// Allocates `count` physically contiguous zeroed frames.
pub fn alloc_frames(count: usize) -> Option<PhysAddr> {
    let pa = FRAMES.lock().alloc_contiguous(count, PAGE_SIZE).ok()?;
    zero(pa, count);
    Some(PhysAddr::new(pa))
}

pub fn free_frames(pa: PhysAddr, count: usize) {
    if let Err(e) = FRAMES.lock().free_contiguous(pa.as_u64(), count) {
        log::error!("frame free failed: {e}");
    }
}

/// (free, total) frames.
pub fn stats() -> (usize, usize) {
    let f = FRAMES.lock();
    (f.free_frames(), f.total_frames())
}
