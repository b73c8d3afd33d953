//! The kernel heap: power-of-two size classes (16 B .. 2 KiB) carved from
//! pages, and multi-page allocations straight from a [`PageSource`].
//!
//! ```ignore
//! struct KernelPages;
//! unsafe impl svsm_mm::PageSource for KernelPages { ... }
//! #[global_allocator]
//! static HEAP: svsm_mm::Heap<KernelPages> = svsm_mm::Heap::new(KernelPages);
//! ```

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use spin::Mutex as SpinLock;

/// Page size of the page source.
pub const PAGE_SIZE: usize = 4096;
/// Object sizes of the small-object classes.
pub const SIZE_CLASSES: [usize; 8] = [16, 32, 64, 128, 256, 512, 1024, 2048];
/// Largest small-object class; larger requests take whole pages.
pub const LARGEST_SMALL_CLASS: usize = 2048;

/// Where the heap gets its memory: the kernel implements it over its frame
/// allocator and the direct map.
///
/// # Safety
/// `alloc_pages(n)` must return either `None` or a pointer to `n * 4096`
/// bytes of zeroed, writable memory, 4 KiB aligned, used by nothing else
/// until given back through `free_pages`. Neither method may use the heap
/// (the heap calls them with its lock held).
pub unsafe trait PageSource {
    fn alloc_pages(&self, count: usize) -> Option<NonNull<u8>>;

    /// Gives back pages obtained from `alloc_pages(count)`.
    ///
    /// # Safety
    /// `ptr` and `count` must be exactly those of one earlier successful
    /// `alloc_pages` call whose memory is no longer used.
    unsafe fn free_pages(&self, ptr: NonNull<u8>, count: usize);
}

/// How a layout is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Small(usize),
    Pages(usize),
}

/// The class serving `layout`: `Some(Ok(i))` for small class `i`,
/// `Some(Err(pages))` for a multi-page allocation, `None` if the alignment
/// is above a page (not supported: the allocation fails).
pub fn size_class(layout: Layout) -> Option<Result<usize, usize>> {
    match class_of(layout)? {
        Class::Small(i) => Some(Ok(i)),
        Class::Pages(n) => Some(Err(n)),
    }
}

fn class_of(layout: Layout) -> Option<Class> {
    if layout.align() > PAGE_SIZE {
        return None;
    }
    // Objects of a class are at multiples of its size inside an aligned
    // page, so a class serves any alignment up to its size.
    let need = layout.size().max(layout.align()).max(1);
    match SIZE_CLASSES.iter().position(|&c| c >= need) {
        Some(i) => Some(Class::Small(i)),
        None => Some(Class::Pages(layout.size().div_ceil(PAGE_SIZE))),
    }
}

/// Counters, for the kernel's diagnostics and the tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Pages carved into small objects (kept by the heap for reuse).
    pub small_pages: usize,
    /// Pages currently held by live multi-page allocations.
    pub large_pages: usize,
    /// Live small objects per class.
    pub small_live: [usize; SIZE_CLASSES.len()],
    /// Failed allocations (exhaustion or unsupported alignment).
    pub failures: usize,
}

struct Inner {
    /// Free-list heads per class (address of the first free object, 0 if
    /// empty). Each free object stores the address of the next.
    heads: [usize; SIZE_CLASSES.len()],
    stats: HeapStats,
}

/// The heap. `const`-constructible for a `static #[global_allocator]`.
pub struct Heap<S> {
    source: S,
    inner: SpinLock<Inner>,
}

impl<S: PageSource> Heap<S> {
    pub const fn new(source: S) -> Self {
        Heap {
            source,
            inner: SpinLock::new(Inner {
                heads: [0; SIZE_CLASSES.len()],
                stats: HeapStats {
                    small_pages: 0,
                    large_pages: 0,
                    small_live: [0; SIZE_CLASSES.len()],
                    failures: 0,
                },
            }),
        }
    }

    pub fn stats(&self) -> HeapStats {
        self.inner.lock().stats
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    fn alloc_small(&self, class: usize) -> *mut u8 {
        let mut inner = self.inner.lock();
        if inner.heads[class] == 0 {
            let Some(page) = self.source.alloc_pages(1) else {
                inner.stats.failures += 1;
                return ptr::null_mut();
            };
            inner.stats.small_pages += 1;
            let size = SIZE_CLASSES[class];
            let base = page.as_ptr();
            // Link the page's objects, lowest first.
            let mut next = 0usize;
            for k in (0..PAGE_SIZE / size).rev() {
                // SAFETY: `base + k * size` is inside the fresh page the
                // source gave us exclusively, and aligned to `size` >= 16,
                // so it can hold the usize link.
                unsafe {
                    let obj = base.add(k * size);
                    obj.cast::<usize>().write(next);
                    next = obj as usize;
                }
            }
            inner.heads[class] = next;
        }
        let obj = inner.heads[class] as *mut u8;
        // SAFETY: `obj` is a free object of this class: it lies in a page
        // owned by the heap and its first word holds the next link.
        inner.heads[class] = unsafe { obj.cast::<usize>().read() };
        inner.stats.small_live[class] += 1;
        obj
    }

    fn free_small(&self, obj: *mut u8, class: usize) {
        let mut inner = self.inner.lock();
        // SAFETY: `obj` came from `alloc_small(class)` (caller contract of
        // `dealloc`), so it is an object of at least 16 bytes, aligned,
        // owned by the heap and no longer used by the caller.
        unsafe { obj.cast::<usize>().write(inner.heads[class]) };
        inner.heads[class] = obj as usize;
        inner.stats.small_live[class] -= 1;
    }
}

// SAFETY: every returned block is either a distinct object of a size class
// (taken off a free list under the lock, sized and aligned for the layout
// as `class_of` guarantees) or pages fresh from the page source, which
// the `PageSource` contract makes exclusive, aligned and large enough.
unsafe impl<S: PageSource> GlobalAlloc for Heap<S> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            Some(Class::Small(c)) => self.alloc_small(c),
            Some(Class::Pages(n)) => match self.source.alloc_pages(n) {
                Some(p) => {
                    self.inner.lock().stats.large_pages += n;
                    p.as_ptr()
                }
                None => {
                    self.inner.lock().stats.failures += 1;
                    ptr::null_mut()
                }
            },
            None => {
                self.inner.lock().stats.failures += 1;
                ptr::null_mut()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match class_of(layout) {
            Some(Class::Small(c)) => self.free_small(ptr, c),
            Some(Class::Pages(n)) => {
                if let Some(p) = NonNull::new(ptr) {
                    self.inner.lock().stats.large_pages -= n;
                    // SAFETY: `ptr` came from `alloc` with this layout, i.e.
                    // from `alloc_pages(n)` with the same `n`.
                    unsafe { self.source.free_pages(p, n) };
                }
            }
            None => {}
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            // Fresh pages are zeroed by contract.
            Some(Class::Pages(_)) | None => {
                // SAFETY: same contract as our caller's.
                unsafe { self.alloc(layout) }
            }
            Some(Class::Small(_)) => {
                // SAFETY: same contract as our caller's.
                let p = unsafe { self.alloc(layout) };
                if !p.is_null() {
                    // SAFETY: `p` is a fresh block of at least `size` bytes.
                    unsafe { ptr::write_bytes(p, 0, layout.size()) };
                }
                p
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to
        // `layout.align()`, does not overflow isize.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let old = class_of(layout);
        if old.is_some() && old == class_of(new_layout) {
            return ptr; // same object or same page count: fits in place
        }
        // SAFETY: as in the default `GlobalAlloc::realloc`: a new block,
        // copy the common prefix, free the old one.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::vec::Vec;
    use svsm_testkit::Rng;

    /// Page source over the host allocator with a page budget; frees all
    /// outstanding pages on drop.
    struct TestPages {
        budget: usize,
        live: Mutex<BTreeMap<usize, usize>>,
    }

    impl TestPages {
        fn new(budget: usize) -> Self {
            TestPages {
                budget,
                live: Mutex::new(BTreeMap::new()),
            }
        }
        fn pages_out(&self) -> usize {
            self.live.lock().unwrap().values().sum()
        }
    }

    // SAFETY: pages come from the host allocator with 4 KiB alignment,
    // zeroed, exclusively owned until freed; no heap of ours is involved.
    unsafe impl PageSource for TestPages {
        fn alloc_pages(&self, count: usize) -> Option<NonNull<u8>> {
            let mut live = self.live.lock().unwrap();
            if live.values().sum::<usize>() + count > self.budget {
                return None;
            }
            let layout = Layout::from_size_align(count * PAGE_SIZE, PAGE_SIZE).ok()?;
            // SAFETY: non-zero size.
            let p = NonNull::new(unsafe { std::alloc::alloc_zeroed(layout) })?;
            live.insert(p.as_ptr() as usize, count);
            Some(p)
        }

        unsafe fn free_pages(&self, ptr: NonNull<u8>, count: usize) {
            let n = self.live.lock().unwrap().remove(&(ptr.as_ptr() as usize));
            assert_eq!(n, Some(count), "freeing pages not handed out as one run");
            let layout = Layout::from_size_align(count * PAGE_SIZE, PAGE_SIZE).unwrap();
            // SAFETY: allocated above with this layout.
            unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
        }
    }

    impl Drop for TestPages {
        fn drop(&mut self) {
            for (p, n) in std::mem::take(&mut *self.live.lock().unwrap()) {
                let layout = Layout::from_size_align(n * PAGE_SIZE, PAGE_SIZE).unwrap();
                // SAFETY: allocated in alloc_pages with this layout.
                unsafe { std::alloc::dealloc(p as *mut u8, layout) };
            }
        }
    }

    fn alloc(h: &Heap<TestPages>, size: usize, align: usize) -> *mut u8 {
        // SAFETY: valid non-zero layout.
        unsafe { h.alloc(Layout::from_size_align(size, align).unwrap()) }
    }

    fn dealloc(h: &Heap<TestPages>, p: *mut u8, size: usize, align: usize) {
        // SAFETY: `p` was allocated by `h` with this layout.
        unsafe { h.dealloc(p, Layout::from_size_align(size, align).unwrap()) }
    }

    #[test]
    fn class_selection() {
        let l = |s, a| Layout::from_size_align(s, a).unwrap();
        assert_eq!(size_class(l(1, 1)), Some(Ok(0)));
        assert_eq!(size_class(l(16, 8)), Some(Ok(0)));
        assert_eq!(size_class(l(17, 8)), Some(Ok(1)));
        assert_eq!(
            size_class(l(8, 256)),
            Some(Ok(4)),
            "alignment picks the class"
        );
        assert_eq!(size_class(l(2048, 8)), Some(Ok(7)));
        assert_eq!(size_class(l(2049, 8)), Some(Err(1)));
        assert_eq!(size_class(l(8, 4096)), Some(Err(1)));
        assert_eq!(size_class(l(4097, 16)), Some(Err(2)));
        assert_eq!(size_class(l(8, 8192)), None);
    }

    #[test]
    fn alignment_up_to_a_page() {
        let h = Heap::new(TestPages::new(64));
        for align in [1, 2, 8, 16, 64, 512, 2048, 4096] {
            for size in [1, align, align + 1, 3000, 5000] {
                let p = alloc(&h, size, align);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                dealloc(&h, p, size, align);
            }
        }
        assert!(alloc(&h, 8, 8192).is_null(), "alignment above a page fails");
        assert_eq!(h.stats().failures, 1);
    }

    #[test]
    fn small_objects_are_reused_lifo() {
        let h = Heap::new(TestPages::new(8));
        let a = alloc(&h, 24, 8);
        let b = alloc(&h, 24, 8);
        assert_eq!(
            b as usize - a as usize,
            32,
            "same page, adjacent class-32 objects"
        );
        dealloc(&h, a, 24, 8);
        assert_eq!(alloc(&h, 30, 8), a, "freed object reused");
        assert_eq!(h.stats().small_pages, 1);
        assert_eq!(h.stats().small_live[1], 2);
    }

    #[test]
    fn large_allocations_go_back_to_the_source() {
        let h = Heap::new(TestPages::new(16));
        let p = alloc(&h, 3 * PAGE_SIZE + 1, 8);
        assert_eq!(h.source().pages_out(), 4);
        assert_eq!(h.stats().large_pages, 4);
        dealloc(&h, p, 3 * PAGE_SIZE + 1, 8);
        assert_eq!(h.source().pages_out(), 0);
        assert_eq!(h.stats().large_pages, 0);
    }

    #[test]
    fn exhaustion_returns_null() {
        let h = Heap::new(TestPages::new(3));
        assert!(alloc(&h, 5 * PAGE_SIZE, 8).is_null());
        let big = alloc(&h, 2 * PAGE_SIZE, 8);
        assert!(!big.is_null());
        // One page left: 2 objects of 2048, then nothing.
        let a = alloc(&h, 2048, 8);
        let b = alloc(&h, 2000, 8);
        assert!(!a.is_null() && !b.is_null());
        assert!(alloc(&h, 1500, 8).is_null());
        assert!(alloc(&h, 16, 8).is_null(), "no page for a new class either");
        dealloc(&h, a, 2048, 8);
        assert_eq!(
            alloc(&h, 1500, 8),
            a,
            "freed object serves the next request"
        );
        assert_eq!(h.stats().failures, 3);
        dealloc(&h, big, 2 * PAGE_SIZE, 8);
        assert!(!alloc(&h, 16, 8).is_null());
    }

    #[test]
    fn zeroed_and_realloc() {
        let h = Heap::new(TestPages::new(16));
        let l = Layout::from_size_align(100, 8).unwrap();
        let p = alloc(&h, 100, 8);
        // SAFETY: p is a live 100-byte block.
        unsafe { ptr::write_bytes(p, 0xaa, 100) };
        dealloc(&h, p, 100, 8);
        // SAFETY: valid layout; block is live until dealloc below.
        unsafe {
            let z = h.alloc_zeroed(l);
            assert_eq!(z, p, "reused object");
            assert!((0..100).all(|i| *z.add(i) == 0), "zeroed despite reuse");
            for i in 0..100 {
                *z.add(i) = i as u8;
            }
            let same = h.realloc(z, l, 120);
            assert_eq!(same, z, "120 still fits class 128");
            let l120 = Layout::from_size_align(120, 8).unwrap();
            let moved = h.realloc(same, l120, 5000);
            assert_ne!(moved, same);
            assert!((0..100).all(|i| *moved.add(i) == i as u8), "contents kept");
            assert_eq!(h.source().pages_out(), 1 + 2);
            let l5000 = Layout::from_size_align(5000, 8).unwrap();
            let shrunk = h.realloc(moved, l5000, 40);
            assert!((0..40).all(|i| *shrunk.add(i) == i as u8));
            assert_eq!(h.stats().large_pages, 0, "large block returned");
            assert_eq!(h.source().pages_out(), 2, "class-128 and class-64 pages");
            h.dealloc(shrunk, Layout::from_size_align(40, 8).unwrap());
        }
    }

    /// Random alloc/free with a shadow map of live blocks: no two live
    /// blocks overlap, each keeps its fill byte, alignment holds, and
    /// exhaustion only ever yields null.
    fn random_run(h: &Heap<TestPages>, seed: u64, steps: usize) {
        let mut rng = Rng::new(seed);
        let mut live: Vec<(usize, usize, usize, u8)> = Vec::new();
        let mut shadow: BTreeMap<usize, usize> = BTreeMap::new();
        for step in 0..steps {
            if live.is_empty() || !rng.next_u64().is_multiple_of(3) {
                let size = match rng.next_u64() % 10 {
                    0 => 1 + (rng.next_u64() % 20_000) as usize,
                    _ => 1 + (rng.next_u64() % 2100) as usize,
                };
                let align = 1usize << (rng.next_u64() % 13);
                let p = alloc(h, size, align) as usize;
                if p == 0 {
                    continue; // budget exhausted: fine, must not crash
                }
                assert_eq!(p % align, 0);
                if let Some((&s, &e)) = shadow.range(..p + size).next_back() {
                    assert!(
                        e <= p || s >= p + size,
                        "overlap: [{p:#x},+{size}) with [{s:#x},{e:#x})"
                    );
                }
                shadow.insert(p, p + size);
                let tag = (step % 251) as u8 + 1;
                // SAFETY: live block of `size` bytes.
                unsafe { ptr::write_bytes(p as *mut u8, tag, size) };
                live.push((p, size, align, tag));
            } else {
                let k = (rng.next_u64() as usize) % live.len();
                let (p, size, align, tag) = live.swap_remove(k);
                // SAFETY: live block of `size` bytes.
                let bytes = unsafe { core::slice::from_raw_parts(p as *const u8, size) };
                assert!(bytes.iter().all(|&b| b == tag), "block {p:#x} corrupted");
                shadow.remove(&p);
                dealloc(h, p as *mut u8, size, align);
            }
        }
        for (p, size, align, _) in live {
            dealloc(h, p as *mut u8, size, align);
        }
    }

    #[test]
    fn random_patterns_with_shadow_map() {
        for seed in 1..8 {
            let h = Heap::new(TestPages::new(200));
            random_run(&h, seed * 7919, 4000);
            let s = h.stats();
            assert_eq!(s.large_pages, 0);
            assert_eq!(s.small_live, [0; 8]);
            assert_eq!(h.source().pages_out(), s.small_pages);
        }
    }

    #[test]
    fn threads_share_the_heap() {
        let h = Arc::new(Heap::new(TestPages::new(2000)));
        let ts: Vec<_> = (0..4u64)
            .map(|t| {
                let h = Arc::clone(&h);
                std::thread::spawn(move || random_run(&h, 1000 + t, 3000))
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(h.stats().small_live, [0; 8]);
    }
}
