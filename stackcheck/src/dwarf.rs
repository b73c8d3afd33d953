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
        let load = |id: gimli::SectionId| -> Result<R<'a>, gimli::Error> {
            let data = img
                .file
                .section_by_name(id.name())
                .and_then(|s| s.data().ok())
                .unwrap_or(&[]);
            Ok(EndianSlice::new(data, LittleEndian))
        };
        let has_info = img.file.section_by_name(".debug_info").is_some();
        let ctx = if has_info {
            gimli::Dwarf::load(load)
                .ok()
                .and_then(|d| Context::from_dwarf(d).ok())
        } else {
            None
        };
        Lines { ctx }
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
