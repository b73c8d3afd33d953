//! x86-64 4-level page tables built on the host. The pages are placed at
//! consecutive guest-physical addresses starting at `base`; the first is the
//! PML4 (the CR3 value).

use anyhow::{Result, bail};
pub use svsm_defs::paging::ADDR_MASK;
use svsm_defs::paging::{PageEncryption, PteFlags, index};

// The entry bits as plain words, for building entries.
pub const PRESENT: u64 = PteFlags::PRESENT.bits();
pub const WRITABLE: u64 = PteFlags::WRITABLE.bits();
pub const ACCESSED: u64 = PteFlags::ACCESSED.bits();
pub const DIRTY: u64 = PteFlags::DIRTY.bits();
pub const HUGE: u64 = PteFlags::HUGE.bits();
pub const NO_EXECUTE: u64 = PteFlags::NO_EXECUTE.bits();

const PAGE: u64 = 4096;
const LARGE: u64 = 2 << 20;

/// Leaf permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
    ReadExecute,
}

impl Access {
    pub fn bits(self) -> u64 {
        // A/D preset: no CPU ever needs to write the tables to mark them.
        let base = PRESENT | ACCESSED | DIRTY;
        match self {
            Access::ReadOnly => base | NO_EXECUTE,
            Access::ReadWrite => base | WRITABLE | NO_EXECUTE,
            Access::ReadExecute => base,
        }
    }
}

pub struct PageTableBuilder {
    base: u64,
    max_pages: usize,
    tables: Vec<Box<[u64; 512]>>,
    /// The platform's encryption bits: every page the builder maps (and
    /// every table) is private, so each entry carries the private bits.
    enc: PageEncryption,
}

fn canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == 0x1ffff
}

impl PageTableBuilder {
    pub fn new(base: u64, max_pages: usize) -> Self {
        assert!(max_pages >= 1 && base.is_multiple_of(PAGE));
        Self {
            base,
            max_pages,
            tables: vec![Box::new([0u64; 512])],
            enc: PageEncryption::NONE,
        }
    }

    /// Tables for a platform with memory encryption: every entry (leaf and
    /// table) marks its page private (the SNP C-bit).
    pub fn with_encryption(base: u64, max_pages: usize, enc: PageEncryption) -> Self {
        Self {
            enc,
            ..Self::new(base, max_pages)
        }
    }

    pub fn root(&self) -> u64 {
        self.base
    }

    /// Bytes of page-table pages used so far.
    pub fn size(&self) -> u64 {
        self.tables.len() as u64 * PAGE
    }

    pub fn end(&self) -> u64 {
        self.base + self.size()
    }

    fn table_index(&self, pa: u64) -> usize {
        ((pa - self.base) / PAGE) as usize
    }

    /// Walks to the table at `leaf_level`, creating intermediate tables.
    fn walk_create(&mut self, va: u64, leaf_level: u32) -> Result<usize> {
        let mut t = 0usize;
        for level in (leaf_level + 1..4).rev() {
            let e = self.tables[t][index(va, level)];
            if e & PRESENT == 0 {
                if self.tables.len() >= self.max_pages {
                    bail!("page-table pool of {} pages exhausted", self.max_pages);
                }
                let pa = self.base + self.tables.len() as u64 * PAGE;
                self.tables.push(Box::new([0u64; 512]));
                self.tables[t][index(va, level)] =
                    pa | self.enc.private_bits() | PRESENT | WRITABLE | ACCESSED;
                t = self.tables.len() - 1;
            } else if e & HUGE != 0 {
                bail!("virtual address {va:#x} is already covered by a large page");
            } else {
                t = self.table_index(self.enc.strip(e));
            }
        }
        Ok(t)
    }

    pub fn map_4k(&mut self, va: u64, pa: u64, access: Access) -> Result<()> {
        if !va.is_multiple_of(PAGE) || !pa.is_multiple_of(PAGE) || !canonical(va) {
            bail!("bad 4K mapping {va:#x} -> {pa:#x}");
        }
        let t = self.walk_create(va, 0)?;
        let e = &mut self.tables[t][index(va, 0)];
        if *e & PRESENT != 0 {
            bail!("virtual address {va:#x} is mapped twice");
        }
        *e = pa | self.enc.private_bits() | access.bits();
        Ok(())
    }

    /// Maps a 4 KiB page shared with the host: no private (C-)bit in its
    /// leaf entry, whatever the builder's encryption.
    pub fn map_4k_shared(&mut self, va: u64, pa: u64, access: Access) -> Result<()> {
        self.map_4k(va, pa, access)?;
        let t = self.walk_create(va, 0)?;
        self.tables[t][index(va, 0)] &= !self.enc.private_bits();
        Ok(())
    }

    pub fn map_2m(&mut self, va: u64, pa: u64, access: Access) -> Result<()> {
        if !va.is_multiple_of(LARGE) || !pa.is_multiple_of(LARGE) || !canonical(va) {
            bail!("bad 2M mapping {va:#x} -> {pa:#x}");
        }
        let t = self.walk_create(va, 1)?;
        let e = &mut self.tables[t][index(va, 1)];
        if *e & PRESENT != 0 {
            bail!("virtual address {va:#x} is mapped twice");
        }
        *e = pa | self.enc.private_bits() | access.bits() | HUGE;
        Ok(())
    }

    /// Maps [va, va+len) to [pa, pa+len) with 2 MiB pages where both sides
    /// are aligned, 4 KiB pages elsewhere.
    pub fn map_range(&mut self, va: u64, pa: u64, len: u64, access: Access) -> Result<()> {
        let mut off = 0;
        while off < len {
            let (v, p) = (va + off, pa + off);
            if v % LARGE == 0 && p % LARGE == 0 && len - off >= LARGE {
                self.map_2m(v, p, access)?;
                off += LARGE;
            } else {
                self.map_4k(v, p, access)?;
                off += PAGE;
            }
        }
        Ok(())
    }

    /// (physical address, leaf entry flags) for `va`.
    pub fn translate(&self, va: u64) -> Option<(u64, u64)> {
        svsm_defs::paging::translate(self.base, va, self.enc, |table, i| {
            self.tables.get(self.table_index(table)).map(|t| t[i])
        })
        .map(|(pa, flags)| (pa, flags.bits()))
    }

    /// The table pages as (gpa, bytes).
    pub fn pages(&self) -> Vec<(u64, Vec<u8>)> {
        self.tables
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    self.base + i as u64 * PAGE,
                    t.iter().flat_map(|e| e.to_le_bytes()).collect(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_translates() {
        let mut b = PageTableBuilder::new(0x100_0000, 16);
        b.map_4k(0xffff_ffff_8000_0000, 0x200_0000, Access::ReadExecute)
            .unwrap();
        b.map_2m(0x4000_0000, 0x4000_0000, Access::ReadWrite)
            .unwrap();
        let (pa, fl) = b.translate(0xffff_ffff_8000_0123).unwrap();
        assert_eq!(pa, 0x200_0123);
        assert_eq!(fl & NO_EXECUTE, 0);
        assert_eq!(fl & WRITABLE, 0);
        let (pa, fl) = b.translate(0x4012_3456).unwrap();
        assert_eq!(pa, 0x4012_3456);
        assert_ne!(fl & NO_EXECUTE, 0);
        assert_ne!(fl & HUGE, 0);
        assert!(b.translate(0xffff_ffff_8000_1000).is_none());
        assert!(b.translate(0).is_none());
        // PML4 + (PDPT, PD, PT) for the kernel + (PDPT, PD) for the 2M page.
        assert_eq!(b.size(), 6 * 4096);
        let pages = b.pages();
        assert_eq!(pages[0].0, 0x100_0000);
        let pml4_e = u64::from_le_bytes(pages[0].1[511 * 8..512 * 8].try_into().unwrap());
        assert_eq!(pml4_e & ADDR_MASK, pages[1].0);
    }

    #[test]
    fn rejects_double_and_conflicting_mappings() {
        let mut b = PageTableBuilder::new(0, 16);
        b.map_4k(0x1000, 0x1000, Access::ReadOnly).unwrap();
        assert!(b.map_4k(0x1000, 0x2000, Access::ReadOnly).is_err());
        b.map_2m(0x20_0000, 0x20_0000, Access::ReadOnly).unwrap();
        assert!(b.map_4k(0x20_1000, 0x1000, Access::ReadOnly).is_err());
        assert!(
            b.map_4k(0x0000_8000_0000_0000, 0, Access::ReadOnly)
                .is_err()
        );
        assert!(b.map_2m(0x1000, 0, Access::ReadOnly).is_err());
    }

    #[test]
    fn encrypted_tables_carry_the_c_bit_in_every_entry() {
        let enc = PageEncryption::snp(51).unwrap();
        let c = 1u64 << 51;
        let mut b = PageTableBuilder::with_encryption(0x100_0000, 16, enc);
        b.map_4k(0xffff_ffff_8000_0000, 0x200_0000, Access::ReadExecute)
            .unwrap();
        b.map_2m(0x4000_0000, 0x4000_0000, Access::ReadWrite)
            .unwrap();
        // The walk strips the C-bit: addresses come back unchanged.
        assert_eq!(b.translate(0xffff_ffff_8000_0010).unwrap().0, 0x200_0010);
        assert_eq!(b.translate(0x4000_1000).unwrap().0, 0x4000_1000);
        let entries: Vec<u64> = b
            .pages()
            .iter()
            .flat_map(|(_, p)| {
                p.chunks(8)
                    .map(|e| u64::from_le_bytes(e.try_into().unwrap()))
            })
            .filter(|e| e & PRESENT != 0)
            .collect();
        assert_eq!(
            entries.len(),
            7,
            "4 levels for the 4K page, 3 for the 2M page"
        );
        assert!(entries.iter().all(|e| e & c != 0), "{entries:x?}");
        // A shared page has no C-bit in its leaf (its tables keep theirs).
        b.map_4k_shared(0x5000, 0x5000, Access::ReadWrite).unwrap();
        let leaf = b.pages().iter().find_map(|(_, p)| {
            p.chunks(8)
                .map(|e| u64::from_le_bytes(e.try_into().unwrap()))
                .find(|e| e & ADDR_MASK & !c == 0x5000)
        });
        assert_eq!(leaf.unwrap() & c, 0);
        assert_eq!(b.translate(0x5000).unwrap().0, 0x5000);
        // The native builder sets no encryption bit.
        let mut n = PageTableBuilder::new(0x100_0000, 16);
        n.map_4k(0x1000, 0x1000, Access::ReadOnly).unwrap();
        assert!(
            n.pages()
                .iter()
                .all(|(_, p)| p.chunks(8).all(|e| e[6] & 0x08 == 0))
        );
    }

    #[test]
    fn pool_exhaustion_is_an_error() {
        let mut b = PageTableBuilder::new(0, 2);
        assert!(b.map_4k(0x1000, 0x1000, Access::ReadOnly).is_err());
    }

    #[test]
    fn map_range_mixes_page_sizes() {
        let mut b = PageTableBuilder::new(0, 16);
        b.map_range(0x1f_f000, 0x1f_f000, 0x20_2000, Access::ReadWrite)
            .unwrap();
        assert_eq!(b.translate(0x1f_f000).unwrap().1 & HUGE, 0);
        assert_ne!(b.translate(0x20_0000).unwrap().1 & HUGE, 0);
        assert_eq!(b.translate(0x40_0000).unwrap().1 & HUGE, 0);
        assert!(b.translate(0x40_1000).is_none());
    }
}
