//! The one-line guard-hit report (exact format in `docs/guards.md`).

use core::fmt;

use crate::kind::{StackKind, valid_name};
use crate::registry::{Classification, StackInfo, StackRegistry};

/// CPU state at the fault, as the exception handler saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultContext {
    /// RIP of the faulting instruction.
    pub rip: u64,
    /// RSP of the interrupted context.
    pub rsp: u64,
    /// CR2 (the faulting address of a #PF).
    pub cr2: u64,
}

/// Which guard was hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Lower guard: the stack grew past its bottom.
    Overflow,
    /// Upper guard: something read or wrote above the top.
    Underflow,
}

/// A guard hit, ready to print with `{}` (one line, no newline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardReport<'a> {
    pub stack: &'a StackInfo,
    pub direction: Direction,
    /// Bytes past the limit of the address that hit the guard: for an
    /// overflow `bottom - addr`, for an underflow `addr - top + 1`.
    pub past_limit: u64,
    /// The address that hit the guard: CR2, or RSP when CR2 is not in a
    /// guard of this stack but RSP is below its bottom (see [`Self::new`]).
    pub hit_addr: u64,
    pub ctx: FaultContext,
}

impl<'a> GuardReport<'a> {
    /// Builds the report if the fault hit one of `stack`'s guards: CR2 is
    /// in a guard, or (for a #DF, whose CR2 may be stale) RSP is in the
    /// lower guard. `None` otherwise.
    pub fn new(stack: &'a StackInfo, ctx: FaultContext) -> Option<Self> {
        let r = &stack.range;
        let (direction, hit_addr) = if r.contains_guarded(ctx.cr2) && !r.contains(ctx.cr2) {
            let dir = if ctx.cr2 < r.bottom {
                Direction::Overflow
            } else {
                Direction::Underflow
            };
            (dir, ctx.cr2)
        } else if r.guard_lo <= ctx.rsp && ctx.rsp < r.bottom {
            (Direction::Overflow, ctx.rsp)
        } else {
            return None;
        };
        let past_limit = match direction {
            Direction::Overflow => r.bottom - hit_addr,
            Direction::Underflow => hit_addr - r.top + 1,
        };
        Some(GuardReport {
            stack,
            direction,
            past_limit,
            hit_addr,
            ctx,
        })
    }

    /// Writes the report line (no newline) to any `fmt::Write`.
    pub fn write_to<W: fmt::Write>(&self, w: &mut W) -> fmt::Result {
        write!(w, "{self}")
    }

    /// How far RSP itself is past the limit in the report's direction.
    pub fn rsp_past_limit(&self) -> u64 {
        match self.direction {
            Direction::Overflow => self.stack.rsp_below_bottom(self.ctx.rsp),
            Direction::Underflow => self.stack.rsp_above_top(self.ctx.rsp),
        }
    }
}

impl fmt::Display for GuardReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.stack;
        let what = match self.direction {
            Direction::Overflow => "OVERFLOW",
            Direction::Underflow => "UNDERFLOW",
        };
        write!(
            f,
            "STACK {what}: stack={}:{} cpu={} task=",
            s.kind.name(),
            s.name,
            s.owner.cpu
        )?;
        match s.owner.task {
            Some(t) => write!(f, "{t}")?,
            None => f.write_str("-")?,
        }
        write!(
            f,
            " rip={:#018x} rsp={:#018x} cr2={:#018x} past-limit={} bytes ",
            self.ctx.rip, self.ctx.rsp, self.ctx.cr2, self.past_limit
        )?;
        let rsp = self.rsp_past_limit();
        match self.direction {
            Direction::Overflow => write!(
                f,
                "(guard hit {} bytes below bottom {:#018x}; rsp {rsp} bytes below bottom)",
                self.past_limit, s.range.bottom
            ),
            Direction::Underflow => write!(
                f,
                "(guard hit {} bytes into the upper guard above top {:#018x}; rsp {rsp} bytes above top)",
                self.past_limit, s.range.top
            ),
        }
    }
}

impl<const N: usize> StackRegistry<N> {
    /// The guard-hit report for a fault, if CR2 (or, failing that, RSP) is
    /// in a registered stack's guard. The kernel prints it verbatim with
    /// `{}` at column 0, then halts with the stack-overflow exit code.
    pub fn guard_report(&self, ctx: FaultContext) -> Option<GuardReport<'_>> {
        let by_cr2 = self.classify(ctx.cr2);
        let id = if by_cr2.is_guard_hit() {
            by_cr2.stack()
        } else {
            match self.classify(ctx.rsp) {
                c @ Classification::Overflow { .. } => c.stack(),
                _ => None,
            }
        }?;
        GuardReport::new(self.get(id)?, ctx)
    }
}

/// A report line read back by host tools (QEMU tests): every field of the
/// format in `docs/guards.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedReport<'a> {
    pub direction: Direction,
    pub kind: StackKind,
    pub name: &'a str,
    pub cpu: u32,
    pub task: Option<u32>,
    pub rip: u64,
    pub rsp: u64,
    pub cr2: u64,
    pub past_limit: u64,
    /// `bottom` for an overflow, `top` for an underflow.
    pub limit: u64,
    pub rsp_past_limit: u64,
}

/// Why a line is not a valid report line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportParseError {
    /// Does not start with `STACK OVERFLOW: ` or `STACK UNDERFLOW: `.
    NotReport,
    /// The text does not match the format at the named part.
    Malformed(&'static str),
    UnknownKind,
    BadName,
    /// The two copies of the past-limit count differ.
    Inconsistent,
}

impl fmt::Display for ReportParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportParseError::NotReport => f.write_str("not a STACK OVERFLOW/UNDERFLOW line"),
            ReportParseError::Malformed(at) => write!(f, "malformed report at `{at}`"),
            ReportParseError::UnknownKind => f.write_str("unknown stack kind"),
            ReportParseError::BadName => f.write_str("bad stack name"),
            ReportParseError::Inconsistent => f.write_str("past-limit and guard-hit counts differ"),
        }
    }
}

/// Strips `lit` from the front of `s`.
fn lit<'a>(s: &'a str, lit: &'static str) -> Result<&'a str, ReportParseError> {
    s.strip_prefix(lit).ok_or(ReportParseError::Malformed(lit))
}

/// Splits a decimal number off the front of `s`.
fn dec<'a>(s: &'a str, what: &'static str) -> Result<(u64, &'a str), ReportParseError> {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    let n = s[..end]
        .parse()
        .map_err(|_| ReportParseError::Malformed(what))?;
    Ok((n, &s[end..]))
}

/// Splits `0x` and exactly 16 lowercase hex digits off the front of `s`.
fn hex<'a>(s: &'a str, what: &'static str) -> Result<(u64, &'a str), ReportParseError> {
    let bad = ReportParseError::Malformed(what);
    let digits = s.strip_prefix("0x").ok_or(bad)?;
    let h = digits.get(..16).ok_or(bad)?;
    if !h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(bad);
    }
    let n = u64::from_str_radix(h, 16).map_err(|_| bad)?;
    Ok((n, &digits[16..]))
}

impl<'a> ParsedReport<'a> {
    /// Parses one report line (trailing `\r`/`\n` ignored, otherwise exact).
    pub fn parse(line: &'a str) -> Result<Self, ReportParseError> {
        let s = line.trim_end_matches(['\r', '\n']);
        let (direction, s) = if let Some(r) = s.strip_prefix("STACK OVERFLOW: ") {
            (Direction::Overflow, r)
        } else if let Some(r) = s.strip_prefix("STACK UNDERFLOW: ") {
            (Direction::Underflow, r)
        } else {
            return Err(ReportParseError::NotReport);
        };
        let s = lit(s, "stack=")?;
        let (kind, s) = s
            .split_once(':')
            .ok_or(ReportParseError::Malformed("stack="))?;
        let kind = StackKind::from_name(kind).ok_or(ReportParseError::UnknownKind)?;
        let (name, s) = s
            .split_once(' ')
            .ok_or(ReportParseError::Malformed(" cpu="))?;
        if !valid_name(name) {
            return Err(ReportParseError::BadName);
        }
        let (cpu, s) = dec(lit(s, "cpu=")?, "cpu=")?;
        let cpu = u32::try_from(cpu).map_err(|_| ReportParseError::Malformed("cpu="))?;
        let s = lit(s, " task=")?;
        let (task, s) = match s.strip_prefix('-') {
            Some(r) => (None, r),
            None => {
                let (t, r) = dec(s, " task=")?;
                let t = u32::try_from(t).map_err(|_| ReportParseError::Malformed(" task="))?;
                (Some(t), r)
            }
        };
        let (rip, s) = hex(lit(s, " rip=")?, " rip=")?;
        let (rsp, s) = hex(lit(s, " rsp=")?, " rsp=")?;
        let (cr2, s) = hex(lit(s, " cr2=")?, " cr2=")?;
        let (past_limit, s) = dec(lit(s, " past-limit=")?, " past-limit=")?;
        let (again, s) = dec(lit(s, " bytes (guard hit ")?, " bytes (guard hit ")?;
        let (which, edge, rsp_words) = match direction {
            Direction::Overflow => (" bytes below bottom ", "; rsp ", " bytes below bottom)"),
            Direction::Underflow => (
                " bytes into the upper guard above top ",
                "; rsp ",
                " bytes above top)",
            ),
        };
        let (limit, s) = hex(lit(s, which)?, which)?;
        let (rsp_past_limit, s) = dec(lit(s, edge)?, edge)?;
        if !lit(s, rsp_words)?.is_empty() {
            return Err(ReportParseError::Malformed("end of line"));
        }
        if again != past_limit {
            return Err(ReportParseError::Inconsistent);
        }
        Ok(ParsedReport {
            direction,
            kind,
            name,
            cpu,
            task,
            rip,
            rsp,
            cr2,
            past_limit,
            limit,
            rsp_past_limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::{IstKind, Owner, StackKind};
    use crate::layout::*;
    use crate::registry::StackRegistry;
    use std::boxed::Box;
    use std::string::{String, ToString};

    fn setup() -> Box<StackRegistry<16>> {
        let mut r = Box::new(StackRegistry::new());
        r.register_boot_stack().unwrap();
        r.allocate(StackKind::Ist(IstKind::PageFault), Owner::cpu(0), "pf0")
            .unwrap();
        r.allocate(StackKind::Task, Owner::task(1, 42), "worker")
            .unwrap();
        r
    }

    fn report(r: &StackRegistry<16>, rip: u64, rsp: u64, cr2: u64) -> Option<String> {
        r.guard_report(FaultContext { rip, rsp, cr2 })
            .map(|g| g.to_string())
    }

    #[test]
    fn boot_overflow_exact_text() {
        let r = setup();
        let rsp = BOOT_STACK_BOTTOM - 8;
        assert_eq!(
            report(&r, 0xffff_ffff_8001_2345, rsp, rsp).unwrap(),
            "STACK OVERFLOW: stack=boot:boot cpu=0 task=- rip=0xffffffff80012345 \
             rsp=0xffffff000000fff8 cr2=0xffffff000000fff8 past-limit=8 bytes \
             (guard hit 8 bytes below bottom 0xffffff0000010000; rsp 8 bytes below bottom)"
        );
    }

    #[test]
    fn task_big_frame_probe_exact_text() {
        // A probed big frame: RSP is still in the stack, the probe writes a
        // page lower and hits the guard.
        let r = setup();
        let t = slot_layout(2, TASK_STACK_SIZE).unwrap();
        let rsp = t.bottom + 0x100;
        let cr2 = t.bottom + 0x100 - 0x1000;
        assert_eq!(
            report(&r, 0xffff_ffff_8000_1000, rsp, cr2).unwrap(),
            "STACK OVERFLOW: stack=task:worker cpu=1 task=42 rip=0xffffffff80001000 \
             rsp=0xffffff00000a8100 cr2=0xffffff00000a7100 past-limit=3840 bytes \
             (guard hit 3840 bytes below bottom 0xffffff00000a8000; rsp 0 bytes below bottom)"
        );
    }

    #[test]
    fn underflow_exact_text() {
        let r = setup();
        let pf = slot_layout(1, IST_PF_STACK_SIZE).unwrap();
        assert_eq!(
            report(&r, 0xffff_ffff_8000_2000, pf.top + 8, pf.top).unwrap(),
            "STACK UNDERFLOW: stack=ist-pf:pf0 cpu=0 task=- rip=0xffffffff80002000 \
             rsp=0xffffff0000070008 cr2=0xffffff0000070000 past-limit=1 bytes \
             (guard hit 1 bytes into the upper guard above top 0xffffff0000070000; \
             rsp 8 bytes above top)"
        );
    }

    #[test]
    fn stale_cr2_falls_back_to_rsp_below_bottom() {
        let r = setup();
        let pf = slot_layout(1, IST_PF_STACK_SIZE).unwrap();
        let g = r
            .guard_report(FaultContext {
                rip: 1,
                rsp: pf.bottom - 0x30,
                cr2: 0x1234,
            })
            .unwrap();
        assert_eq!(g.direction, Direction::Overflow);
        assert_eq!(g.hit_addr, pf.bottom - 0x30);
        assert_eq!(g.past_limit, 0x30);
        assert_eq!(g.stack.name, "pf0");
        // RSP above the top (an empty stack's RSP is top) is not a hit.
        assert!(report(&r, 1, pf.top, 0x1234).is_none());
        assert!(report(&r, 1, pf.top + 0x10, 0x1234).is_none());
    }

    #[test]
    fn no_report_outside_guards() {
        let r = setup();
        assert!(report(&r, 1, BOOT_STACK_TOP - 0x100, 0).is_none());
        assert!(report(&r, 1, BOOT_STACK_TOP - 0x100, BOOT_STACK_BOTTOM).is_none());
        assert!(report(&r, 1, BOOT_STACK_TOP - 0x100, STACK_AREA_BASE - 1).is_none());
        let info = r.get(crate::StackId(0)).unwrap();
        assert!(
            GuardReport::new(
                info,
                FaultContext {
                    rip: 0,
                    rsp: BOOT_STACK_TOP,
                    cr2: 0
                }
            )
            .is_none()
        );
    }

    #[test]
    fn report_round_trips_through_the_parser() {
        let r = setup();
        let t = slot_layout(2, TASK_STACK_SIZE).unwrap();
        let pf = slot_layout(1, IST_PF_STACK_SIZE).unwrap();
        let cases = [
            (
                0xffff_ffff_8000_1234,
                BOOT_STACK_BOTTOM - 8,
                BOOT_STACK_BOTTOM - 8,
            ),
            (1, t.bottom + 0x100, t.bottom + 0x100 - 0x1000),
            (2, pf.top + 8, pf.top),
            (3, pf.bottom - 0x40, 0),
        ];
        for (rip, rsp, cr2) in cases {
            let g = r.guard_report(FaultContext { rip, rsp, cr2 }).unwrap();
            let mut line = String::new();
            g.write_to(&mut line).unwrap();
            line.push('\n');
            let p = ParsedReport::parse(&line).unwrap();
            assert_eq!(p.direction, g.direction);
            assert_eq!(p.kind, g.stack.kind);
            assert_eq!(p.name, g.stack.name);
            assert_eq!((p.cpu, p.task), (g.stack.owner.cpu, g.stack.owner.task));
            assert_eq!((p.rip, p.rsp, p.cr2), (rip, rsp, cr2));
            assert_eq!(p.past_limit, g.past_limit);
            assert_eq!(p.rsp_past_limit, g.rsp_past_limit());
            let limit = match g.direction {
                Direction::Overflow => g.stack.range.bottom,
                Direction::Underflow => g.stack.range.top,
            };
            assert_eq!(p.limit, limit);
        }
    }

    #[test]
    fn report_parse_errors() {
        use ReportParseError::*;
        let good = "STACK OVERFLOW: stack=boot:boot cpu=0 task=- rip=0xffffffff80012345 \
                    rsp=0xffffff000000fff8 cr2=0xffffff000000fff8 past-limit=8 bytes \
                    (guard hit 8 bytes below bottom 0xffffff0000010000; rsp 8 bytes below bottom)";
        assert!(ParsedReport::parse(good).is_ok());
        let cases: [(String, ReportParseError); 8] = [
            ("Double-Fault at RIP".into(), NotReport),
            (good.replace("boot:boot", "bogus:boot"), UnknownKind),
            (good.replace("boot:boot", "boot:b=t"), BadName),
            (good.replace("cpu=0", "cpu=x"), Malformed("cpu=")),
            (
                good.replace("0xffffffff80012345", "0xFFFFFFFF80012345"),
                Malformed(" rip="),
            ),
            (
                good.replace("0xffffffff80012345", "0x80012345"),
                Malformed(" rip="),
            ),
            (good.replace("guard hit 8", "guard hit 9"), Inconsistent),
            (std::format!("{good} extra"), Malformed("end of line")),
        ];
        for (line, err) in cases {
            assert_eq!(ParsedReport::parse(&line), Err(err), "{line}");
        }
        let under = good.replace("OVERFLOW", "UNDERFLOW");
        assert_eq!(
            ParsedReport::parse(&under),
            Err(Malformed(" bytes into the upper guard above top "))
        );
    }
}
