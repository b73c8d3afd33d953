//! ELF loading: validation, function symbols, memory reads, build id.

use std::collections::HashMap;

use anyhow::Result;
use object::elf;
use object::read::elf::{ElfFile64, FileHeader, SectionHeader};
use object::{
    Endianness, Object, ObjectSection, ObjectSymbol, ObjectSymbolTable, RelocationFlags,
    RelocationTarget,
};

use crate::bail_input;

/// One function (symbol or FDE range) of the image.
#[derive(Debug, Clone)]
pub struct Function {
    /// Raw (mangled) symbol name, or `fde@0x...` for FDE-only ranges.
    pub name: String,
    /// Demangled name without the hash.
    pub demangled: String,
    /// Other symbols at the same address.
    pub aliases: Vec<String>,
    pub addr: u64,
    pub size: u64,
}

impl Function {
    pub fn end(&self) -> u64 {
        self.addr + self.size
    }
}

/// A loaded section with file data.
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    pub name: String,
    pub addr: u64,
    pub data: &'a [u8],
    pub exec: bool,
    pub write: bool,
}

/// A parsed, validated x86_64 ELF image.
pub struct Image<'a> {
    pub data: &'a [u8],
    pub file: ElfFile64<'a, Endianness>,
    pub functions: Vec<Function>,
    pub by_name: HashMap<String, usize>,
    pub segments: Vec<Segment<'a>>,
    /// Dynamic relocations: slot address -> resolved value (RELATIVE) or
    /// imported symbol name.
    pub relocs: Relocs,
    pub has_symtab: bool,
    pub entry: u64,
}

/// Dynamic relocations sorted by slot address (the last one for a slot wins).
#[derive(Debug, Default)]
pub struct Relocs {
    items: Vec<(u64, RelocValue)>,
}

impl Relocs {
    fn insert(&mut self, addr: u64, v: RelocValue) {
        self.items.push((addr, v));
    }

    fn finish(&mut self) {
        // Stable sort keeps insertion order among equal keys; keep the last.
        self.items.sort_by_key(|e| e.0);
        let mut out: Vec<(u64, RelocValue)> = Vec::with_capacity(self.items.len());
        for (a, v) in self.items.drain(..) {
            match out.last_mut() {
                Some(last) if last.0 == a => last.1 = v,
                _ => out.push((a, v)),
            }
        }
        self.items = out;
    }

    pub fn get(&self, addr: &u64) -> Option<&RelocValue> {
        self.items
            .binary_search_by_key(addr, |e| e.0)
            .ok()
            .map(|i| &self.items[i].1)
    }

    /// Relocations in [start, end), sorted.
    pub fn range(&self, start: u64, end: u64) -> &[(u64, RelocValue)] {
        let a = self.items.partition_point(|e| e.0 < start);
        let b = self.items.partition_point(|e| e.0 < end);
        &self.items[a..b]
    }

    pub fn values(&self) -> impl Iterator<Item = &RelocValue> {
        self.items.iter().map(|e| &e.1)
    }
}

#[derive(Debug, Clone)]
pub enum RelocValue {
    Value(u64),
    Import(String),
}

/// Demangle a symbol (Rust v0/legacy) without the trailing hash.
pub fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(d) => format!("{d:#}"),
        Err(_) => name.to_string(),
    }
}

impl<'a> Image<'a> {
    /// Parse and validate an ELF. Every failure is a clear [`crate::InputError`].
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        if data.len() < 64 {
            bail_input!("not an ELF file: only {} bytes", data.len());
        }
        if &data[0..4] != b"\x7fELF" {
            bail_input!("not an ELF file: bad magic {:02x?}", &data[0..4]);
        }
        if data[4] != 2 {
            bail_input!(
                "unsupported ELF class {} (only 64-bit x86_64 is supported)",
                data[4]
            );
        }
        if data[5] != 1 {
            bail_input!("unsupported ELF byte order (only little-endian x86_64 is supported)");
        }
        let file = match ElfFile64::<Endianness>::parse(data) {
            Ok(f) => f,
            Err(e) => bail_input!("corrupt ELF: {e}"),
        };
        let endian = file.endian();
        let hdr = file.elf_header();
        let machine = hdr.e_machine(endian);
        if machine != elf::EM_X86_64 {
            bail_input!(
                "unsupported ELF machine {} (only x86_64, EM_X86_64=62, is supported)",
                machine.0
            );
        }
        let etype = hdr.e_type(endian);
        if etype != elf::ET_EXEC && etype != elf::ET_DYN {
            bail_input!(
                "ELF type {} is not a linked executable or shared object",
                etype.0
            );
        }
        let entry = hdr.e_entry(endian);

        let mut segments = Vec::new();
        for section in file.sections() {
            let sh = section.elf_section_header();
            let flags = sh.sh_flags(endian).0;
            if flags & elf::SHF_ALLOC.0 == 0 || sh.sh_type(endian) == elf::SHT_NOBITS {
                continue;
            }
            let sdata = match section.data() {
                Ok(d) => d,
                Err(e) => bail_input!(
                    "corrupt ELF: section {} data out of bounds: {e}",
                    section.name().unwrap_or("?")
                ),
            };
            if sdata.len() as u64 != section.size() {
                bail_input!(
                    "corrupt ELF: section {} is truncated",
                    section.name().unwrap_or("?")
                );
            }
            segments.push(Segment {
                name: section.name().unwrap_or("").to_string(),
                addr: section.address(),
                data: sdata,
                exec: flags & elf::SHF_EXECINSTR.0 != 0,
                write: flags & elf::SHF_WRITE.0 != 0,
            });
        }
        segments.sort_by_key(|s| s.addr);

        // Function symbols: STT_FUNC, and STT_NOTYPE labels in executable
        // sections (hand-written asm often omits .type).
        let mut has_symtab = false;
        let mut raw: Vec<(u64, u64, String, bool, bool)> = Vec::new(); // addr,size,name,global,typed
        for sym in file.symbols() {
            has_symtab = true;
            collect_symbol(&file, &sym, &segments, &mut raw);
        }
        if !has_symtab {
            for sym in file.dynamic_symbols() {
                collect_symbol(&file, &sym, &segments, &mut raw);
            }
        }
        let functions = build_functions(raw, &segments);

        let mut relocs = Relocs::default();
        if let Some(iter) = file.dynamic_relocations() {
            for (off, rel) in iter {
                let RelocationFlags::Elf { r_type } = rel.flags() else {
                    continue;
                };
                match r_type {
                    elf::R_X86_64_RELATIVE => {
                        relocs.insert(off, RelocValue::Value(rel.addend() as u64));
                    }
                    elf::R_X86_64_GLOB_DAT | elf::R_X86_64_JUMP_SLOT | elf::R_X86_64_64 => {
                        if let RelocationTarget::Symbol(idx) = rel.target() {
                            let name = file
                                .dynamic_symbol_table()
                                .and_then(|t| t.symbol_by_index(idx).ok())
                                .and_then(|s| s.name().ok().map(str::to_string))
                                .unwrap_or_default();
                            let defined = file
                                .dynamic_symbol_table()
                                .and_then(|t| t.symbol_by_index(idx).ok())
                                .filter(|s| !s.is_undefined())
                                .map(|s| s.address().wrapping_add(rel.addend() as u64));
                            match defined {
                                Some(v) => relocs.insert(off, RelocValue::Value(v)),
                                None => relocs.insert(off, RelocValue::Import(name)),
                            };
                        }
                    }
                    _ => {}
                }
            }
        }

        relocs.finish();
        let mut img = Image {
            data,
            file,
            by_name: HashMap::new(),
            functions,
            segments,
            relocs,
            has_symtab,
            entry,
        };
        img.reindex();
        Ok(img)
    }

    /// Rebuild the name index after `functions` changed.
    pub fn reindex(&mut self) {
        self.functions.sort_by_key(|f| f.addr);
        self.by_name.clear();
        for (i, f) in self.functions.iter().enumerate() {
            self.by_name.entry(f.name.clone()).or_insert(i);
            self.by_name.entry(f.demangled.clone()).or_insert(i);
            for a in &f.aliases {
                self.by_name.entry(a.clone()).or_insert(i);
                self.by_name.entry(demangle(a)).or_insert(i);
            }
        }
    }

    /// Add functions for FDE ranges that no symbol covers (stripped images).
    pub fn add_fde_functions(&mut self, ranges: &[(u64, u64)]) {
        let mut added = false;
        for &(start, end) in ranges {
            if end <= start || self.function_containing(start).is_some() {
                continue;
            }
            if !self
                .segments
                .iter()
                .any(|s| s.exec && start >= s.addr && end <= s.addr + s.data.len() as u64)
            {
                continue;
            }
            let name = format!("fde@{start:#x}");
            self.functions.push(Function {
                demangled: name.clone(),
                name,
                aliases: Vec::new(),
                addr: start,
                size: end - start,
            });
            added = true;
        }
        if added {
            self.reindex();
        }
    }

    /// Index of the function containing `addr`.
    pub fn function_containing(&self, addr: u64) -> Option<usize> {
        let i = self.functions.partition_point(|f| f.addr <= addr);
        if i == 0 {
            return None;
        }
        let f = &self.functions[i - 1];
        (addr < f.end()).then_some(i - 1)
    }

    /// Index of the function starting exactly at `addr`.
    pub fn function_at(&self, addr: u64) -> Option<usize> {
        let (first, last) = (self.functions.first()?, self.functions.last()?);
        if addr < first.addr || addr >= last.end() {
            return None;
        }
        self.function_containing(addr)
            .filter(|&i| self.functions[i].addr == addr)
    }

    /// Look up a function by raw or demangled name (or alias).
    pub fn lookup(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Bytes at `addr..addr+len` from a loaded section.
    pub fn read(&self, addr: u64, len: u64) -> Option<&'a [u8]> {
        let i = self.segments.partition_point(|s| s.addr <= addr);
        if i == 0 {
            return None;
        }
        let s = &self.segments[i - 1];
        let off = addr - s.addr;
        let end = off.checked_add(len)?;
        if end > s.data.len() as u64 {
            return None;
        }
        Some(&s.data[off as usize..end as usize])
    }

    /// An 8-byte pointer slot, with dynamic relocations applied. Only slots
    /// that cannot change at run time count: read-only sections and the
    /// RELRO/GOT sections; a slot in mutable data gives None.
    pub fn read_slot(&self, addr: u64) -> Option<RelocValue> {
        let i = self.segments.partition_point(|s| s.addr <= addr);
        let seg = self.segments.get(i.checked_sub(1)?)?;
        let constant = !seg.write
            || matches!(
                seg.name.as_str(),
                ".got" | ".got.plt" | ".data.rel.ro" | ".init_array" | ".fini_array"
            )
            || seg.name.starts_with(".data.rel.ro.");
        if !constant {
            return None;
        }
        if let Some(r) = self.relocs.get(&addr) {
            return Some(r.clone());
        }
        let b = self.read(addr, 8)?;
        Some(RelocValue::Value(u64::from_le_bytes(b.try_into().ok()?)))
    }

    /// Code bytes of a function.
    pub fn code(&self, f: &Function) -> Option<&'a [u8]> {
        self.read(f.addr, f.size)
    }

    /// GNU build id, if present.
    pub fn build_id(&self) -> Option<Vec<u8>> {
        self.file.build_id().ok().flatten().map(<[u8]>::to_vec)
    }
}

fn collect_symbol<'a>(
    file: &ElfFile64<'a, Endianness>,
    sym: &object::read::elf::ElfSymbol64<'a, '_, Endianness>,
    segments: &[Segment<'_>],
    raw: &mut Vec<(u64, u64, String, bool, bool)>,
) {
    use object::SymbolKind;
    let _ = file;
    let typed = match sym.kind() {
        SymbolKind::Text => true,
        SymbolKind::Unknown => false,
        _ => return,
    };
    if sym.is_undefined() {
        return;
    }
    let Ok(name) = sym.name() else { return };
    if name.is_empty() || name.starts_with(".L") || name.starts_with('$') {
        return;
    }
    let addr = sym.address();
    if !segments
        .iter()
        .any(|s| s.exec && addr >= s.addr && addr < s.addr + s.data.len() as u64)
    {
        return;
    }
    raw.push((addr, sym.size(), name.to_string(), sym.is_global(), typed));
}

fn build_functions(
    mut raw: Vec<(u64, u64, String, bool, bool)>,
    segments: &[Segment<'_>],
) -> Vec<Function> {
    // Sort by address; at equal address prefer typed, sized, global names.
    raw.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.4.cmp(&a.4))
            .then(b.1.cmp(&a.1))
            .then(b.3.cmp(&a.3))
            .then(a.2.cmp(&b.2))
    });
    let mut out: Vec<Function> = Vec::new();
    let mut sizes: Vec<u64> = Vec::new();
    for (addr, size, name, _, _) in raw {
        if let Some(last) = out.last_mut()
            && last.addr == addr
        {
            if last.name != name && !last.aliases.contains(&name) {
                last.aliases.push(name);
            }
            continue;
        }
        out.push(Function {
            demangled: demangle(&name),
            name,
            aliases: Vec::new(),
            addr,
            size: 0,
        });
        sizes.push(size);
    }
    // Ends: symbol size, truncated at the next function and the section end.
    for i in 0..out.len() {
        let addr = out[i].addr;
        let sec_end = segments
            .iter()
            .find(|s| s.exec && addr >= s.addr && addr < s.addr + s.data.len() as u64)
            .map(|s| s.addr + s.data.len() as u64)
            .unwrap_or(addr);
        let next = out
            .get(i + 1)
            .map(|f| f.addr)
            .unwrap_or(u64::MAX)
            .min(sec_end);
        let end = if sizes[i] > 0 {
            addr.saturating_add(sizes[i]).min(next)
        } else {
            next
        };
        out[i].size = end.saturating_sub(addr);
    }
    out.retain(|f| f.size > 0);
    out
}
