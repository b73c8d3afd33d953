//! Prints medians (no assertions): frame alloc/free and small/large heap
//! alloc/free. Run: cargo run --release -p svsm-mm --example bench_mm
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::ptr::NonNull;
use svsm_mm::*;
use svsm_testkit::median_ns;

struct HostPages;
// SAFETY: pages from the host allocator, zeroed, 4 KiB aligned, exclusive.
unsafe impl PageSource for HostPages {
    fn alloc_pages(&self, count: usize) -> Option<NonNull<u8>> {
        let l = Layout::from_size_align(count * PAGE_SIZE, PAGE_SIZE).ok()?;
        // SAFETY: non-zero size.
        NonNull::new(unsafe { std::alloc::alloc_zeroed(l) })
    }
    unsafe fn free_pages(&self, ptr: NonNull<u8>, count: usize) {
        let l = Layout::from_size_align(count * PAGE_SIZE, PAGE_SIZE).unwrap();
        // SAFETY: allocated above with this layout.
        unsafe { std::alloc::dealloc(ptr.as_ptr(), l) }
    }
}

fn main() {
    let mut fa = Box::new(FrameAllocator::empty());
    fa.init(0x100_0000, 0x500_0000).unwrap();
    // Half full, so searches do real work.
    for _ in 0..MAX_FRAMES / 2 {
        fa.alloc().unwrap();
    }
    println!(
        "frame alloc+free (half full): median {:.1} ns",
        median_ns(21, 10_000, || {
            let f = fa.alloc().unwrap();
            fa.free(black_box(f)).unwrap();
        })
    );
    println!(
        "frame alloc_contiguous(512, 2 MiB)+free (half full): median {:.1} ns",
        median_ns(21, 1_000, || {
            let f = fa.alloc_contiguous(512, 2 << 20).unwrap();
            fa.free_contiguous(black_box(f), 512).unwrap();
        })
    );
    let heap = Heap::new(HostPages);
    for (name, size) in [("small 64 B", 64usize), ("large 16 KiB", 16 * 1024)] {
        let l = Layout::from_size_align(size, 8).unwrap();
        println!(
            "heap alloc+free {name}: median {:.1} ns",
            median_ns(21, 10_000, || {
                // SAFETY: valid layout; freed right away with the same layout.
                unsafe {
                    let p = heap.alloc(l);
                    heap.dealloc(black_box(p), l);
                }
            })
        );
    }
}
