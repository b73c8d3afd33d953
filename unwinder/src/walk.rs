//! The walk: steps from a register context to its callers, frame by frame,
//! with the stop rules of docs/unwinder.md. Where each frame's rules come
//! from is a [`RowSource`]: gimli over `.eh_frame` ([`GimliRows`]) or
//! compact tables only ([`TableRows`]).

use crate::frame::{ExceptionEntry, Frame, Memory, StopReason};
use crate::gimli_eval::{GimliRows, UnwindState};
use crate::module::Module;
use crate::regs::{Regs, VALID_ALL, VALID_CALLEE_SAVED};
use crate::table::{TableRows, UnwindTable};
use crate::{DEFAULT_FRAME_LIMIT, MAX_CROSSINGS};

/// What evaluating one frame's CFI gives: its CFA, whether its CIE is a
/// signal frame, and the validity mask of the caller's registers (`None`
/// at the end of the stack). The registers themselves go to the `caller`
/// argument of [`RowSource::step`] (written in place: a fault path's
/// frames stay small).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub cfa: u64,
    pub signal: bool,
    pub caller_valid: Option<u32>,
}

/// A step, or why the walk stops here (with the frame's CFA if it was
/// computed before the failure).
pub type StepResult = Result<Step, (Option<u64>, StopReason)>;

/// Where a walk takes each frame's unwind rules from.
pub trait RowSource {
    /// Evaluates the rules covering `lookup_pc` for a frame with registers
    /// `regs` (known ones marked in `valid`), reading memory through `mem`,
    /// and writes the caller's registers to `caller` (its contents are
    /// unspecified when the result is not a step to a caller).
    fn step<M: Memory + ?Sized>(
        &mut self,
        mem: &M,
        lookup_pc: u64,
        regs: &Regs,
        valid: u32,
        caller: &mut Regs,
    ) -> StepResult;
}

/// Walks the stack from a register context to its callers, one [`Frame`] at a
/// time (an [`Iterator`]). After the iterator ends, [`Walk::stop_reason`]
/// says why. Each `next()` does a bounded amount of work; the whole walk
/// yields at most `limit` frames.
pub struct Walk<'w, M: Memory + ?Sized, S: RowSource = GimliRows<'w>> {
    rows: S,
    mem: &'w M,
    regs: Regs,
    valid: u32,
    pc_is_exact: bool,
    exception: Option<ExceptionEntry>,
    index: usize,
    limit: usize,
    stop: Option<StopReason>,
    crossings: [(u64, u64); MAX_CROSSINGS],
    ncross: usize,
}

impl<'w, M: Memory + ?Sized> Walk<'w, M, GimliRows<'w>> {
    /// Starts a walk at `regs` (frame #00, whose `rip` is taken as exact).
    ///
    /// Only rip, rsp and the callee-saved registers of `regs` are trusted
    /// (what [`capture_regs!`] captures); the caller-saved ones are unknown
    /// unless [`Walk::with_all_registers_valid`] says otherwise.
    pub fn new(
        modules: &'w [Module<'w>],
        mem: &'w M,
        state: &'w mut UnwindState,
        regs: Regs,
    ) -> Self {
        Walk::with_rows(GimliRows::new(modules, state), mem, regs)
    }
}

impl<'w, M: Memory + ?Sized> Walk<'w, M, TableRows<'w>> {
    /// Starts a walk at `regs` (as [`Walk::new`]) that reads only compact
    /// tables: no gimli code is reachable from it, so its stack use is
    /// small and fixed. A row a table marks for gimli stops the walk with
    /// `bad-cfi`; a pc outside every table with `no-fde`.
    pub fn from_tables(tables: &'w [UnwindTable<'w>], mem: &'w M, regs: Regs) -> Self {
        Walk::with_rows(TableRows::new(tables), mem, regs)
    }
}

impl<'w, M: Memory + ?Sized, S: RowSource> Walk<'w, M, S> {
    fn with_rows(rows: S, mem: &'w M, regs: Regs) -> Self {
        Walk {
            rows,
            mem,
            regs,
            valid: VALID_CALLEE_SAVED,
            pc_is_exact: true,
            exception: None,
            index: 0,
            limit: DEFAULT_FRAME_LIMIT,
            stop: None,
            crossings: [(0, 0); MAX_CROSSINGS],
            ncross: 0,
        }
    }

    /// Sets the maximum number of frames yielded.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Trusts all 16 general-purpose registers of frame #00 (and rip), e.g.
    /// when `regs` comes from a register frame saved by an exception entry.
    /// Needed when frame #00's CFA or rules use a caller-saved register
    /// (LLVM's inline stack probes compute the CFA from r11).
    pub fn with_all_registers_valid(mut self) -> Self {
        self.valid = VALID_ALL;
        self
    }

    /// Marks frame #00 as entered through an exception (the walk starts from
    /// the context a fault handler saw).
    pub fn from_exception(mut self, entry: ExceptionEntry) -> Self {
        self.exception = Some(entry);
        self
    }

    /// Why the walk ended; `None` while frames remain.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// Drives the walk to its end, calling `f` for each frame; returns the
    /// stop reason.
    pub fn run(mut self, mut f: impl FnMut(&Frame)) -> StopReason {
        for frame in self.by_ref() {
            f(&frame);
        }
        self.stop.unwrap_or(StopReason::FrameLimit)
    }

    fn remember_crossing(&mut self, pc: u64, sp: u64) -> bool {
        let n = self.ncross.min(MAX_CROSSINGS);
        if self.crossings.iter().take(n).any(|&c| c == (pc, sp)) {
            return false;
        }
        if let Some(slot) = self.crossings.get_mut(self.ncross % MAX_CROSSINGS) {
            *slot = (pc, sp);
        }
        self.ncross = self.ncross.saturating_add(1);
        true
    }
}

impl<M: Memory + ?Sized, S: RowSource> Iterator for Walk<'_, M, S> {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        if self.stop.is_some() {
            return None;
        }
        if self.index >= self.limit {
            self.stop = Some(StopReason::FrameLimit);
            return None;
        }
        let mut frame = Frame {
            index: self.index,
            pc: self.regs.rip,
            sp: self.regs.rsp,
            cfa: None,
            exception: self.exception,
            pc_is_exact: self.pc_is_exact,
            regs: self.regs,
            valid: self.valid,
        };
        self.index = self.index.wrapping_add(1);
        // The callee's registers are read from `frame`; the caller's are
        // written straight into the walk's (after a stop they are unused).
        let step = self.rows.step(
            self.mem,
            frame.lookup_pc(),
            &frame.regs,
            frame.valid,
            &mut self.regs,
        );
        match step {
            Err((cfa, reason)) => {
                frame.cfa = cfa;
                self.stop = Some(reason);
            }
            Ok(Step {
                cfa,
                caller_valid: None,
                ..
            }) => {
                frame.cfa = Some(cfa);
                self.stop = Some(StopReason::EndOfStack);
            }
            Ok(Step {
                cfa,
                signal,
                caller_valid: Some(valid),
            }) => {
                let caller = &self.regs;
                frame.cfa = Some(cfa);
                if signal {
                    // The caller is the interrupted context: it may live on
                    // another stack (IST), so the stack pointer need not
                    // grow; detect loops through the crossings instead.
                    let (rip, rsp) = (caller.rip, caller.rsp);
                    if !self.remember_crossing(rip, rsp) {
                        self.stop = Some(StopReason::Loop);
                        return Some(frame);
                    }
                    self.exception = Some(ExceptionEntry {
                        stub_pc: frame.pc,
                        stub_cfa: cfa,
                    });
                    self.pc_is_exact = true;
                } else {
                    let (rip, rsp) = (caller.rip, caller.rsp);
                    if rsp <= frame.sp {
                        // Legitimate only as a switch to another stack
                        // (e.g. through `svsm_call_on_stack`), which the
                        // accessor must vouch for; switches go into the
                        // loop detector like exception crossings.
                        let from = self.mem.stack_id(frame.sp);
                        let to = self.mem.stack_id(rsp);
                        let switch = matches!((from, to), (Some(a), Some(b)) if a != b);
                        if !switch {
                            self.stop = Some(StopReason::CfaNotAdvancing);
                            return Some(frame);
                        }
                        if !self.remember_crossing(rip, rsp) {
                            self.stop = Some(StopReason::Loop);
                            return Some(frame);
                        }
                    }
                    self.exception = None;
                    self.pc_is_exact = false;
                }
                self.valid = valid;
            }
        }
        Some(frame)
    }
}

/// Convenience: walks from `regs` and calls `f` for each frame; returns the
/// stop reason.
pub fn walk<M: Memory + ?Sized>(
    modules: &[Module<'_>],
    mem: &M,
    state: &mut UnwindState,
    regs: Regs,
    limit: usize,
    f: impl FnMut(&Frame),
) -> StopReason {
    Walk::new(modules, mem, state, regs)
        .with_limit(limit)
        .run(f)
}
