//! The `BACKTRACE` block of docs/serial-formats.md, shared by the kernel and
//! host tools.

use crate::{Frame, Memory, RowSource, StopReason, Walk};
use core::fmt::{self, Write};

/// Writes one backtrace block incrementally: [`BacktraceWriter::begin`],
/// then [`BacktraceWriter::frame`] per frame, then [`BacktraceWriter::end`].
///
/// ```text
/// BACKTRACE BEGIN build-id=<hex>
///   #00 pc=0x... sp=0x... name+0x45
///   #01 pc=0x... sp=0x... <unknown>
///   #02 pc=0x... sp=0x... [exception vector=14] name+0x10
/// BACKTRACE END frames=3 stop=<reason>
/// ```
pub struct BacktraceWriter<'o, W: Write + ?Sized> {
    out: &'o mut W,
    frames: usize,
}

impl<'o, W: Write + ?Sized> BacktraceWriter<'o, W> {
    /// Writes the `BACKTRACE BEGIN` line.
    // Out of line: the formatting temporaries of one line stay in this
    // frame, not in the caller's walking loop (fault-path stack).
    #[inline(never)]
    pub fn begin(out: &'o mut W, build_id: &[u8]) -> Result<Self, fmt::Error> {
        out.write_str("BACKTRACE BEGIN build-id=")?;
        for b in build_id {
            write!(out, "{b:02x}")?;
        }
        out.write_char('\n')?;
        Ok(BacktraceWriter { out, frames: 0 })
    }

    /// Writes one frame line. `symbol` is the symbol containing
    /// `frame.lookup_pc()` as (demangled name, offset of `lookup_pc` from the
    /// symbol start); the printed offset is that of `pc`. `vector` is the
    /// exception vector for frames entered through an exception; when such a
    /// frame's vector is unknown the marker is `[exception vector=?]`.
    // Out of line: the formatting temporaries of one line stay in this
    // frame, not in the caller's walking loop (fault-path stack).
    #[inline(never)]
    pub fn frame(
        &mut self,
        frame: &Frame,
        symbol: Option<(&str, u64)>,
        vector: Option<u32>,
    ) -> fmt::Result {
        write!(
            self.out,
            "  #{:02} pc={:#018x} sp={:#018x} ",
            self.frames, frame.pc, frame.sp
        )?;
        self.frames += 1;
        if frame.exception.is_some() {
            match vector {
                Some(v) => write!(self.out, "[exception vector={v}] ")?,
                None => self.out.write_str("[exception vector=?] ")?,
            }
        }
        match symbol {
            Some((name, off)) => {
                let off = off.wrapping_add(frame.pc.wrapping_sub(frame.lookup_pc()));
                writeln!(self.out, "{name}+{off:#x}")
            }
            None => self.out.write_str("<unknown>\n"),
        }
    }

    /// Number of frame lines written so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Writes the `BACKTRACE END` line.
    // Out of line: the formatting temporaries of one line stay in this
    // frame, not in the caller's walking loop (fault-path stack).
    #[inline(never)]
    pub fn end(self, stop: StopReason) -> fmt::Result {
        writeln!(
            self.out,
            "BACKTRACE END frames={} stop={}",
            self.frames,
            stop.name()
        )
    }
}

/// Runs `walk` to its end and writes the whole block. `symbolize(lookup_pc)`
/// returns (name, offset of `lookup_pc` in it); `vector(frame)` returns the
/// exception vector for frames whose `exception` is set. Returns the stop
/// reason.
pub fn write_backtrace<'s, W, M, S>(
    out: &mut W,
    build_id: &[u8],
    mut walk: Walk<'_, M, S>,
    mut symbolize: impl FnMut(u64) -> Option<(&'s str, u64)>,
    mut vector: impl FnMut(&Frame) -> Option<u32>,
) -> Result<StopReason, fmt::Error>
where
    W: Write + ?Sized,
    M: Memory + ?Sized,
    S: RowSource,
{
    let mut w = BacktraceWriter::begin(out, build_id)?;
    for frame in walk.by_ref() {
        let sym = symbolize(frame.lookup_pc());
        let vec = if frame.exception.is_some() {
            vector(&frame)
        } else {
            None
        };
        w.frame(&frame, sym, vec)?;
    }
    let stop = walk.stop_reason().unwrap_or(StopReason::FrameLimit);
    w.end(stop)?;
    Ok(stop)
}

/// One line of a `BACKTRACE` block read back: the inverse of
/// [`BacktraceWriter`], for host tools reading a serial log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BacktraceLine<'a> {
    /// `BACKTRACE BEGIN build-id=<hex>`; the hex digits as written (empty
    /// when the kernel had no build id).
    Begin { build_id: &'a str },
    /// `#NN pc=.. sp=.. [exception vector=..] symbol`.
    Frame(FrameLine<'a>),
    /// `BACKTRACE END frames=<n> stop=<reason>`.
    End { frames: usize, stop: StopReason },
}

/// A frame line of a `BACKTRACE` block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLine<'a> {
    pub index: usize,
    pub pc: u64,
    pub sp: u64,
    /// `Some` for a frame entered through an exception, holding its vector
    /// when the kernel knew it (`[exception vector=?]` is `Some(None)`).
    pub exception: Option<Option<u32>>,
    /// The text after the frame's fields: `name+0xoff` or `<unknown>`, as
    /// written (see [`FrameLine::symbol`]).
    pub text: &'a str,
}

impl<'a> FrameLine<'a> {
    /// The symbol as (name, offset of `pc` from its start); `None` for
    /// `<unknown>` or text without a `+0x<hex>` offset.
    pub fn symbol(&self) -> Option<(&'a str, u64)> {
        let (name, off) = self.text.rsplit_once("+0x")?;
        Some((name, hex_digits(off)?))
    }
}

/// Why a line that starts like a `BACKTRACE` line could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// `BACKTRACE BEGIN` without `build-id=<hex>`.
    Begin,
    /// A `#NN` line without `pc=0x<hex> sp=0x<hex>` or with a malformed
    /// exception marker.
    Frame,
    /// `BACKTRACE END` without `frames=<n> stop=<known reason>`.
    End,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Begin => "malformed BACKTRACE BEGIN line (want `build-id=<hex>`)",
            Self::Frame => "malformed backtrace frame (want `#NN pc=0x<hex> sp=0x<hex> ...`)",
            Self::End => "malformed BACKTRACE END line (want `frames=<n> stop=<reason>`)",
        })
    }
}

/// Hex digits only (no sign, no prefix, at most 16 of them).
fn hex_digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Decimal digits only (no sign).
fn dec_digits<T: core::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn field<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    s.strip_prefix(key)
}

impl<'a> BacktraceLine<'a> {
    /// Reads one serial-log line. Surrounding whitespace (and a `\r`) is
    /// ignored. `Ok(None)`: the line is not a `BACKTRACE` line (a frame line
    /// starts with `#` and a digit). Never panics.
    pub fn parse(line: &'a str) -> Result<Option<Self>, ParseError> {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("BACKTRACE BEGIN") {
            let id = field(rest.trim(), "build-id=").ok_or(ParseError::Begin)?;
            if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ParseError::Begin);
            }
            return Ok(Some(Self::Begin { build_id: id }));
        }
        if let Some(rest) = line.strip_prefix("BACKTRACE END") {
            return parse_end(rest.trim()).map(Some).ok_or(ParseError::End);
        }
        match line.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => parse_frame(rest)
                .map(|f| Some(Self::Frame(f)))
                .ok_or(ParseError::Frame),
            _ => Ok(None),
        }
    }
}

fn parse_end(rest: &str) -> Option<BacktraceLine<'_>> {
    let (frames, stop) = rest.split_once(' ')?;
    let frames = dec_digits(field(frames, "frames=")?)?;
    let stop = StopReason::from_name(field(stop.trim(), "stop=")?)?;
    Some(BacktraceLine::End { frames, stop })
}

/// `rest` is a frame line after its `#`.
fn parse_frame(rest: &str) -> Option<FrameLine<'_>> {
    let (index, rest) = rest.split_once(' ')?;
    let (pc, rest) = rest.trim_start().split_once(' ').unwrap_or((rest, ""));
    let (sp, rest) = rest.trim_start().split_once(' ').unwrap_or((rest, ""));
    let mut text = rest.trim();
    let mut exception = None;
    if let Some(r) = text.strip_prefix("[exception vector=") {
        let (vector, after) = r.split_once(']')?;
        exception = Some(if vector == "?" {
            None
        } else {
            Some(dec_digits(vector)?)
        });
        text = after.trim_start();
    }
    Some(FrameLine {
        index: dec_digits(index)?,
        pc: hex_digits(field(pc, "pc=0x")?)?,
        sp: hex_digits(field(sp, "sp=0x")?)?,
        exception,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExceptionEntry, Regs};

    /// A `fmt::Write` into a fixed buffer (the crate is `no_std`).
    struct Buf {
        bytes: [u8; 1024],
        len: usize,
    }

    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
            self.bytes
                .get_mut(self.len..end)
                .ok_or(fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    impl Buf {
        fn text(&self) -> &str {
            core::str::from_utf8(&self.bytes[..self.len]).unwrap()
        }
    }

    fn frame(pc: u64, sp: u64, exact: bool, exception: bool) -> Frame {
        Frame {
            index: 0,
            pc,
            sp,
            cfa: None,
            exception: exception.then_some(ExceptionEntry {
                stub_pc: 0,
                stub_cfa: 0,
            }),
            pc_is_exact: exact,
            regs: Regs::default(),
            valid: 0,
        }
    }

    #[test]
    fn writer_output_parses_back_to_the_same_fields() {
        let frames = [
            (
                frame(u64::MAX, 0, true, false),
                Some(("a::b<c>::{{closure}}", 0)),
                None,
            ),
            (frame(0x1000, 0x2000, false, false), None, None),
            (frame(0x30, 0x40, true, true), Some(("x", 0x10)), Some(14)),
            (frame(0x50, 0x60, true, true), Some(("y", 0)), None),
            (frame(0, u64::MAX, false, true), None, Some(u32::MAX)),
        ];
        let mut buf = Buf {
            bytes: [0; 1024],
            len: 0,
        };
        let mut w = BacktraceWriter::begin(&mut buf, &[0xab, 0x01]).unwrap();
        for (f, sym, vec) in &frames {
            w.frame(f, *sym, *vec).unwrap();
        }
        w.end(StopReason::BadMemory).unwrap();
        let mut lines = buf.text().lines();
        let begin = BacktraceLine::parse(lines.next().unwrap());
        assert_eq!(begin, Ok(Some(BacktraceLine::Begin { build_id: "ab01" })));
        for (i, (f, sym, vec)) in frames.iter().enumerate() {
            let Ok(Some(BacktraceLine::Frame(p))) = BacktraceLine::parse(lines.next().unwrap())
            else {
                panic!("frame {i} did not parse");
            };
            assert_eq!((p.index, p.pc, p.sp), (i, f.pc, f.sp));
            assert_eq!(p.exception, f.exception.map(|_| *vec));
            // The printed offset is that of pc, not of lookup_pc.
            let want = sym.map(|(n, off)| (n, off + f.pc.wrapping_sub(f.lookup_pc())));
            assert_eq!(p.symbol(), want);
        }
        let end = BacktraceLine::parse(lines.next().unwrap());
        let want = BacktraceLine::End {
            frames: frames.len(),
            stop: StopReason::BadMemory,
        };
        assert_eq!(end, Ok(Some(want)));
        assert_eq!(lines.next(), None);
    }

    /// A block captured from a kernel boot's serial log (panic backtrace),
    /// `\r` line ends as the serial console writes them.
    const CAPTURED: &str = "BACKTRACE BEGIN build-id=00002a9adc5b90f03a2b3c80577d0ffab21a82f5\r
  #05 pc=0xffffffff80008b3c sp=0xffffff00001afda0 <svsm_kernel::testcases::ThroughCore as core::fmt::Display>::fmt+0x1c\r
  #19 pc=0xffffffff80000007 sp=0xffffff0000020000 _start+0x7\r
BACKTRACE END frames=20 stop=end-of-stack\r
";

    #[test]
    fn parses_a_captured_kernel_block() {
        let got: [_; 4] = core::array::from_fn(|i| {
            BacktraceLine::parse(CAPTURED.lines().nth(i).unwrap()).unwrap()
        });
        let id = "00002a9adc5b90f03a2b3c80577d0ffab21a82f5";
        assert_eq!(got[0], Some(BacktraceLine::Begin { build_id: id }));
        let Some(BacktraceLine::Frame(f)) = got[1] else {
            panic!("{:?}", got[1]);
        };
        assert_eq!(
            (f.index, f.pc, f.sp),
            (5, 0xffffffff80008b3c, 0xffffff00001afda0)
        );
        assert_eq!(f.exception, None);
        let name = "<svsm_kernel::testcases::ThroughCore as core::fmt::Display>::fmt";
        assert_eq!(f.symbol(), Some((name, 0x1c)));
        let Some(BacktraceLine::Frame(f)) = got[2] else {
            panic!("{:?}", got[2]);
        };
        assert_eq!((f.index, f.symbol()), (19, Some(("_start", 7))));
        let end = BacktraceLine::End {
            frames: 20,
            stop: StopReason::EndOfStack,
        };
        assert_eq!(got[3], Some(end));
    }

    #[test]
    fn other_lines_are_ignored_and_broken_ones_refused() {
        for l in ["", "SVSM: boot", "# comment", "#x", "STACK-HWM task=1"] {
            assert_eq!(BacktraceLine::parse(l), Ok(None), "{l:?}");
        }
        let frame_errors = [
            "#0",
            "#0 pc=0x1",
            "#0 pc=1 sp=0x2",
            "#0 pc=0x+1 sp=0x2",
            "#0 pc=0x1 sp=0x10000000000000000",
            "#99999999999999999999999 pc=0x1 sp=0x2",
            "#0 pc=0x1 sp=0x2 [exception vector=14 x",
            "#0 pc=0x1 sp=0x2 [exception vector=-1] x",
            "#0 pc=0x1 sp=0x2 [exception vector=99999999999] x",
        ];
        for l in frame_errors {
            assert_eq!(BacktraceLine::parse(l), Err(ParseError::Frame), "{l:?}");
        }
        for l in ["BACKTRACE BEGIN", "BACKTRACE BEGIN build-id=zz"] {
            assert_eq!(BacktraceLine::parse(l), Err(ParseError::Begin), "{l:?}");
        }
        let end_errors = [
            "BACKTRACE END",
            "BACKTRACE END frames=1",
            "BACKTRACE END frames=x stop=loop",
            "BACKTRACE END frames=1 stop=later",
        ];
        for l in end_errors {
            assert_eq!(BacktraceLine::parse(l), Err(ParseError::End), "{l:?}");
        }
        let Ok(Some(BacktraceLine::Frame(f))) = BacktraceLine::parse("#1 pc=0x1 sp=0x2 outer")
        else {
            panic!();
        };
        assert_eq!((f.text, f.symbol()), ("outer", None));
    }
}
