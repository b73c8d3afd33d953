//! x86-64 4-level page-table entries (AMD APM vol. 2, section 5.3) and the
//! walk shared by the host (igvm-build builds the tables) and the kernel
//! (edits them at run time), with the platform's memory-encryption bit.

use bitflags::bitflags;

bitflags! {
    /// The flag bits of a page-table entry (everything but the address).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct PteFlags: u64 {
        const PRESENT = 1 << 0;
        const WRITABLE = 1 << 1;
        const USER = 1 << 2;
        const WRITE_THROUGH = 1 << 3;
        const CACHE_DISABLE = 1 << 4;
        const ACCESSED = 1 << 5;
        const DIRTY = 1 << 6;
        /// PS: a 2 MiB (level 1) or 1 GiB (level 2) leaf.
        const HUGE = 1 << 7;
        const GLOBAL = 1 << 8;
        const NO_EXECUTE = 1 << 63;
        // Any other bit (address bits, the encryption bit) is kept as is.
        const _ = !0;
    }
}

/// Address bits 51..12 of an entry; a platform's encryption bit lies inside
/// this range and is removed with [`PageEncryption::strip`].
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Index of `va` in the table at `level` (3 = PML4 .. 0 = PT).
pub const fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * level)) & 0x1ff) as usize
}

/// The memory-encryption bits a platform puts into page-table entries.
/// Native: none. SEV-SNP: the C-bit (position from CPUID 0x8000_001F EBX[5:0])
/// marks private (encrypted) pages. TDX: the shared bit (GPAW - 1) marks
/// shared pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageEncryption {
    /// Set in entries of private pages.
    private: u64,
    /// Set in entries of pages shared with the host.
    shared: u64,
}

/// A C-bit or shared-bit position outside the physical address bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadEncryptionBit(pub u32);

impl core::fmt::Display for BadEncryptionBit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "encryption bit position {} is outside physical address bits 32..=51",
            self.0
        )
    }
}

impl PageEncryption {
    /// No encryption bit (the native platform).
    pub const NONE: Self = Self {
        private: 0,
        shared: 0,
    };

    fn bit(pos: u32) -> Result<u64, BadEncryptionBit> {
        if (32..=51).contains(&pos) {
            Ok(1 << pos)
        } else {
            Err(BadEncryptionBit(pos))
        }
    }

    /// SEV-SNP: private pages carry the C-bit at `c_bit`.
    pub fn snp(c_bit: u32) -> Result<Self, BadEncryptionBit> {
        Ok(Self {
            private: Self::bit(c_bit)?,
            shared: 0,
        })
    }

    /// TDX: shared pages carry the shared bit at `shared_bit`.
    pub fn tdx(shared_bit: u32) -> Result<Self, BadEncryptionBit> {
        Ok(Self {
            private: 0,
            shared: Self::bit(shared_bit)?,
        })
    }

    /// Bits to OR into the entry of a private (SVSM-owned) page.
    pub const fn private_bits(self) -> u64 {
        self.private
    }

    /// Bits to OR into the entry of a page shared with the host.
    pub const fn shared_bits(self) -> u64 {
        self.shared
    }

    /// The address in `entry` without any encryption bit.
    pub const fn strip(self, entry: u64) -> u64 {
        entry & ADDR_MASK & !(self.private | self.shared)
    }
}

/// Translates `va` through the tables rooted at physical address `root`.
/// `entry(table_pa, index)` reads one entry (`None` when the table cannot be
/// read). Returns (physical address, leaf entry flags).
pub fn translate(
    root: u64,
    va: u64,
    enc: PageEncryption,
    mut entry: impl FnMut(u64, usize) -> Option<u64>,
) -> Option<(u64, PteFlags)> {
    let mut table = enc.strip(root);
    for level in (0..4).rev() {
        let e = entry(table, index(va, level))?;
        if e & PteFlags::PRESENT.bits() == 0 {
            return None;
        }
        if level == 0 || e & PteFlags::HUGE.bits() != 0 {
            let size = 1u64 << (12 + 9 * level);
            return Some((
                (enc.strip(e) & !(size - 1)) + (va & (size - 1)),
                PteFlags::from_bits_retain(e & !ADDR_MASK),
            ));
        }
        table = enc.strip(e);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = PteFlags::PRESENT.bits();

    #[test]
    fn walks_4k_and_2m_leaves() {
        // PML4 at 0x1000 -> PDPT 0x2000 -> PD 0x3000: 2 MiB leaf at index 1,
        // PT 0x4000 at index 0 with a 4 KiB leaf at index 3.
        let read = |t: u64, i: usize| -> Option<u64> {
            Some(match (t, i) {
                (0x1000, 0) => 0x2000 | P,
                (0x2000, 0) => 0x3000 | P,
                (0x3000, 0) => 0x4000 | P,
                (0x3000, 1) => 0x4000_0000 | P | (PteFlags::HUGE | PteFlags::NO_EXECUTE).bits(),
                (0x4000, 3) => 0x9000 | P | PteFlags::WRITABLE.bits(),
                (0x1000..=0x4000, _) => 0,
                _ => return None,
            })
        };
        let none = PageEncryption::NONE;
        assert_eq!(
            translate(0x1000, 0x3123, none, read),
            Some((0x9123, PteFlags::PRESENT | PteFlags::WRITABLE))
        );
        assert_eq!(
            translate(0x1000, 0x20_1234, none, read),
            Some((
                0x4000_1234,
                PteFlags::PRESENT | PteFlags::HUGE | PteFlags::NO_EXECUTE
            ))
        );
        assert_eq!(translate(0x1000, 0x5000, none, read), None);
        assert_eq!(translate(0x8000, 0x3123, none, read), None);
        assert_eq!(index(0xffff_ffff_8000_0000, 3), 511);
    }

    #[test]
    fn the_c_bit_is_not_part_of_the_address() {
        let snp = PageEncryption::snp(51).unwrap();
        let c = snp.private_bits();
        assert_eq!(c, 1 << 51);
        // Every table entry carries the C-bit, as on SNP.
        let read = |t: u64, i: usize| -> Option<u64> {
            Some(match (t, i) {
                (0x1000, 0) => 0x2000 | P | c,
                (0x2000, 0) => 0x3000 | P | c,
                (0x3000, 0) => 0x4000 | P | c,
                (0x4000, 0) => 0x7000 | P | c,
                _ => 0,
            })
        };
        assert_eq!(
            translate(0x1000 | c, 0x10, snp, read),
            Some((0x7010, PteFlags::PRESENT))
        );
        // Without knowing the C-bit the walk would leave the address space.
        assert_eq!(translate(0x1000, 0x10, PageEncryption::NONE, read), None);
    }

    #[test]
    fn encryption_bit_positions_are_checked() {
        assert_eq!(PageEncryption::snp(47).unwrap().private_bits(), 1 << 47);
        assert_eq!(PageEncryption::tdx(51).unwrap().shared_bits(), 1 << 51);
        assert_eq!(PageEncryption::snp(52), Err(BadEncryptionBit(52)));
        assert_eq!(PageEncryption::snp(0), Err(BadEncryptionBit(0)));
        assert_eq!(PageEncryption::NONE.strip(u64::MAX), ADDR_MASK);
    }
}
