//! x86-64 4-level page-table entry bits and the walk shared by the host
//! (igvm-build builds the tables) and the kernel (edits them at run time).

pub const PRESENT: u64 = 1 << 0;
pub const WRITABLE: u64 = 1 << 1;
pub const ACCESSED: u64 = 1 << 5;
pub const DIRTY: u64 = 1 << 6;
/// PS: a 2 MiB (level 1) or 1 GiB (level 2) leaf.
pub const HUGE: u64 = 1 << 7;
pub const NO_EXECUTE: u64 = 1 << 63;
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Index of `va` in the table at `level` (3 = PML4 .. 0 = PT).
pub const fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * level)) & 0x1ff) as usize
}

/// Translates `va` through the tables rooted at physical address `root`.
/// `entry(table_pa, index)` reads one entry (`None` when the table cannot be
/// read). Returns (physical address, leaf entry flags).
pub fn translate(
    root: u64,
    va: u64,
    mut entry: impl FnMut(u64, usize) -> Option<u64>,
) -> Option<(u64, u64)> {
    let mut table = root & ADDR_MASK;
    for level in (0..4).rev() {
        let e = entry(table, index(va, level))?;
        if e & PRESENT == 0 {
            return None;
        }
        if level == 0 || e & HUGE != 0 {
            let size = 1u64 << (12 + 9 * level);
            return Some((
                (e & ADDR_MASK & !(size - 1)) + (va & (size - 1)),
                e & !ADDR_MASK,
            ));
        }
        table = e & ADDR_MASK;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_4k_and_2m_leaves() {
        // PML4 at 0x1000 -> PDPT 0x2000 -> PD 0x3000: 2 MiB leaf at index 1,
        // PT 0x4000 at index 0 with a 4 KiB leaf at index 3.
        let read = |t: u64, i: usize| -> Option<u64> {
            Some(match (t, i) {
                (0x1000, 0) => 0x2000 | PRESENT,
                (0x2000, 0) => 0x3000 | PRESENT,
                (0x3000, 0) => 0x4000 | PRESENT,
                (0x3000, 1) => 0x4000_0000 | PRESENT | HUGE | NO_EXECUTE,
                (0x4000, 3) => 0x9000 | PRESENT | WRITABLE,
                (0x1000..=0x4000, _) => 0,
                _ => return None,
            })
        };
        assert_eq!(
            translate(0x1000, 0x3123, read),
            Some((0x9123, PRESENT | WRITABLE))
        );
        assert_eq!(
            translate(0x1000, 0x20_1234, read),
            Some((0x4000_1234, PRESENT | HUGE | NO_EXECUTE))
        );
        assert_eq!(translate(0x1000, 0x5000, read), None);
        assert_eq!(translate(0x8000, 0x3123, read), None);
        assert_eq!(index(0xffff_ffff_8000_0000, 3), 511);
    }
}
