//! Page validation policy over PVALIDATE and RMPADJUST (AMD APM vol. 3;
//! return codes from the instruction descriptions): 2 MiB pages where the
//! range allows, 4 KiB pages when the RMP holds the region as 4 KiB entries
//! (FAIL_SIZEMISMATCH), every page zeroed once validated (its old contents
//! are the host's) and before it is rescinded (nothing of the SVSM's leaks),
//! guard pages never validated (an access to them must fault), and a page
//! that was already valid treated as an attack (the hypervisor remapped it).

use crate::hw::{RmpPageSize, SnpHardware};
use core::ops::Range;

pub const FAIL_INPUT: u32 = 1;
pub const FAIL_PERMISSION: u32 = 2;
pub const FAIL_SIZEMISMATCH: u32 = 6;

const PAGE: u64 = 0x1000;
const LARGE: u64 = 0x20_0000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValidationError {
    /// The range is not 4 KiB aligned or wraps.
    BadRange,
    /// PVALIDATE FAIL_INPUT at `va`.
    FailInput(u64),
    /// PVALIDATE FAIL_SIZEMISMATCH on a 4 KiB page at `va`.
    SizeMismatch(u64),
    /// The page at `va` already had the requested state (CF set).
    Unchanged(u64),
    /// Another return code at `va`.
    Failed { va: u64, code: u32 },
}

/// Which way PVALIDATE goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    Validate,
    Rescind,
}

fn check(va: u64, code: u32, unchanged: bool) -> Result<(), ValidationError> {
    match (code, unchanged) {
        (0, false) => Ok(()),
        (0, true) => Err(ValidationError::Unchanged(va)),
        (FAIL_INPUT, _) => Err(ValidationError::FailInput(va)),
        (FAIL_SIZEMISMATCH, _) => Err(ValidationError::SizeMismatch(va)),
        (code, _) => Err(ValidationError::Failed { va, code }),
    }
}

/// One page of `size` at `va`: zero before a rescind, PVALIDATE, zero
/// after a validation.
fn page<H: SnpHardware>(
    hw: &mut H,
    va: u64,
    size: RmpPageSize,
    op: Validation,
) -> Result<(), ValidationError> {
    if op == Validation::Rescind {
        hw.zero(va, size.bytes());
    }
    let r = hw.pvalidate(va, size, op == Validation::Validate);
    check(va, r.code, r.unchanged)?;
    if op == Validation::Validate {
        hw.zero(va, size.bytes());
    }
    Ok(())
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Validates or rescinds the pages mapped at [`va`, `va + len`), skipping
/// every page inside `guards` (they stay invalid and unmapped). 2 MiB
/// pages where a whole aligned 2 MiB holds no guard; on FAIL_SIZEMISMATCH
/// the 2 MiB region is done page by page.
pub fn validate_range<H: SnpHardware>(
    hw: &mut H,
    va: u64,
    len: u64,
    op: Validation,
    guards: &[Range<u64>],
) -> Result<(), ValidationError> {
    let end = va.checked_add(len).ok_or(ValidationError::BadRange)?;
    if !va.is_multiple_of(PAGE) || !len.is_multiple_of(PAGE) {
        return Err(ValidationError::BadRange);
    }
    let mut at = va;
    while at < end {
        let large = at..at + LARGE;
        if at.is_multiple_of(LARGE)
            && end - at >= LARGE
            && !guards.iter().any(|g| overlaps(g, &large))
        {
            match page(hw, at, RmpPageSize::Size2M, op) {
                Err(ValidationError::SizeMismatch(_)) => {
                    for p in (at..at + LARGE).step_by(PAGE as usize) {
                        page(hw, p, RmpPageSize::Size4K, op)?;
                    }
                }
                r => r?,
            }
            at += LARGE;
            continue;
        }
        if !guards.iter().any(|g| g.contains(&at)) {
            page(hw, at, RmpPageSize::Size4K, op)?;
        }
        at += PAGE;
    }
    Ok(())
}

/// RMPADJUST permissions (APM vol. 3, RMPADJUST: RDX bits 15:8).
pub mod perm {
    pub const READ: u8 = 1 << 0;
    pub const WRITE: u8 = 1 << 1;
    pub const EXEC_USER: u8 = 1 << 2;
    pub const EXEC_SUPERVISOR: u8 = 1 << 3;
    pub const ALL: u8 = READ | WRITE | EXEC_USER | EXEC_SUPERVISOR;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RmpadjustError {
    /// A target VMPL outside 1..=3 (VMPL0's permissions never change).
    BadVmpl(u8),
    FailInput(u64),
    /// The SVSM is not at a higher privilege than the target.
    FailPermission(u64),
    SizeMismatch(u64),
    Failed {
        va: u64,
        code: u32,
    },
}

/// RMPADJUST of the 4 KiB page at `va`: `perms` for `target_vmpl`, and
/// whether it becomes a VMSA page.
pub fn rmpadjust<H: SnpHardware>(
    hw: &mut H,
    va: u64,
    target_vmpl: u8,
    perms: u8,
    vmsa: bool,
) -> Result<(), RmpadjustError> {
    if !(1..=3).contains(&target_vmpl) {
        return Err(RmpadjustError::BadVmpl(target_vmpl));
    }
    let attrs = u64::from(target_vmpl) | (u64::from(perms) << 8) | (u64::from(vmsa) << 16);
    match hw.rmpadjust(va, RmpPageSize::Size4K, attrs) {
        0 => Ok(()),
        FAIL_INPUT => Err(RmpadjustError::FailInput(va)),
        FAIL_PERMISSION => Err(RmpadjustError::FailPermission(va)),
        FAIL_SIZEMISMATCH => Err(RmpadjustError::SizeMismatch(va)),
        code => Err(RmpadjustError::Failed { va, code }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{Event, FakeHw};
    use crate::hw::PvalidateResult;
    use std::boxed::Box;
    use std::vec::Vec;

    fn ok() -> PvalidateResult {
        PvalidateResult {
            code: 0,
            unchanged: false,
        }
    }

    #[test]
    fn large_pages_where_possible_and_zeroed_after_validation() {
        let mut hw = FakeHw::new();
        // 4K head, one 2M page, 4K tail.
        validate_range(&mut hw, 0x1f_f000, 0x20_2000, Validation::Validate, &[]).unwrap();
        assert_eq!(
            hw.pvalidates(),
            [
                (0x1f_f000, RmpPageSize::Size4K, true),
                (0x20_0000, RmpPageSize::Size2M, true),
                (0x40_0000, RmpPageSize::Size4K, true),
            ]
        );
        assert_eq!(
            &hw.events[2..4],
            [
                Event::Pvalidate {
                    va: 0x20_0000,
                    size: RmpPageSize::Size2M,
                    validate: true
                },
                Event::Zero {
                    va: 0x20_0000,
                    len: 0x20_0000
                }
            ],
            "zeroed right after it is validated"
        );
    }

    #[test]
    fn size_mismatch_falls_back_to_4k_pages() {
        let mut hw = FakeHw::new();
        hw.pvalidate = Box::new(|_, size, _| PvalidateResult {
            code: if size == RmpPageSize::Size2M {
                FAIL_SIZEMISMATCH
            } else {
                0
            },
            unchanged: false,
        });
        validate_range(&mut hw, 0x20_0000, 0x20_0000, Validation::Validate, &[]).unwrap();
        let v = hw.pvalidates();
        assert_eq!(v.len(), 1 + 512);
        assert_eq!(v[0].1, RmpPageSize::Size2M);
        assert!(v[1..].iter().all(|p| p.1 == RmpPageSize::Size4K));
        assert_eq!(v[512].0, 0x3f_f000);
    }

    #[test]
    fn guard_pages_are_never_validated() {
        let mut hw = FakeHw::new();
        let guard = 0x20_3000..0x20_5000;
        let guards = std::vec![guard.clone()];
        validate_range(&mut hw, 0x20_0000, 0x20_0000, Validation::Validate, &guards).unwrap();
        let v = hw.pvalidates();
        assert_eq!(v.len(), 512 - 2, "4K pages around the guard");
        assert!(v.iter().all(|p| p.1 == RmpPageSize::Size4K));
        assert!(!v.iter().any(|p| guard.contains(&p.0)));
        assert!(
            !hw.events
                .iter()
                .any(|e| matches!(e, Event::Zero { va, .. } if guard.contains(va)))
        );
    }

    #[test]
    fn rescind_zeroes_first() {
        let mut hw = FakeHw::new();
        validate_range(&mut hw, 0x5000, 0x1000, Validation::Rescind, &[]).unwrap();
        assert_eq!(
            hw.events,
            [
                Event::Zero {
                    va: 0x5000,
                    len: 0x1000
                },
                Event::Pvalidate {
                    va: 0x5000,
                    size: RmpPageSize::Size4K,
                    validate: false
                }
            ]
        );
    }

    #[test]
    fn failures_are_named_and_stop_the_range() {
        let cases: [(u32, bool, ValidationError); 4] = [
            (0, true, ValidationError::Unchanged(0x6000)),
            (FAIL_INPUT, false, ValidationError::FailInput(0x6000)),
            (
                FAIL_SIZEMISMATCH,
                false,
                ValidationError::SizeMismatch(0x6000),
            ),
            (
                9,
                false,
                ValidationError::Failed {
                    va: 0x6000,
                    code: 9,
                },
            ),
        ];
        for (code, unchanged, want) in cases {
            let mut hw = FakeHw::new();
            hw.pvalidate = Box::new(move |va, _, _| {
                if va == 0x6000 {
                    PvalidateResult { code, unchanged }
                } else {
                    ok()
                }
            });
            let r = validate_range(&mut hw, 0x5000, 0x3000, Validation::Validate, &[]);
            assert_eq!(r, Err(want));
            let done: Vec<u64> = hw.pvalidates().iter().map(|p| p.0).collect();
            assert_eq!(done, [0x5000, 0x6000], "stops at the failing page");
            assert!(!hw.events.contains(&Event::Zero {
                va: 0x6000,
                len: 0x1000
            }));
        }
        let mut hw = FakeHw::new();
        assert_eq!(
            validate_range(&mut hw, 0x5001, 0x1000, Validation::Validate, &[]),
            Err(ValidationError::BadRange)
        );
        assert_eq!(
            validate_range(&mut hw, u64::MAX - 0xfff, 0x2000, Validation::Validate, &[]),
            Err(ValidationError::BadRange)
        );
        assert!(hw.events.is_empty());
    }

    #[test]
    fn rmpadjust_attributes_and_codes() {
        let mut hw = FakeHw::new();
        rmpadjust(&mut hw, 0x7000, 1, perm::ALL, true).unwrap();
        assert_eq!(
            hw.events,
            [Event::Rmpadjust {
                va: 0x7000,
                size: RmpPageSize::Size4K,
                attrs: 0x1_0f01
            }]
        );
        assert_eq!(
            rmpadjust(&mut hw, 0x7000, 0, perm::READ, false),
            Err(RmpadjustError::BadVmpl(0))
        );
        for (code, want) in [
            (FAIL_INPUT, RmpadjustError::FailInput(0x7000)),
            (FAIL_PERMISSION, RmpadjustError::FailPermission(0x7000)),
            (FAIL_SIZEMISMATCH, RmpadjustError::SizeMismatch(0x7000)),
            (
                4,
                RmpadjustError::Failed {
                    va: 0x7000,
                    code: 4,
                },
            ),
        ] {
            hw.rmpadjust = Box::new(move |_, _, _| code);
            assert_eq!(rmpadjust(&mut hw, 0x7000, 2, perm::READ, false), Err(want));
        }
    }
}
