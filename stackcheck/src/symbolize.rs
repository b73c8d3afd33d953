//! Symbolize BACKTRACE blocks of a serial log (docs/serial-formats.md).

use std::fmt::Write as _;

use anyhow::Result;
use svsm_unwinder::BacktraceLine;

use crate::bail_input;
use crate::dwarf::Lines;
use crate::elf::Image;

/// One frame line of a block, owned (the line format and its reader are
/// `svsm_unwinder::BacktraceLine`, next to the kernel's writer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameLine {
    pub index: usize,
    pub pc: u64,
    pub sp: u64,
    /// `Some` for a frame entered through an exception, with its vector if
    /// the kernel knew it.
    pub exception: Option<Option<u32>>,
    /// The kernel's symbol text (`name+0xoff` or `<unknown>`).
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub build_id: String,
    pub frames: Vec<FrameLine>,
    /// `frames=<n> stop=<reason>` of the END line, if the block has one.
    pub end: Option<String>,
}

/// Parse every BACKTRACE block in a log. Frame-like lines outside a block
/// are ignored; a malformed line inside one is an error naming it.
pub fn parse_log(log: &str) -> Result<Vec<Block>> {
    let mut blocks = Vec::new();
    let mut cur: Option<Block> = None;
    for (ln, line) in log.lines().enumerate() {
        if cur.is_none() && !line.trim_start().starts_with("BACKTRACE") {
            continue;
        }
        let parsed = match BacktraceLine::parse(line) {
            Ok(Some(p)) => p,
            Ok(None) => continue,
            Err(e) => bail_input!("line {}: {e}: `{}`", ln + 1, line.trim()),
        };
        match parsed {
            BacktraceLine::Begin { build_id } => {
                if build_id.is_empty() {
                    bail_input!("line {}: BACKTRACE BEGIN with an empty build-id", ln + 1);
                }
                blocks.extend(cur.take());
                cur = Some(Block {
                    build_id: build_id.to_ascii_lowercase(),
                    frames: Vec::new(),
                    end: None,
                });
            }
            BacktraceLine::End { frames, stop } => {
                if let Some(mut b) = cur.take() {
                    b.end = Some(format!("frames={frames} stop={stop}"));
                    blocks.push(b);
                }
            }
            BacktraceLine::Frame(f) => {
                if let Some(b) = cur.as_mut() {
                    b.frames.push(FrameLine {
                        index: f.index,
                        pc: f.pc,
                        sp: f.sp,
                        exception: f.exception,
                        name: f.text.to_string(),
                    });
                }
            }
        }
    }
    blocks.extend(cur);
    if blocks.is_empty() {
        bail_input!("no BACKTRACE BEGIN block in the log");
    }
    Ok(blocks)
}

/// Symbolize all blocks against the ELF. Fails on build-id mismatch.
pub fn symbolize(elf_data: &[u8], log: &str) -> Result<String> {
    let img = Image::parse(elf_data)?;
    let Some(id) = img.build_id() else {
        bail_input!("the ELF has no GNU build-id note; cannot verify it matches the log");
    };
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let blocks = parse_log(log)?;
    for b in &blocks {
        if b.build_id != id {
            bail_input!(
                "build-id mismatch: the log's backtrace is from build {} but the ELF is build {id}; refusing to symbolize with the wrong binary",
                b.build_id
            );
        }
    }
    let lines = Lines::new(&img);
    let mut out = String::new();
    for b in &blocks {
        let _ = writeln!(out, "backtrace (build-id {}):", b.build_id);
        for f in &b.frames {
            // Return addresses point after the call: look up pc-1, except for
            // the first frame and frames entered through an exception.
            let probe = if f.index == 0 || f.exception.is_some() {
                f.pc
            } else {
                f.pc.wrapping_sub(1)
            };
            let sym = img
                .function_containing(probe)
                .map(|i| {
                    let func = &img.functions[i];
                    format!("{}+{:#x}", func.demangled, f.pc.wrapping_sub(func.addr))
                })
                .unwrap_or_else(|| "<unknown>".into());
            let exc = match f.exception {
                Some(Some(v)) => format!(" [exception vector={v}]"),
                Some(None) => " [exception vector=?]".to_string(),
                None => String::new(),
            };
            let _ = writeln!(
                out,
                "#{:02} pc={:#018x} sp={:#018x}{exc} {sym}",
                f.index, f.pc, f.sp
            );
            let frames = lines.frames(probe);
            if frames.is_empty() {
                let _ = writeln!(out, "      at ??:0");
            }
            for sf in frames {
                let _ = writeln!(
                    out,
                    "    {}{} at {}:{}",
                    if sf.inlined { "(inlined) " } else { "" },
                    sf.function.as_deref().unwrap_or("??"),
                    sf.file.as_deref().unwrap_or("??"),
                    sf.line.unwrap_or(0)
                );
            }
        }
        if let Some(e) = &b.end {
            let _ = writeln!(out, "end: {e}");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_block() {
        let log = "boot\nBACKTRACE BEGIN build-id=ABcd01\n  #00 pc=0xffffffff80012345 sp=0xffffff0000012f40 svsm_kernel::foo::bar+0x45\n  #01 pc=0x10 sp=0x20 <unknown>\n  #02 pc=0x11 sp=0x21 [exception vector=14] svsm_kernel::x+0x10\nBACKTRACE END frames=3 stop=end-of-stack\n";
        let b = parse_log(log).unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].build_id, "abcd01");
        assert_eq!(b[0].frames.len(), 3);
        assert_eq!(b[0].frames[0].pc, 0xffffffff80012345);
        assert_eq!(b[0].frames[2].exception, Some(Some(14)));
        assert_eq!(b[0].frames[2].name, "svsm_kernel::x+0x10");
        assert_eq!(b[0].end.as_deref(), Some("frames=3 stop=end-of-stack"));
    }

    #[test]
    fn unknown_vector_still_marks_an_exception_frame() {
        let log = "BACKTRACE BEGIN build-id=ab\n  #00 pc=0x10 sp=0x20 [exception vector=?] <unknown>\n  # not a frame\nBACKTRACE END frames=1 stop=no-fde\n#1 outside\n";
        let b = parse_log(log).unwrap();
        assert_eq!(b[0].frames.len(), 1);
        assert_eq!(b[0].frames[0].exception, Some(None));
        assert_eq!(b[0].frames[0].name, "<unknown>");
        assert_eq!(b[0].end.as_deref(), Some("frames=1 stop=no-fde"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_log("nothing here").is_err());
        assert!(parse_log("BACKTRACE BEGIN build-id=zz\n").is_err());
        assert!(parse_log("BACKTRACE BEGIN build-id=ab\n #0 pc=12 sp=0x1\n").is_err());
    }
}
