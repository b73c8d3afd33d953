//! Symbolize BACKTRACE blocks of a serial log (docs/serial-formats.md).

use std::fmt::Write as _;

use anyhow::Result;

use crate::bail_input;
use crate::dwarf::Lines;
use crate::elf::Image;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameLine {
    pub index: u32,
    pub pc: u64,
    pub sp: u64,
    pub exception: Option<u32>,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub build_id: String,
    pub frames: Vec<FrameLine>,
    pub end: Option<String>,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// Parse every BACKTRACE block in a log.
pub fn parse_log(log: &str) -> Result<Vec<Block>> {
    let mut blocks = Vec::new();
    let mut cur: Option<Block> = None;
    for (ln, raw) in log.lines().enumerate() {
        let line = raw.trim();
        if let Some(rest) = line.strip_prefix("BACKTRACE BEGIN") {
            let Some(id) = rest.trim().strip_prefix("build-id=") else {
                bail_input!("line {}: BACKTRACE BEGIN without build-id=", ln + 1);
            };
            let id = id.trim().to_ascii_lowercase();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
                bail_input!("line {}: malformed build-id `{id}`", ln + 1);
            }
            if let Some(b) = cur.take() {
                blocks.push(b);
            }
            cur = Some(Block {
                build_id: id,
                frames: Vec::new(),
                end: None,
            });
        } else if let Some(rest) = line.strip_prefix("BACKTRACE END") {
            if let Some(mut b) = cur.take() {
                b.end = Some(rest.trim().to_string());
                blocks.push(b);
            }
        } else if let Some(b) = cur.as_mut()
            && line.starts_with('#')
        {
            let mut parts = line.splitn(4, ' ');
            let idx = parts.next().and_then(|s| s[1..].parse::<u32>().ok());
            let pc = parts
                .next()
                .and_then(|s| s.strip_prefix("pc="))
                .and_then(hex);
            let sp = parts
                .next()
                .and_then(|s| s.strip_prefix("sp="))
                .and_then(hex);
            let (Some(index), Some(pc), Some(sp)) = (idx, pc, sp) else {
                bail_input!("line {}: malformed backtrace frame `{line}`", ln + 1);
            };
            let mut name = parts.next().unwrap_or("").trim().to_string();
            let mut exception = None;
            if let Some(r) = name.strip_prefix("[exception vector=")
                && let Some(end) = r.find(']')
            {
                exception = r[..end].parse().ok();
                name = r[end + 1..].trim().to_string();
            }
            b.frames.push(FrameLine {
                index,
                pc,
                sp,
                exception,
                name,
            });
        }
    }
    if let Some(b) = cur {
        blocks.push(b);
    }
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
                    format!("{}+{:#x}", func.demangled, f.pc - func.addr)
                })
                .unwrap_or_else(|| "<unknown>".into());
            let exc = f
                .exception
                .map(|v| format!(" [exception vector={v}]"))
                .unwrap_or_default();
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
        assert_eq!(b[0].frames[2].exception, Some(14));
        assert_eq!(b[0].frames[2].name, "svsm_kernel::x+0x10");
        assert_eq!(b[0].end.as_deref(), Some("frames=3 stop=end-of-stack"));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_log("nothing here").is_err());
        assert!(parse_log("BACKTRACE BEGIN build-id=zz\n").is_err());
        assert!(parse_log("BACKTRACE BEGIN build-id=ab\n #0 pc=12 sp=0x1\n").is_err());
    }
}
