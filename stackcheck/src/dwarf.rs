//! Source locations (file:line, inlined frames) from DWARF via addr2line.

use std::borrow::Cow;

use addr2line::Context;
use gimli::{EndianSlice, LittleEndian};
use object::{Object, ObjectSection};

use crate::elf::Image;

type R<'a> = EndianSlice<'a, LittleEndian>;

/// One source frame (innermost inlined frame first).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceFrame {
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub inlined: bool,
}

pub struct Lines<'a> {
    ctx: Option<Context<R<'a>>>,
}

impl<'a> Lines<'a> {
    /// Build a context; an image without (or with corrupt) DWARF yields no locations.
    pub fn new(img: &Image<'a>) -> Self {
        Self::from_file(&img.file)
    }

    /// Build a context straight from ELF bytes (no symbol processing), e.g.
    /// on another thread while the analysis runs.
    pub fn from_data(data: &'a [u8]) -> Self {
        match object::read::elf::ElfFile64::<object::Endianness>::parse(data) {
            Ok(f) => Self::from_file(&f),
            Err(_) => Lines { ctx: None },
        }
    }

    fn from_file(file: &object::read::elf::ElfFile64<'a, object::Endianness>) -> Self {
        let load = |id: gimli::SectionId| -> Result<R<'a>, gimli::Error> {
            let data = file
                .section_by_name(id.name())
                .and_then(|s| s.data().ok())
                .unwrap_or(&[]);
            Ok(EndianSlice::new(data, LittleEndian))
        };
        let has_info = file.section_by_name(".debug_info").is_some();
        let ctx = if has_info {
            gimli::Dwarf::load(load)
                .ok()
                .and_then(|d| Context::from_dwarf(d).ok())
        } else {
            None
        };
        Lines { ctx }
    }

    /// No line information.
    pub fn empty() -> Self {
        Lines { ctx: None }
    }

    pub fn available(&self) -> bool {
        self.ctx.is_some()
    }

    /// `file:line` of an address (innermost frame).
    pub fn location(&self, addr: u64) -> Option<(String, u32)> {
        let ctx = self.ctx.as_ref()?;
        let loc = ctx.find_location(addr).ok()??;
        Some((loc.file?.to_string(), loc.line.unwrap_or(0)))
    }

    /// All frames at an address, innermost (inlined) first.
    pub fn frames(&self, addr: u64) -> Vec<SourceFrame> {
        let mut out = Vec::new();
        let Some(ctx) = self.ctx.as_ref() else {
            return out;
        };
        let Ok(mut iter) = ctx.find_frames(addr).skip_all_loads() else {
            return out;
        };
        while let Ok(Some(frame)) = iter.next() {
            let function =
                frame
                    .function
                    .as_ref()
                    .and_then(|f| f.demangle().ok())
                    .map(|c: Cow<'_, str>| {
                        // Strip the legacy-mangling hash suffix if any.
                        let s = c.into_owned();
                        match s.rfind("::h") {
                            Some(i)
                                if s.len() - i == 19
                                    && s[i + 3..].chars().all(|ch| ch.is_ascii_hexdigit()) =>
                            {
                                s[..i].to_string()
                            }
                            _ => s,
                        }
                    });
            let (file, line) = match &frame.location {
                Some(l) => (l.file.map(str::to_string), l.line),
                None => (None, None),
            };
            out.push(SourceFrame {
                function,
                file,
                line,
                inlined: true,
            });
        }
        if let Some(last) = out.last_mut() {
            last.inlined = false;
        }
        out
    }
}

/// Rows of one unit's line program: (address, end of sequence, file, line).
struct UnitLines {
    rows: Vec<(u64, bool, u64, u32)>,
    files: Vec<String>,
    /// Inlined subroutines: (begin, end, DIE depth, call file, call line).
    inlined: Vec<(u64, u64, isize, u64, u32)>,
}

/// Fast `file:line` lookups for a handful of addresses: `.debug_aranges`
/// finds the unit, and only that unit's line program is decoded (cached).
/// Falls back to a full addr2line context when there are no aranges.
pub struct LineIndex<'a> {
    dwarf: Option<gimli::Dwarf<R<'a>>>,
    aranges: Vec<(u64, u64, gimli::DebugInfoOffset)>,
    cache: std::cell::RefCell<std::collections::HashMap<usize, Option<std::rc::Rc<UnitLines>>>>,
    fallback: std::cell::OnceCell<Lines<'a>>,
    data: &'a [u8],
}

impl<'a> LineIndex<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        let mut idx = LineIndex {
            dwarf: None,
            aranges: Vec::new(),
            cache: Default::default(),
            fallback: std::cell::OnceCell::new(),
            data,
        };
        let Ok(file) = object::read::elf::ElfFile64::<object::Endianness>::parse(data) else {
            return idx;
        };
        if file.section_by_name(".debug_info").is_none() {
            return idx;
        }
        let load = |id: gimli::SectionId| -> Result<R<'a>, gimli::Error> {
            let d = file
                .section_by_name(id.name())
                .and_then(|s| s.data().ok())
                .unwrap_or(&[]);
            Ok(EndianSlice::new(d, LittleEndian))
        };
        let Ok(dwarf) = gimli::Dwarf::load(load) else {
            return idx;
        };
        let mut headers = dwarf.debug_aranges.headers();
        while let Ok(Some(h)) = headers.next() {
            let off = h.debug_info_offset();
            let mut entries = h.entries();
            while let Ok(Some(e)) = entries.next() {
                let r = e.range();
                if r.end > r.begin {
                    idx.aranges.push((r.begin, r.end, off));
                }
            }
        }
        idx.aranges.sort_unstable_by_key(|a| a.0);
        idx.dwarf = Some(dwarf);
        idx
    }

    fn unit_lines(&self, off: gimli::DebugInfoOffset) -> Option<std::rc::Rc<UnitLines>> {
        if let Some(c) = self.cache.borrow().get(&off.0) {
            return c.clone();
        }
        let v = self.parse_unit(off).map(std::rc::Rc::new);
        self.cache.borrow_mut().insert(off.0, v.clone());
        v
    }

    fn parse_unit(&self, off: gimli::DebugInfoOffset) -> Option<UnitLines> {
        let dwarf = self.dwarf.as_ref()?;
        let header = dwarf.debug_info.header_from_offset(off).ok()?;
        let unit = dwarf.unit(header).ok()?;
        let program = unit.line_program.clone()?;
        let comp_dir = unit.comp_dir.map(|d| d.to_string_lossy().into_owned());
        let lh = program.header().clone();
        let mut files = Vec::new();
        // DWARF 5 file indices start at 0, earlier versions at 1.
        let base = if lh.version() >= 5 { 0 } else { 1 };
        for _ in 0..base {
            files.push(String::new());
        }
        for fe in lh.file_names() {
            let name = dwarf
                .attr_string(&unit, fe.path_name())
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let dir = fe
                .directory(&lh)
                .and_then(|d| dwarf.attr_string(&unit, d).ok())
                .map(|s| s.to_string_lossy().into_owned());
            let path = if name.starts_with('/') {
                name
            } else {
                let d = dir.filter(|d| !d.is_empty()).or(comp_dir.clone());
                match d {
                    Some(d) if d.starts_with('/') => format!("{d}/{name}"),
                    Some(d) => match &comp_dir {
                        Some(c) => format!("{c}/{d}/{name}"),
                        None => format!("{d}/{name}"),
                    },
                    None => name,
                }
            };
            files.push(path);
        }
        let mut rows = Vec::new();
        let mut state = program.rows();
        while let Ok(Some((_, row))) = state.next_row() {
            rows.push((
                row.address(),
                row.end_sequence(),
                row.file_index(),
                row.line().map(|l| l.get() as u32).unwrap_or(0),
            ));
        }
        // Sort sequences by address; keep each sequence's rows in order.
        rows.sort_by_key(|r| (r.0, !r.1));
        let mut inlined = Vec::new();
        let mut cursor = unit.entries();
        while let Ok(Some(die)) = cursor.next_dfs() {
            if die.tag() != gimli::DW_TAG_inlined_subroutine {
                continue;
            }
            let file = match die.attr_value(gimli::DW_AT_call_file) {
                Some(gimli::AttributeValue::FileIndex(f)) => f,
                Some(v) => v.udata_value().unwrap_or(0),
                None => continue,
            };
            let line = die
                .attr_value(gimli::DW_AT_call_line)
                .and_then(|v| v.udata_value())
                .unwrap_or(0) as u32;
            let depth = die.depth();
            if let Ok(mut ranges) = dwarf.die_ranges(&unit, die) {
                while let Ok(Some(r)) = ranges.next() {
                    if r.end > r.begin {
                        inlined.push((r.begin, r.end, depth, file, line));
                    }
                }
            }
        }
        Some(UnitLines {
            rows,
            files,
            inlined,
        })
    }

    /// Source locations of an address, innermost first: the line-table row,
    /// then the call site of each enclosing inlined subroutine.
    pub fn chain(&self, addr: u64) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        let Some(first) = self.location(addr) else {
            return out;
        };
        out.push(first);
        if self.dwarf.is_none() || self.aranges.is_empty() {
            return out;
        }
        let i = self.aranges.partition_point(|a| a.0 <= addr);
        let Some(a) = i.checked_sub(1).and_then(|i| self.aranges.get(i)) else {
            return out;
        };
        let Some(ul) = self.unit_lines(a.2) else {
            return out;
        };
        let mut calls: Vec<&(u64, u64, isize, u64, u32)> = ul
            .inlined
            .iter()
            .filter(|r| r.0 <= addr && addr < r.1)
            .collect();
        calls.sort_by_key(|r| std::cmp::Reverse(r.2));
        for c in calls {
            out.push((ul.files.get(c.3 as usize).cloned().unwrap_or_default(), c.4));
        }
        out
    }

    /// The innermost location in the project's own code: skips frames
    /// inlined from the Rust standard library and from registry crates
    /// (e.g. a memset inlined from core::ptr::write_bytes reports the line
    /// that called it). Falls back to the innermost location.
    pub fn user_location(&self, addr: u64) -> Option<(String, u32)> {
        let chain = self.chain(addr);
        let library = |f: &str| {
            f.contains("/rustlib/src/rust/library/")
                || f.contains("/.cargo/registry/")
                || f.starts_with("/rustc/")
        };
        chain
            .iter()
            .find(|(f, _)| !library(f))
            .or(chain.first())
            .cloned()
    }

    /// `file:line` of an address.
    pub fn location(&self, addr: u64) -> Option<(String, u32)> {
        if self.dwarf.is_some() && !self.aranges.is_empty() {
            let i = self.aranges.partition_point(|a| a.0 <= addr);
            let a = self.aranges.get(i.checked_sub(1)?)?;
            if addr >= a.1 {
                return None;
            }
            let ul = self.unit_lines(a.2)?;
            let j = ul.rows.partition_point(|r| r.0 <= addr);
            let r = ul.rows.get(j.checked_sub(1)?)?;
            if r.1 {
                return None;
            }
            let file = ul.files.get(r.2 as usize).cloned().unwrap_or_default();
            return Some((file, r.3));
        }
        self.fallback
            .get_or_init(|| Lines::from_data(self.data))
            .location(addr)
    }
}
