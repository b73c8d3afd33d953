//! The hosted guest's page states, as the native platform tracks them in
//! place of the RMP: one byte per 4 KiB page of guest RAM (validated as a
//! 4 KiB page, part of a validated 2 MiB page, a sealed VMSA). Pure logic:
//! the kernel's backend (`guest/backend.rs`) keeps the nested page tables
//! in step with it; the host tests check it against the protocol crate's
//! model backend.

use alloc::vec;
use alloc::vec::Vec;
use svsm_defs::svsm::EntryPageSize;

const PAGE: u64 = 0x1000;
const PAGE_2M: u64 = 0x20_0000;
const PAGES_2M: usize = (PAGE_2M / PAGE) as usize;

const VALID_4K: u8 = 1 << 0;
/// Set on every one of the 512 pages of a page validated as 2 MiB.
const VALID_2M: u8 = 1 << 1;
const SEALED: u8 = 1 << 2;
const VALID: u8 = VALID_4K | VALID_2M;

/// PVALIDATE's size check failed: a 4 KiB request inside a 2 MiB page, or
/// a 2 MiB request over 4 KiB pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeMismatch;

/// Page states of guest RAM `[start, start + pages * 4 KiB)`.
pub struct PageStates {
    start: u64,
    pages: Vec<u8>,
}

impl PageStates {
    /// Guest RAM `[start, end)`, validated as 4 KiB pages below
    /// `validated_end`.
    pub fn new(start: u64, end: u64, validated_end: u64) -> Self {
        let count = (end.saturating_sub(start) / PAGE) as usize;
        let mut pages = vec![0u8; count];
        let pre = (validated_end.saturating_sub(start) / PAGE) as usize;
        pages[..pre.min(count)].fill(VALID_4K);
        Self { start, pages }
    }

    fn index(&self, gpa: u64) -> Option<usize> {
        let i = usize::try_from(gpa.checked_sub(self.start)? / PAGE).ok()?;
        (i < self.pages.len()).then_some(i)
    }

    fn state(&self, gpa: u64) -> u8 {
        self.index(gpa).map_or(0, |i| self.pages[i])
    }

    fn mark(&mut self, gpa: u64, size: EntryPageSize, bits: u8, on: bool) {
        let Some(first) = self.index(gpa) else { return };
        let n = (size.bytes() / PAGE) as usize;
        for p in self.pages[first..].iter_mut().take(n) {
            if on {
                *p |= bits;
            } else {
                *p &= !bits;
            }
        }
    }

    /// The validated page covering `gpa`: its start and size.
    pub fn covering(&self, gpa: u64) -> Option<(u64, EntryPageSize)> {
        let st = self.state(gpa);
        if st & VALID_4K != 0 {
            Some((gpa & !(PAGE - 1), EntryPageSize::Size4K))
        } else if st & VALID_2M != 0 {
            Some((gpa & !(PAGE_2M - 1), EntryPageSize::Size2M))
        } else {
            None
        }
    }

    pub fn is_sealed(&self, gpa: u64) -> bool {
        self.state(gpa) & SEALED != 0
    }

    pub fn set_sealed(&mut self, gpa: u64, sealed: bool) {
        self.mark(gpa, EntryPageSize::Size4K, SEALED, sealed);
    }

    /// Whether a page of `size` at `gpa` is validated as that size.
    fn current(&self, gpa: u64, size: EntryPageSize) -> Result<bool, SizeMismatch> {
        match size {
            EntryPageSize::Size4K => match self.state(gpa) & VALID {
                0 => Ok(false),
                VALID_4K => Ok(true),
                _ => Err(SizeMismatch),
            },
            EntryPageSize::Size2M => {
                let Some(first) = self.index(gpa) else {
                    return Ok(false);
                };
                let range = &self.pages[first..(first + PAGES_2M).min(self.pages.len())];
                match range[0] & VALID {
                    VALID_2M => Ok(true),
                    0 if range.iter().all(|p| p & VALID == 0) => Ok(false),
                    _ => Err(SizeMismatch),
                }
            }
        }
    }

    /// PVALIDATE of the page of `size` at `gpa` (inside guest RAM, aligned
    /// to its size: the caller checked): whether its state changed.
    pub fn pvalidate(
        &mut self,
        gpa: u64,
        size: EntryPageSize,
        validate: bool,
    ) -> Result<bool, SizeMismatch> {
        if self.current(gpa, size)? == validate {
            return Ok(false);
        }
        let bit = match size {
            EntryPageSize::Size4K => VALID_4K,
            EntryPageSize::Size2M => VALID_2M,
        };
        self.mark(gpa, size, bit, validate);
        Ok(true)
    }

    /// Forgets the validation of the page of `size` at `gpa` (a withdrawn
    /// page goes back to the guest invalidated).
    pub fn invalidate(&mut self, gpa: u64, size: EntryPageSize) {
        self.mark(gpa, size, VALID, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use svsm_protocol::model::FakeBackend;
    use svsm_protocol::{CoreBackend, GpaRange, PvalidateDone};

    const RAM: u64 = 0x80_0000;

    #[test]
    fn sizes_and_mismatches() {
        let mut p = PageStates::new(0, RAM, 0x1000);
        assert_eq!(p.covering(0x10), Some((0, EntryPageSize::Size4K)));
        assert_eq!(p.covering(0x1000), None);
        let s2 = EntryPageSize::Size2M;
        assert_eq!(p.pvalidate(0x20_0000, s2, true), Ok(true));
        assert_eq!(p.covering(0x3f_f000), Some((0x20_0000, s2)));
        assert_eq!(
            p.pvalidate(0x20_1000, EntryPageSize::Size4K, false),
            Err(SizeMismatch)
        );
        assert_eq!(
            p.pvalidate(0, s2, true),
            Err(SizeMismatch),
            "over a 4 KiB page"
        );
        assert_eq!(p.pvalidate(0x20_0000, s2, true), Ok(false));
        assert_eq!(p.pvalidate(0x20_0000, s2, false), Ok(true));
        assert_eq!(p.covering(0x3f_f000), None);
        p.set_sealed(0x5000, true);
        assert!(p.is_sealed(0x5fff) && !p.is_sealed(0x6000));
        p.set_sealed(0x5000, false);
        assert!(!p.is_sealed(0x5000));
        // Outside guest RAM: nothing is validated, nothing changes.
        assert_eq!(p.covering(RAM), None);
        assert!(!p.is_sealed(RAM + 0x1000));
    }

    /// Random PVALIDATE sequences against the protocol crate's model
    /// backend (an independent implementation over a B-tree): the same
    /// results and the same validated pages after every step.
    #[test]
    fn agrees_with_the_model_backend() {
        let mut rng = svsm_testkit::Rng::new(0x5eed_9a9e);
        let mut seen = [0usize; 3]; // unchanged, changed, mismatch
        for _round in 0..20 {
            let model = FakeBackend::new(
                RAM,
                &[GpaRange {
                    start: RAM,
                    end: RAM,
                }],
            );
            model.validate_range(0, 0x10_0000);
            let mut p = PageStates::new(0, RAM, 0x10_0000);
            for step in 0..400 {
                let (size, gpa) = if rng.below(3) == 0 {
                    (EntryPageSize::Size2M, rng.below(RAM / PAGE_2M) * PAGE_2M)
                } else {
                    // A third of the requests are 2 MiB ones: over 4 KiB
                    // pages of the same range they mismatch.
                    (EntryPageSize::Size4K, rng.below(RAM / PAGE) * PAGE)
                };
                let validate = rng.below(2) == 0;
                let want = model.pvalidate(gpa, size, validate);
                let got = p.pvalidate(gpa, size, validate);
                let want = want
                    .map(|d| d == PvalidateDone::Changed)
                    .map_err(|_| SizeMismatch);
                assert_eq!(
                    got, want,
                    "step {step}: {size:?} {gpa:#x} validate={validate}"
                );
                seen[match got {
                    Ok(false) => 0,
                    Ok(true) => 1,
                    Err(_) => 2,
                }] += 1;
                for probe in [gpa, gpa + size.bytes() - PAGE, rng.below(RAM / PAGE) * PAGE] {
                    let model_has = model
                        .state
                        .lock()
                        .validated
                        .range(..=probe)
                        .next_back()
                        .is_some_and(|(&s, &z)| probe < s + z.bytes());
                    assert_eq!(
                        p.covering(probe).is_some(),
                        model_has,
                        "step {step}: page {probe:#x}"
                    );
                }
            }
        }
        assert!(
            seen.iter().all(|&n| n > 100),
            "every outcome is exercised: {seen:?}"
        );
    }
}
