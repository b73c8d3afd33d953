//! Loading the stage2 and kernel ELF files, with every malformation reported
//! as an error naming the file and the problem (never a panic).

use anyhow::{Context, Result, bail};
use object::elf::{PF_R, PF_W, PF_X, PT_LOAD};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol, SymbolKind};
use std::path::Path;

/// Permissions of a loadable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

#[derive(Clone, Debug)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    /// File bytes; `memsz - data.len()` zero bytes follow.
    pub data: Vec<u8>,
    pub perms: Perms,
}

impl Segment {
    /// End (exclusive) of the segment in memory. `parse` refuses segments
    /// whose page-aligned end does not fit in 64 bits, so this cannot wrap
    /// for a parsed image; hand-made images saturate.
    pub fn end(&self) -> u64 {
        self.vaddr.saturating_add(self.memsz)
    }
}

#[derive(Clone, Debug)]
pub struct FuncSymbol {
    pub addr: u64,
    pub size: u64,
    pub name: String,
}

#[derive(Clone, Debug)]
pub struct ElfImage {
    pub entry: u64,
    pub segments: Vec<Segment>,
    pub functions: Vec<FuncSymbol>,
    pub build_id: Option<Vec<u8>>,
    /// `.eh_frame_hdr` and `.eh_frame`, when the ELF has both.
    pub cfi: Option<crate::unwind::Cfi>,
}

impl ElfImage {
    /// Lowest and highest (exclusive) virtual address of the loadable segments.
    pub fn span(&self) -> (u64, u64) {
        let lo = self.segments.iter().map(|s| s.vaddr).min().unwrap_or(0);
        let hi = self.segments.iter().map(Segment::end).max().unwrap_or(0);
        (lo, hi)
    }

    /// Size of the flat image: from the first to the end of the last segment.
    pub fn flat_size(&self) -> u64 {
        let (lo, hi) = self.span();
        hi.saturating_sub(lo)
    }
}

pub fn load(path: &Path, what: &str) -> Result<ElfImage> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read {what} ELF {}", path.display()))?;
    parse(&bytes).with_context(|| format!("{what} ELF {} is not usable", path.display()))
}

pub fn parse(bytes: &[u8]) -> Result<ElfImage> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        bail!("not an ELF file (bad magic)");
    }
    if bytes.len() < 5 || bytes[4] != 2 {
        bail!("not a 64-bit ELF file");
    }
    let elf =
        ElfFile64::<Endianness>::parse(bytes).map_err(|e| anyhow::anyhow!("malformed ELF: {e}"))?;
    let header = elf.elf_header();
    let endian = elf.endian();
    if header.e_machine(endian) != object::elf::EM_X86_64 {
        bail!(
            "wrong architecture: e_machine {} is not x86_64 ({})",
            header.e_machine(endian),
            object::elf::EM_X86_64
        );
    }
    if !elf.is_little_endian() {
        bail!("not little-endian");
    }
    if header.e_type(endian) != object::elf::ET_EXEC {
        bail!("not a static executable (e_type {})", header.e_type(endian));
    }
    let mut segments = Vec::new();
    for ph in elf.elf_program_headers() {
        if ph.p_type(endian) != PT_LOAD || ph.p_memsz(endian) == 0 {
            continue;
        }
        let data = ph.data(endian, bytes).map_err(|_| {
            anyhow::anyhow!(
                "segment at {:#x} extends beyond the end of the file (truncated?)",
                ph.p_vaddr(endian)
            )
        })?;
        let flags = ph.p_flags(endian);
        if ph.p_filesz(endian) > ph.p_memsz(endian) {
            bail!("segment at {:#x} has filesz > memsz", ph.p_vaddr(endian));
        }
        // The builder rounds every segment up to whole pages: its page-aligned
        // end must be a 64-bit address.
        let (vaddr, memsz) = (ph.p_vaddr(endian), ph.p_memsz(endian));
        if vaddr
            .checked_add(memsz)
            .and_then(|e| e.checked_next_multiple_of(4096))
            .is_none()
        {
            bail!(
                "segment at {vaddr:#x} with p_memsz {memsz:#x} ends beyond the 64-bit address space"
            );
        }
        segments.push(Segment {
            vaddr: ph.p_vaddr(endian),
            memsz: ph.p_memsz(endian),
            data: data.to_vec(),
            perms: Perms {
                read: flags.contains(PF_R),
                write: flags.contains(PF_W),
                exec: flags.contains(PF_X),
            },
        });
    }
    if segments.is_empty() {
        bail!("no loadable segments");
    }
    segments.sort_by_key(|s| s.vaddr);
    for w in segments.windows(2) {
        if w[0].end() > w[1].vaddr {
            bail!(
                "loadable segments at {:#x} and {:#x} overlap",
                w[0].vaddr,
                w[1].vaddr
            );
        }
    }
    for s in &segments {
        if s.vaddr % 4096 != 0 {
            bail!(
                "segment at {:#x} is not page aligned (the linker script must align segments)",
                s.vaddr
            );
        }
        if s.perms.write && s.perms.exec {
            bail!("segment at {:#x} is both writable and executable", s.vaddr);
        }
    }
    let entry = elf.entry();
    if !segments
        .iter()
        .any(|s| s.perms.exec && entry >= s.vaddr && entry < s.end())
    {
        bail!("entry point {entry:#x} is not inside an executable segment");
    }
    let mut functions = Vec::new();
    for sym in elf.symbols() {
        if sym.kind() == SymbolKind::Text
            && sym.address() != 0
            && let Ok(name) = sym.name()
        {
            functions.push(FuncSymbol {
                addr: sym.address(),
                size: sym.size(),
                name: name.to_string(),
            });
        }
    }
    let build_id = elf
        .section_by_name(".note.gnu.build-id")
        .and_then(|_| elf.build_id().ok().flatten())
        .map(|b| b.to_vec());
    let cfi = crate::unwind::cfi_of(&elf)?;
    Ok(ElfImage {
        entry,
        segments,
        functions,
        build_id,
        cfi,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_elf_and_truncated() {
        assert!(parse(b"").unwrap_err().to_string().contains("not an ELF"));
        assert!(
            parse(b"hello world")
                .unwrap_err()
                .to_string()
                .contains("not an ELF")
        );
        let mut e = b"\x7fELF\x01".to_vec();
        e.resize(64, 0);
        assert!(parse(&e).unwrap_err().to_string().contains("64-bit"));
        let mut e = b"\x7fELF\x02\x01\x01".to_vec();
        e.resize(20, 0);
        assert!(parse(&e).unwrap_err().to_string().contains("malformed"));
    }

    #[test]
    fn rejects_wrong_architecture() {
        // The host test binary is a shared/PIE x86_64 or other ELF: it must be
        // refused for being the wrong type, never accepted or panicking.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let mut patched = me.clone();
        // e_machine at offset 18: make it aarch64 (183).
        patched[18] = 183;
        patched[19] = 0;
        assert!(
            parse(&patched)
                .unwrap_err()
                .to_string()
                .contains("wrong architecture")
        );
        // Truncations at many points never panic.
        for cut in [16usize, 63, 64, 100, 1000, 4096, me.len() / 2] {
            let _ = parse(&me[..cut.min(me.len())]);
        }
    }
}
