//! High-water marks: stack painting, scanning, and the `STACK-HWM` line.

use core::fmt;

use crate::kind::{StackKind, valid_name};
use crate::registry::StackInfo;

/// The word painted over unused stack memory (little endian in memory). It
/// is a non-canonical address and an unlikely integer, so a live stack
/// word rarely equals it.
pub const PAINT_PATTERN: u64 = 0x57ac_cafe_57ac_cafe;

const PAT: [u8; 8] = PAINT_PATTERN.to_le_bytes();

/// Paints `stack` (lowest address first) with [`PAINT_PATTERN`]. Pattern
/// bytes follow offsets in the slice, so slices starting 8-byte aligned
/// hold whole pattern words. Never paint the live part of the stack you are
/// running on: paint `bottom..rsp - margin` only.
pub fn paint(stack: &mut [u8]) {
    let mut words = stack.chunks_exact_mut(8);
    for w in words.by_ref() {
        w.copy_from_slice(&PAT);
    }
    let tail = words.into_remainder();
    let n = tail.len();
    tail.copy_from_slice(&PAT[..n]);
}

/// Bytes of `stack` (lowest address first, as painted by [`paint`]) that
/// were ever used: the distance from the first 8-byte word, scanning up
/// from the bottom, that differs from the pattern to the top of the slice.
/// A trailing partial word counts as used if it differs. 0 if untouched.
pub fn high_water(stack: &[u8]) -> usize {
    let mut words = stack.chunks_exact(8);
    let mut offset = 0;
    for w in words.by_ref() {
        if w != PAT {
            return stack.len() - offset;
        }
        offset += 8;
    }
    let tail = words.remainder();
    if tail != &PAT[..tail.len()] {
        return stack.len() - offset;
    }
    0
}

/// Word version of [`high_water`] for a stack viewed as `&[u64]`: returns
/// used bytes.
pub fn paint_words_high_water(stack: &[u64]) -> usize {
    stack
        .iter()
        .position(|&w| w != PAINT_PATTERN)
        .map_or(0, |i| (stack.len() - i) * 8)
}

/// One `STACK-HWM` line: measured use of one stack at shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HwmRecord<'a> {
    pub kind: StackKind,
    pub name: &'a str,
    pub cpu: u32,
    pub task: Option<u32>,
    pub size: u64,
    pub used: u64,
}

impl StackInfo {
    /// The `STACK-HWM` record of this stack for `used` bytes.
    pub fn hwm_record(&self, used: u64) -> HwmRecord<'static> {
        HwmRecord {
            kind: self.kind,
            name: self.name,
            cpu: self.owner.cpu,
            task: self.owner.task,
            size: self.range.size(),
            used,
        }
    }
}

impl HwmRecord<'_> {
    /// Writes the line (no newline) to any `fmt::Write`.
    pub fn write_to<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        write!(w, "{self}")
    }
}

impl fmt::Display for HwmRecord<'_> {
    /// `STACK-HWM kind=<kind> name=<name> cpu=<n> task=<id|-> size=<bytes> used=<bytes>`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "STACK-HWM kind={} name={} cpu={} task=",
            self.kind, self.name, self.cpu
        )?;
        match self.task {
            Some(t) => write!(f, "{t}")?,
            None => f.write_str("-")?,
        }
        write!(f, " size={} used={}", self.size, self.used)
    }
}

/// Why a line is not a valid `STACK-HWM` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HwmParseError {
    /// The line does not start with `STACK-HWM `.
    NotHwmLine,
    /// Field `.0` is missing or out of order.
    MissingField(&'static str),
    /// Field `.0` is not a decimal number (or overflows).
    BadNumber(&'static str),
    /// Unknown stack kind.
    UnknownKind,
    /// Name empty or with characters outside `[A-Za-z0-9._-]`.
    BadName,
    /// Extra text after `used=`.
    TrailingData,
    /// `used` is larger than `size`.
    UsedExceedsSize,
}

impl fmt::Display for HwmParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HwmParseError::NotHwmLine => f.write_str("not a STACK-HWM line"),
            HwmParseError::MissingField(n) => write!(f, "missing or misplaced field `{n}=`"),
            HwmParseError::BadNumber(n) => write!(f, "field `{n}` is not a decimal number"),
            HwmParseError::UnknownKind => f.write_str("unknown stack kind"),
            HwmParseError::BadName => f.write_str("bad stack name"),
            HwmParseError::TrailingData => f.write_str("trailing data after `used=`"),
            HwmParseError::UsedExceedsSize => f.write_str("used exceeds size"),
        }
    }
}

fn number(field: &'static str, s: &str) -> Result<u64, HwmParseError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HwmParseError::BadNumber(field));
    }
    s.parse().map_err(|_| HwmParseError::BadNumber(field))
}

fn u32_number(field: &'static str, s: &str) -> Result<u32, HwmParseError> {
    u32::try_from(number(field, s)?).map_err(|_| HwmParseError::BadNumber(field))
}

impl<'a> HwmRecord<'a> {
    /// Parses one line as printed by the `Display` impl. Trailing `\r`/`\n`
    /// is ignored; anything else must match exactly (fields in order,
    /// single spaces).
    pub fn parse(line: &'a str) -> Result<Self, HwmParseError> {
        let line = line.trim_end_matches(['\r', '\n']);
        let rest = line
            .strip_prefix("STACK-HWM ")
            .ok_or(HwmParseError::NotHwmLine)?;
        let mut fields = rest.split(' ');
        let mut field = |name: &'static str| -> Result<&'a str, HwmParseError> {
            fields
                .next()
                .and_then(|f| f.strip_prefix(name))
                .and_then(|f| f.strip_prefix('='))
                .ok_or(HwmParseError::MissingField(name))
        };
        let kind = StackKind::from_name(field("kind")?).ok_or(HwmParseError::UnknownKind)?;
        let name = field("name")?;
        if !valid_name(name) {
            return Err(HwmParseError::BadName);
        }
        let cpu = u32_number("cpu", field("cpu")?)?;
        let task = match field("task")? {
            "-" => None,
            t => Some(u32_number("task", t)?),
        };
        let size = number("size", field("size")?)?;
        let used = number("used", field("used")?)?;
        if fields.next().is_some() {
            return Err(HwmParseError::TrailingData);
        }
        if used > size {
            return Err(HwmParseError::UsedExceedsSize);
        }
        Ok(HwmRecord {
            kind,
            name,
            cpu,
            task,
            size,
            used,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::{IstKind, Owner};
    use crate::layout::slot_layout;
    use std::string::ToString;
    use std::vec;

    #[test]
    fn untouched_stack_has_zero_use() {
        let mut s = vec![0u8; 4096];
        paint(&mut s);
        assert_eq!(high_water(&s), 0);
        assert_eq!(&s[..8], &PAINT_PATTERN.to_le_bytes());
        let words: vec::Vec<u64> = s
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(paint_words_high_water(&words), 0);
    }

    #[test]
    fn deepest_write_determines_use() {
        let mut s = vec![0u8; 4096];
        paint(&mut s);
        s[4000] = 0; // shallow use
        assert_eq!(high_water(&s), 4096 - 4000);
        s[1000] = 1; // deeper, inside word 125
        assert_eq!(high_water(&s), 4096 - 1000);
        s[7] = 0x11; // the very first word
        assert_eq!(high_water(&s), 4096);
        let words: vec::Vec<u64> = s
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(paint_words_high_water(&words), 4096);
    }

    #[test]
    fn word_granularity_and_partial_tail() {
        let mut s = vec![0u8; 20];
        paint(&mut s);
        assert_eq!(&s[16..], &PAINT_PATTERN.to_le_bytes()[..4], "tail painted");
        assert_eq!(high_water(&s), 0);
        s[19] = 0;
        assert_eq!(high_water(&s), 4, "changed tail counts as used");
        s[9] = 0;
        assert_eq!(high_water(&s), 12, "rounded to the word at offset 8");
        assert_eq!(high_water(&[]), 0);
    }

    #[test]
    fn hwm_line_format_and_parse() {
        let info = StackInfo {
            kind: StackKind::Ist(IstKind::DoubleFault),
            owner: Owner::cpu(0),
            name: "df0",
            range: slot_layout(1, 32 * 1024).unwrap(),
        };
        let line = info.hwm_record(1234).to_string();
        assert_eq!(
            line,
            "STACK-HWM kind=ist-df name=df0 cpu=0 task=- size=32768 used=1234"
        );
        assert_eq!(HwmRecord::parse(&line).unwrap(), info.hwm_record(1234));
        let t = "STACK-HWM kind=task name=w cpu=3 task=17 size=32768 used=0\r\n";
        let rec = HwmRecord::parse(t).unwrap();
        assert_eq!(rec.task, Some(17));
        assert_eq!(rec.cpu, 3);
        assert_eq!(rec.kind, StackKind::Task);
        assert_eq!(rec.to_string(), t.trim_end());
    }

    #[test]
    fn hwm_parse_errors() {
        use HwmParseError::*;
        let cases: [(&str, HwmParseError); 12] = [
            ("SVSM: ready", NotHwmLine),
            (
                " STACK-HWM kind=task name=w cpu=0 task=- size=1 used=0",
                NotHwmLine,
            ),
            (
                "STACK-HWM kind=bogus name=w cpu=0 task=- size=1 used=0",
                UnknownKind,
            ),
            (
                "STACK-HWM name=w kind=task cpu=0 task=- size=1 used=0",
                MissingField("kind"),
            ),
            (
                "STACK-HWM kind=task name= cpu=0 task=- size=1 used=0",
                BadName,
            ),
            (
                "STACK-HWM kind=task name=w cpu=+1 task=- size=1 used=0",
                BadNumber("cpu"),
            ),
            (
                "STACK-HWM kind=task name=w cpu=0 task=x size=1 used=0",
                BadNumber("task"),
            ),
            (
                "STACK-HWM kind=task name=w cpu=0 task=- size=99999999999999999999 used=0",
                BadNumber("size"),
            ),
            (
                "STACK-HWM kind=task name=w cpu=0 task=- size=1",
                MissingField("used"),
            ),
            (
                "STACK-HWM kind=task name=w cpu=0 task=- size=1 used=0 x",
                TrailingData,
            ),
            (
                "STACK-HWM kind=task name=w cpu=0 task=-  size=1 used=0",
                MissingField("size"),
            ),
            (
                "STACK-HWM kind=task name=w cpu=0 task=- size=1 used=2",
                UsedExceedsSize,
            ),
        ];
        for (line, err) in cases {
            assert_eq!(HwmRecord::parse(line), Err(err), "{line}");
            assert!(!err.to_string().is_empty());
        }
    }
}
