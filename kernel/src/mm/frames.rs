//! Physical frames of the kernel region.

use spin::Mutex;
use svsm_bootdefs::layout::{PAGE_SIZE, phys_to_virt};

struct Frames {
    next: u64,
    end: u64,
}

static FRAMES: Mutex<Frames> = Mutex::new(Frames { next: 0, end: 0 });

pub fn init(start: u64, end: u64) {
    *FRAMES.lock() = Frames { next: start, end };
}

/// Allocates one zeroed 4 KiB frame.
pub fn alloc_frame() -> Option<u64> {
    let mut f = FRAMES.lock();
    if f.next + PAGE_SIZE > f.end {
        return None;
    }
    let pa = f.next;
    f.next += PAGE_SIZE;
    drop(f);
    // SAFETY: the frame was just handed out exclusively; the direct map covers it.
    unsafe { core::ptr::write_bytes(phys_to_virt(pa) as *mut u8, 0, PAGE_SIZE as usize) };
    Some(pa)
}
