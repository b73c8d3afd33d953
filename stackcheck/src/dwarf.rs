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

/// The report's file:line lookups: the innermost location, the chain of
/// inlined call sites, and the first location in the project's own code.
/// All of it through `addr2line` (which decodes a unit's line program and
/// inlined subroutines on first use); no line-program decoding of our own.
pub struct LineIndex<'a> {
    lines: Lines<'a>,
}

impl<'a> LineIndex<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        LineIndex {
            lines: Lines::from_data(data),
        }
    }

    /// Source locations of an address, innermost first: the line-table row,
    /// then the call site of each enclosing inlined subroutine.
    pub fn chain(&self, addr: u64) -> Vec<(String, u32)> {
        self.lines
            .frames(addr)
            .into_iter()
            .filter_map(|f| Some((f.file?, f.line.unwrap_or(0))))
            .collect()
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
        self.lines.location(addr)
    }
}
