//! Physical frame allocator: a bitmap over `[start, end)` in 4 KiB frames,
//! stored in a fixed array sized for the 64 MiB kernel region.

use core::fmt;

/// Size of a physical frame.
pub const FRAME_SIZE: u64 = 4096;
/// Frames the allocator can manage: 64 MiB, the kernel region.
pub const MAX_FRAMES: usize = 16384;
const WORDS: usize = MAX_FRAMES / 64;

/// Why a frame operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// An address or range bound is not 4 KiB aligned.
    Misaligned(u64),
    /// `start >= end`, or the range holds more than `MAX_FRAMES` frames.
    BadRange { start: u64, end: u64 },
    /// Count of zero, or alignment not a power of two.
    BadRequest,
    /// No free frame (or no free run of the requested length and alignment).
    OutOfMemory,
    /// The frame is not in the managed range.
    NotOwned(u64),
    /// The frame is already free.
    DoubleFree(u64),
    /// `reserve` of a frame that is already allocated.
    AlreadyAllocated(u64),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Misaligned(a) => write!(f, "address {a:#x} is not 4 KiB aligned"),
            FrameError::BadRange { start, end } => write!(
                f,
                "bad frame range {start:#x}..{end:#x} (empty or more than {MAX_FRAMES} frames)"
            ),
            FrameError::BadRequest => {
                f.write_str("bad request (zero count or non-power-of-two alignment)")
            }
            FrameError::OutOfMemory => f.write_str("out of physical frames"),
            FrameError::NotOwned(a) => write!(f, "frame {a:#x} is not managed by this allocator"),
            FrameError::DoubleFree(a) => write!(f, "double free of frame {a:#x}"),
            FrameError::AlreadyAllocated(a) => write!(f, "frame {a:#x} is already allocated"),
        }
    }
}

/// Bitmap frame allocator (a set bit is an allocated frame). 2 KiB of
/// state: keep it in a `static`, never on the stack.
pub struct FrameAllocator {
    start: u64,
    frames: usize,
    free: usize,
    /// Word to start the next single-frame search at.
    hint: usize,
    bitmap: [u64; WORDS],
}

impl Default for FrameAllocator {
    fn default() -> Self {
        Self::empty()
    }
}

impl FrameAllocator {
    /// An allocator managing no frames (for a `static`; call [`Self::init`]).
    pub const fn empty() -> Self {
        FrameAllocator {
            start: 0,
            frames: 0,
            free: 0,
            hint: 0,
            bitmap: [u64::MAX; WORDS],
        }
    }

    /// Manages `[start, end)`, all free. Replaces any previous state.
    pub fn init(&mut self, start: u64, end: u64) -> Result<(), FrameError> {
        for a in [start, end] {
            if !a.is_multiple_of(FRAME_SIZE) {
                return Err(FrameError::Misaligned(a));
            }
        }
        if start >= end || (end - start) / FRAME_SIZE > MAX_FRAMES as u64 {
            return Err(FrameError::BadRange { start, end });
        }
        let frames = ((end - start) / FRAME_SIZE) as usize;
        self.start = start;
        self.frames = frames;
        self.free = frames;
        self.hint = 0;
        self.bitmap = [u64::MAX; WORDS];
        for i in 0..frames {
            self.bitmap[i / 64] &= !(1 << (i % 64));
        }
        Ok(())
    }

    /// Total frames managed.
    pub fn total_frames(&self) -> usize {
        self.frames
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> usize {
        self.free
    }

    /// The managed range `[start, end)`.
    pub fn range(&self) -> (u64, u64) {
        (self.start, self.start + self.frames as u64 * FRAME_SIZE)
    }

    fn bit(&self, i: usize) -> bool {
        self.bitmap[i / 64] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: usize, used: bool) {
        if used {
            self.bitmap[i / 64] |= 1 << (i % 64);
        } else {
            self.bitmap[i / 64] &= !(1 << (i % 64));
        }
    }

    fn addr(&self, i: usize) -> u64 {
        self.start + i as u64 * FRAME_SIZE
    }

    /// Index of the frame at `addr`, checking alignment and ownership.
    fn index(&self, addr: u64) -> Result<usize, FrameError> {
        if !addr.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::Misaligned(addr));
        }
        if addr < self.start || (addr - self.start) / FRAME_SIZE >= self.frames as u64 {
            return Err(FrameError::NotOwned(addr));
        }
        Ok(((addr - self.start) / FRAME_SIZE) as usize)
    }

    /// Checks that `count` frames from `addr` are all managed; returns the
    /// first index.
    fn run(&self, addr: u64, count: usize) -> Result<usize, FrameError> {
        if count == 0 {
            return Err(FrameError::BadRequest);
        }
        let first = self.index(addr)?;
        if first + count > self.frames {
            return Err(FrameError::NotOwned(self.addr(self.frames)));
        }
        Ok(first)
    }

    /// Whether the frame at `addr` is allocated (`None` if not managed).
    pub fn is_allocated(&self, addr: u64) -> Option<bool> {
        self.index(addr).ok().map(|i| self.bit(i))
    }

    /// Allocates one frame; returns its physical address.
    pub fn alloc(&mut self) -> Result<u64, FrameError> {
        let words = self.frames.div_ceil(64);
        if self.free == 0 || words == 0 {
            return Err(FrameError::OutOfMemory);
        }
        for k in 0..words {
            let w = (self.hint + k) % words;
            let bits = self.bitmap[w];
            if bits != u64::MAX {
                let i = w * 64 + (!bits).trailing_zeros() as usize;
                self.set(i, true);
                self.free -= 1;
                self.hint = w;
                return Ok(self.addr(i));
            }
        }
        Err(FrameError::OutOfMemory)
    }

    /// Allocates `count` physically contiguous frames whose first address
    /// is a multiple of `align` (a power of two; values below 4 KiB mean
    /// 4 KiB). Lowest fit first.
    pub fn alloc_contiguous(&mut self, count: usize, align: u64) -> Result<u64, FrameError> {
        if count == 0 || !align.is_power_of_two() {
            return Err(FrameError::BadRequest);
        }
        if count > self.free {
            return Err(FrameError::OutOfMemory);
        }
        let align = align.max(FRAME_SIZE);
        // First index whose address is aligned, then every `step` frames.
        let step = (align / FRAME_SIZE) as usize;
        let base = ((self.start.next_multiple_of(align) - self.start) / FRAME_SIZE) as usize;
        let mut i = base;
        'candidates: while i + count <= self.frames {
            // Check from the end of the run: a used frame there skips most.
            for j in (i..i + count).rev() {
                if self.bit(j) {
                    // Next aligned candidate past the used frame.
                    i = base + (j + 1 - base).div_ceil(step) * step;
                    continue 'candidates;
                }
            }
            for j in i..i + count {
                self.set(j, true);
            }
            self.free -= count;
            return Ok(self.addr(i));
        }
        Err(FrameError::OutOfMemory)
    }

    /// Frees one frame. A frame that is already free is a `DoubleFree`
    /// error and changes nothing.
    pub fn free(&mut self, addr: u64) -> Result<(), FrameError> {
        self.free_contiguous(addr, 1)
    }

    /// Frees `count` frames from `addr`. All-or-nothing: if any frame is
    /// free already or unmanaged, nothing changes and the first bad frame
    /// is named.
    pub fn free_contiguous(&mut self, addr: u64, count: usize) -> Result<(), FrameError> {
        let first = self.run(addr, count)?;
        if let Some(j) = (first..first + count).find(|&j| !self.bit(j)) {
            return Err(FrameError::DoubleFree(self.addr(j)));
        }
        for j in first..first + count {
            self.set(j, false);
        }
        self.free += count;
        self.hint = first / 64;
        Ok(())
    }

    /// Marks `count` frames from `addr` as allocated (memory the kernel
    /// already uses). All-or-nothing, like `free_contiguous`.
    pub fn reserve(&mut self, addr: u64, count: usize) -> Result<(), FrameError> {
        let first = self.run(addr, count)?;
        if let Some(j) = (first..first + count).find(|&j| self.bit(j)) {
            return Err(FrameError::AlreadyAllocated(self.addr(j)));
        }
        for j in first..first + count {
            self.set(j, true);
        }
        self.free -= count;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::collections::BTreeSet;
    use std::vec::Vec;
    use svsm_testkit::Rng;

    const START: u64 = 0x0100_0000;

    fn fa(frames: u64) -> Box<FrameAllocator> {
        let mut a = Box::new(FrameAllocator::empty());
        a.init(START, START + frames * FRAME_SIZE).unwrap();
        a
    }

    #[test]
    fn init_validation() {
        let mut a = Box::new(FrameAllocator::empty());
        assert_eq!(a.alloc(), Err(FrameError::OutOfMemory));
        assert_eq!(
            a.init(START + 1, START + 0x2000),
            Err(FrameError::Misaligned(START + 1))
        );
        assert_eq!(
            a.init(START, START),
            Err(FrameError::BadRange {
                start: START,
                end: START
            })
        );
        let too_big = START + (MAX_FRAMES as u64 + 1) * FRAME_SIZE;
        assert_eq!(
            a.init(START, too_big),
            Err(FrameError::BadRange {
                start: START,
                end: too_big
            })
        );
        a.init(START, START + MAX_FRAMES as u64 * FRAME_SIZE)
            .unwrap();
        assert_eq!(a.total_frames(), MAX_FRAMES);
        assert_eq!(a.free_frames(), MAX_FRAMES);
    }

    #[test]
    fn alloc_all_then_exhausted_then_reuse() {
        let mut a = fa(100);
        let mut got = BTreeSet::new();
        for _ in 0..100 {
            let f = a.alloc().unwrap();
            assert!((START..START + 100 * FRAME_SIZE).contains(&f) && f.is_multiple_of(FRAME_SIZE));
            assert!(got.insert(f), "frame {f:#x} handed out twice");
        }
        assert_eq!(a.alloc(), Err(FrameError::OutOfMemory));
        assert_eq!(a.free_frames(), 0);
        let f = START + 37 * FRAME_SIZE;
        a.free(f).unwrap();
        assert_eq!(a.is_allocated(f), Some(false));
        assert_eq!(a.alloc(), Ok(f));
    }

    #[test]
    fn double_free_and_bad_frees() {
        let mut a = fa(10);
        let f = a.alloc().unwrap();
        a.free(f).unwrap();
        assert_eq!(a.free(f), Err(FrameError::DoubleFree(f)));
        assert_eq!(a.free(f + 8), Err(FrameError::Misaligned(f + 8)));
        assert_eq!(
            a.free(START - FRAME_SIZE),
            Err(FrameError::NotOwned(START - FRAME_SIZE))
        );
        let end = START + 10 * FRAME_SIZE;
        assert_eq!(a.free(end), Err(FrameError::NotOwned(end)));
        assert_eq!(a.free_frames(), 10);
        // All-or-nothing contiguous free.
        let run = a.alloc_contiguous(3, FRAME_SIZE).unwrap();
        a.free(run + FRAME_SIZE).unwrap();
        assert_eq!(
            a.free_contiguous(run, 3),
            Err(FrameError::DoubleFree(run + FRAME_SIZE))
        );
        assert_eq!(a.is_allocated(run), Some(true));
        assert_eq!(a.is_allocated(run + 2 * FRAME_SIZE), Some(true));
        assert_eq!(a.free_frames(), 8);
        assert_eq!(a.free_contiguous(run, 0), Err(FrameError::BadRequest));
        assert_eq!(
            a.free_contiguous(START + 9 * FRAME_SIZE, 2),
            Err(FrameError::NotOwned(end))
        );
    }

    #[test]
    fn contiguous_and_aligned() {
        let mut a = fa(1024);
        a.alloc().unwrap(); // frame 0 used
        let r = a.alloc_contiguous(4, FRAME_SIZE).unwrap();
        assert_eq!(r, START + FRAME_SIZE);
        let big = a.alloc_contiguous(512, 2 << 20).unwrap();
        assert_eq!(big % (2 << 20), 0);
        assert_eq!(
            big,
            START + (2 << 20),
            "first 2 MiB boundary after the used frames"
        );
        for k in 0..512 {
            assert_eq!(a.is_allocated(big + k * FRAME_SIZE), Some(true));
        }
        assert_eq!(
            a.alloc_contiguous(512, 2 << 20),
            Err(FrameError::OutOfMemory)
        );
        assert_eq!(
            a.alloc_contiguous(3, 3 * FRAME_SIZE),
            Err(FrameError::BadRequest)
        );
        assert_eq!(
            a.alloc_contiguous(0, FRAME_SIZE),
            Err(FrameError::BadRequest)
        );
        assert_eq!(a.free_frames(), 1024 - 1 - 4 - 512);
    }

    #[test]
    fn alignment_with_unaligned_start() {
        let mut a = Box::new(FrameAllocator::empty());
        let start = 0x0100_3000;
        a.init(start, start + 64 * FRAME_SIZE).unwrap();
        let r = a.alloc_contiguous(2, 0x8000).unwrap();
        assert_eq!(r, 0x0100_8000);
        let r2 = a.alloc_contiguous(9, 0x8000).unwrap();
        assert_eq!(r2, 0x0101_0000);
    }

    #[test]
    fn reserve() {
        let mut a = fa(64);
        a.reserve(START, 3).unwrap();
        assert_eq!(a.alloc(), Ok(START + 3 * FRAME_SIZE));
        assert_eq!(
            a.reserve(START + 2 * FRAME_SIZE, 4),
            Err(FrameError::AlreadyAllocated(START + 2 * FRAME_SIZE))
        );
        assert_eq!(a.free_frames(), 60);
        assert_eq!(a.is_allocated(START + 5 * FRAME_SIZE), Some(false));
    }

    #[test]
    fn random_sequences_match_shadow() {
        for seed in 1..20u64 {
            let mut rng = Rng::new(seed);
            let frames = 200 + (rng.next_u64() % 300) as usize;
            let mut a = fa(frames as u64);
            let mut shadow = std::vec![false; frames];
            let mut live: Vec<(u64, usize)> = Vec::new();
            for _ in 0..3000 {
                match rng.next_u64() % 4 {
                    0 | 1 => {
                        let n = 1 + (rng.next_u64() % 8) as usize;
                        let align = FRAME_SIZE << (rng.next_u64() % 4);
                        let res = if n == 1 && align == FRAME_SIZE {
                            a.alloc()
                        } else {
                            a.alloc_contiguous(n, align)
                        };
                        match res {
                            Ok(p) => {
                                assert_eq!(p % align, 0);
                                let i = ((p - START) / FRAME_SIZE) as usize;
                                for s in &mut shadow[i..i + n] {
                                    assert!(!*s, "overlapping allocation at {p:#x}");
                                    *s = true;
                                }
                                live.push((p, n));
                            }
                            Err(FrameError::OutOfMemory) => {
                                // Must really have no aligned free run.
                                let base = (START.next_multiple_of(align) - START) / FRAME_SIZE;
                                let step = (align / FRAME_SIZE) as usize;
                                let fits = (base as usize..frames).step_by(step).any(|i| {
                                    i + n <= frames && shadow[i..i + n].iter().all(|s| !s)
                                });
                                assert!(!fits, "OOM although a run of {n} fits");
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                    _ if !live.is_empty() => {
                        let k = (rng.next_u64() as usize) % live.len();
                        let (p, n) = live.swap_remove(k);
                        a.free_contiguous(p, n).unwrap();
                        let i = ((p - START) / FRAME_SIZE) as usize;
                        shadow[i..i + n].iter_mut().for_each(|s| *s = false);
                        assert_eq!(a.free(p), Err(FrameError::DoubleFree(p)));
                    }
                    _ => {}
                }
                assert_eq!(a.free_frames(), shadow.iter().filter(|s| !**s).count());
            }
        }
    }
}
