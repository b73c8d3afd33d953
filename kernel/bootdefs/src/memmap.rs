//! Validation of the loader-provided IGVM memory map. The host (VMM) fills
//! it, so the SVSM treats it as untrusted input: every defect is an error
//! naming the entry, never a panic.

use crate::MemoryMapEntry;
use crate::layout::PAGE_SIZE;
use core::fmt;
use igvm_defs::MemoryMapEntryType;
use zerocopy::FromBytes;

/// Summary of a valid memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemorySummary {
    /// Number of entries before the terminator.
    pub entries: usize,
    /// Bytes of normal memory.
    pub ram_bytes: u64,
    /// End of the highest normal-memory range.
    pub ram_end: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryMapError {
    /// The area holds no terminating zero-page entry.
    Unterminated,
    /// No normal memory at all.
    Empty,
    /// Entry `n` starts below the end of entry `n - 1` (unsorted or overlapping).
    Unsorted(usize),
    /// Entry `n` overflows the 64-bit physical address space.
    Overflow(usize),
    /// The kernel region is not inside one normal-memory entry.
    KernelRegionNotRam { start: u64, end: u64 },
}

impl fmt::Display for MemoryMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unterminated => f.write_str("memory map has no terminating entry"),
            Self::Empty => f.write_str("memory map describes no normal memory"),
            Self::Unsorted(n) => write!(
                f,
                "memory map entry {n} is unsorted or overlaps entry {}",
                n - 1
            ),
            Self::Overflow(n) => write!(f, "memory map entry {n} overflows the address space"),
            Self::KernelRegionNotRam { start, end } => {
                write!(
                    f,
                    "kernel region {start:#x}..{end:#x} is not inside normal memory"
                )
            }
        }
    }
}

/// One entry as (start, end, is normal memory), overflow-checked.
fn range(n: usize, e: &MemoryMapEntry) -> Result<(u64, u64, bool), MemoryMapError> {
    let start = e
        .starting_gpa_page_number
        .checked_mul(PAGE_SIZE)
        .ok_or(MemoryMapError::Overflow(n))?;
    let len = e
        .number_of_pages
        .checked_mul(PAGE_SIZE)
        .ok_or(MemoryMapError::Overflow(n))?;
    let end = start.checked_add(len).ok_or(MemoryMapError::Overflow(n))?;
    Ok((start, end, e.entry_type == MemoryMapEntryType::MEMORY))
}

/// The entries of the memory-map parameter area `area`, up to the
/// terminating zero-page entry.
fn entries(area: &[u8]) -> impl Iterator<Item = MemoryMapEntry> + '_ {
    area.chunks_exact(core::mem::size_of::<MemoryMapEntry>())
        .filter_map(|c| MemoryMapEntry::read_from_bytes(c).ok())
        .take_while(|e| e.number_of_pages != 0)
}

/// Checks the structure of the memory-map parameter area `area`: terminated,
/// sorted, non-overlapping, no overflow, some normal memory.
pub fn validate(area: &[u8]) -> Result<MemorySummary, MemoryMapError> {
    let size = core::mem::size_of::<MemoryMapEntry>();
    let count = entries(area).count();
    if count == area.len() / size {
        return Err(MemoryMapError::Unterminated);
    }
    let (mut ram_bytes, mut ram_end, mut prev_end) = (0u64, 0u64, 0u64);
    for (n, e) in entries(area).enumerate() {
        let (start, end, ram) = range(n, &e)?;
        if n > 0 && start < prev_end {
            return Err(MemoryMapError::Unsorted(n));
        }
        prev_end = end;
        if ram {
            ram_bytes = ram_bytes.saturating_add(end - start);
            ram_end = end;
        }
    }
    if ram_bytes == 0 {
        return Err(MemoryMapError::Empty);
    }
    Ok(MemorySummary {
        entries: count,
        ram_bytes,
        ram_end,
    })
}

/// [`validate`], and the kernel region [kstart, kend) must lie inside one
/// normal-memory entry.
pub fn validate_for_kernel(
    area: &[u8],
    kstart: u64,
    kend: u64,
) -> Result<MemorySummary, MemoryMapError> {
    let s = validate(area)?;
    let inside = entries(area)
        .enumerate()
        .filter_map(|(n, e)| range(n, &e).ok())
        .any(|(start, end, ram)| ram && start <= kstart && kend <= end);
    if inside {
        Ok(s)
    } else {
        Err(MemoryMapError::KernelRegionNotRam {
            start: kstart,
            end: kend,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    fn entry(start: u64, pages: u64, ty: MemoryMapEntryType) -> MemoryMapEntry {
        MemoryMapEntry {
            starting_gpa_page_number: start / PAGE_SIZE,
            number_of_pages: pages,
            entry_type: ty,
            flags: 0,
            reserved: 0,
        }
    }

    fn area(entries: &[MemoryMapEntry]) -> [u8; 4096] {
        let mut a = [0u8; 4096];
        for (i, e) in entries.iter().enumerate() {
            a[i * 24..i * 24 + 24].copy_from_slice(e.as_bytes());
        }
        a
    }

    const K: (u64, u64) = (0x100_0000, 0x500_0000);

    #[test]
    fn accepts_a_pc_map() {
        let a = area(&[entry(0, 0x2_0000, MemoryMapEntryType::MEMORY)]);
        let s = validate_for_kernel(&a, K.0, K.1).unwrap();
        assert_eq!(
            s,
            MemorySummary {
                entries: 1,
                ram_bytes: 512 << 20,
                ram_end: 512 << 20
            }
        );
    }

    #[test]
    fn rejects_defects() {
        let mem = MemoryMapEntryType::MEMORY;
        let res = MemoryMapEntryType::PLATFORM_RESERVED;
        assert_eq!(validate(&[0u8; 48]), Err(MemoryMapError::Empty));
        let small = area(&[entry(0, 0x1000, mem)]);
        assert!(matches!(
            validate_for_kernel(&small, K.0, K.1),
            Err(MemoryMapError::KernelRegionNotRam { .. })
        ));
        let reserved = area(&[entry(0, 0x2_0000, res)]);
        assert_eq!(validate(&reserved), Err(MemoryMapError::Empty));
        let overlap = area(&[
            entry(0, 0x2_0000, mem),
            entry(0x4000_0000, 1, mem),
            entry(0x1000, 1, mem),
        ]);
        assert_eq!(validate(&overlap), Err(MemoryMapError::Unsorted(2)));
        let huge = area(&[
            entry(0, 0x2_0000, mem),
            MemoryMapEntry {
                starting_gpa_page_number: u64::MAX / 2,
                number_of_pages: 5,
                entry_type: mem,
                flags: 0,
                reserved: 0,
            },
        ]);
        assert_eq!(validate(&huge), Err(MemoryMapError::Overflow(1)));
        // No terminator: every slot of the area is used.
        let full: [u8; 240] = core::array::from_fn(|i| if i % 24 == 8 { 1 } else { 0 });
        let mut full = full;
        for (n, c) in full.chunks_exact_mut(24).enumerate() {
            c[..8].copy_from_slice(&(n as u64 * 16).to_le_bytes());
        }
        assert_eq!(validate(&full), Err(MemoryMapError::Unterminated));
    }

    #[test]
    fn never_panics_on_random_bytes() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut a = [0u8; 4096];
        for _ in 0..2000 {
            for b in a.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = if x.is_multiple_of(3) { 0 } else { x as u8 };
            }
            let _ = validate_for_kernel(&a, K.0, K.1);
            let _ = validate(&a[..(x % 4096) as usize]);
        }
    }
}
