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
