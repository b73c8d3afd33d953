//! The kernel's compact unwind table (svsm-unwinder's `table` format):
//! compiled here from the kernel's `.eh_frame` with gimli, placed after the
//! symbol table in the same read-only region, and walked by the kernel
//! without gimli (docs/unwinder.md).

use crate::elf::ElfImage;
use anyhow::{Result, anyhow};
use object::read::elf::ElfFile64;
use object::{Endianness, Object, ObjectSection};
use svsm_unwinder::{CfiSections, Module, UnwindTable, compile};

/// Copies of an image's CFI sections with their load addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cfi {
    pub eh_frame_hdr: Vec<u8>,
    pub eh_frame_hdr_addr: u64,
    pub eh_frame: Vec<u8>,
    pub eh_frame_addr: u64,
}

/// The `.eh_frame_hdr` and `.eh_frame` sections, if the ELF has both.
pub fn cfi_of(elf: &ElfFile64<'_, Endianness>) -> Result<Option<Cfi>> {
    let (Some(hdr), Some(eh)) = (
        elf.section_by_name(".eh_frame_hdr"),
        elf.section_by_name(".eh_frame"),
    ) else {
        return Ok(None);
    };
    let data = |s: &object::read::elf::ElfSection64<'_, '_, Endianness>| {
        s.data()
            .map(<[u8]>::to_vec)
            .map_err(|e| anyhow!("unreadable {} section: {e}", s.name().unwrap_or("?")))
    };
    Ok(Some(Cfi {
        eh_frame_hdr: data(&hdr)?,
        eh_frame_hdr_addr: hdr.address(),
        eh_frame: data(&eh)?,
        eh_frame_addr: eh.address(),
    }))
}

/// What the table holds, for the build log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    pub rows: usize,
    pub descriptors: usize,
    pub fallback_rows: usize,
    pub bytes: usize,
}

/// Compiles the kernel's unwind table; empty when the kernel has no CFI.
pub fn kernel_table(kernel: &ElfImage) -> Result<(Vec<u8>, TableStats)> {
    let Some(cfi) = &kernel.cfi else {
        return Ok((Vec::new(), TableStats::default()));
    };
    let module = Module::new(CfiSections {
        eh_frame_hdr: &cfi.eh_frame_hdr,
        eh_frame_hdr_addr: cfi.eh_frame_hdr_addr,
        eh_frame: &cfi.eh_frame,
        eh_frame_addr: cfi.eh_frame_addr,
    })
    .map_err(|e| anyhow!("kernel CFI: {e}"))?;
    let c = compile::compile(&module).map_err(|e| anyhow!("kernel unwind table: {e}"))?;
    // The kernel parses it the same way at boot.
    UnwindTable::parse(&c.bytes).map_err(|e| anyhow!("internal error: unwind table: {e}"))?;
    let stats = TableStats {
        rows: c.rows,
        descriptors: c.descriptors,
        fallback_rows: c.fallback_rows,
        bytes: c.bytes.len(),
    };
    Ok((c.bytes, stats))
}

/// Appends `table` to the symbol table, 8-byte aligned: the bytes of the
/// read-only region and the table's offset in it (0 when `table` is empty).
pub fn append_to_symtab(mut symtab: Vec<u8>, table: &[u8]) -> (Vec<u8>, u64) {
    if table.is_empty() {
        return (symtab, 0);
    }
    symtab.resize(symtab.len().next_multiple_of(8), 0);
    let off = symtab.len() as u64;
    symtab.extend_from_slice(table);
    (symtab, off)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_goes_after_the_symbols_aligned() {
        let (r, off) = append_to_symtab(vec![1; 13], &[2; 5]);
        assert_eq!(off, 16);
        assert_eq!(&r[..13], &[1; 13]);
        assert_eq!(&r[13..16], &[0; 3]);
        assert_eq!(&r[16..], &[2; 5]);
        let (r, off) = append_to_symtab(vec![1; 8], &[]);
        assert_eq!((r.len(), off), (8, 0));
    }

    #[test]
    fn no_cfi_no_table() {
        let k = ElfImage {
            entry: 0,
            segments: vec![],
            functions: vec![],
            build_id: None,
            cfi: None,
        };
        assert_eq!(kernel_table(&k).unwrap().0, Vec::<u8>::new());
    }

    #[test]
    fn bad_cfi_is_an_error_not_a_panic() {
        let k = ElfImage {
            entry: 0,
            segments: vec![],
            functions: vec![],
            build_id: None,
            cfi: Some(Cfi {
                eh_frame_hdr: vec![1, 0x1b, 0x03, 0x3b, 0xff],
                eh_frame_hdr_addr: 0x1000,
                eh_frame: vec![0; 16],
                eh_frame_addr: 0x2000,
            }),
        };
        let e = kernel_table(&k).unwrap_err().to_string();
        assert!(e.contains("kernel CFI"), "{e}");
    }
}
