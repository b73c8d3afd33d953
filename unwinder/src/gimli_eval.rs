//! Rule evaluation with gimli: the general path, for any CFI (DWARF
//! expressions included), and the fallback for rows a compact
//! [`UnwindTable`](crate::UnwindTable) cannot express.

use crate::frame::{Memory, StopReason};
use crate::module::Module;
use crate::regs::{RESTORED, Regs, VALID_CALLER_SAVED, bit};
use crate::table::Row;
use crate::walk::{RowSource, Step, StepResult};
use crate::{MAX_REMEMBER_DEPTH, MAX_RULES, Slice};
use core::fmt;
use gimli::{
    CfaRule, CommonInformationEntry, Evaluation, EvaluationResult, EvaluationStorage,
    FrameDescriptionEntry, Piece, ReaderOffset, Register, RegisterRule, UnwindContext,
    UnwindContextStorage, UnwindSection, UnwindTableRow, Value, X86_64,
};

/// Bound on DWARF expression evaluation steps (CFA/register expressions).
const MAX_EXPR_ITERATIONS: u32 = 256;
/// Parsed CIEs a walk keeps, so that the frames of one walk parse each
/// distinct CIE once rather than once per FDE.
const CIE_CACHE: usize = 4;

/// Fixed, in-line storage for gimli's unwind context (no allocation).
#[derive(Debug)]
pub struct FixedStorage;

impl<T: ReaderOffset> UnwindContextStorage<T> for FixedStorage {
    type Rules = [(Register, RegisterRule<T>); MAX_RULES];
    type Stack = [UnwindTableRow<T, Self>; MAX_REMEMBER_DEPTH];
}

impl<'a> EvaluationStorage<Slice<'a>> for FixedStorage {
    type Stack = [Value; 16];
    type ExpressionStack = [(Slice<'a>, Slice<'a>); 2];
    type Result = [Piece<Slice<'a>>; 1];
}

/// Scratch state for evaluating CFI rows (a few KiB; see
/// [`UnwindState::SIZE`]), reused across frames and walks. Keep one per CPU
/// or in a static behind a lock:
///
/// ```ignore
/// static S: Mutex<UnwindState> = Mutex::new(UnwindState::new_unprepared());
/// // once, at boot (off any fault path):
/// S.lock().prepare();
/// ```
///
/// gimli's context has no `const` constructor and is built by value, so
/// making it costs a temporary of [`UnwindState::SIZE`] bytes on the stack.
/// `prepare` does that once, out of line, so that the walking path itself
/// never carries that temporary (a fault handler's stack stays small). A
/// walk on an unprepared state stops at once with `bad-cfi`.
pub struct UnwindState {
    ctx: Option<UnwindContext<usize, FixedStorage>>,
}

impl UnwindState {
    /// Size in bytes of this state, for callers deciding where to keep it.
    pub const SIZE: usize = core::mem::size_of::<Self>();

    /// A prepared state (builds gimli's context: a temporary of `SIZE`
    /// bytes on the caller's stack).
    pub fn new() -> Self {
        let mut s = Self::new_unprepared();
        s.prepare();
        s
    }

    /// An empty state for a `static`; call [`Self::prepare`] before walking.
    pub const fn new_unprepared() -> Self {
        Self { ctx: None }
    }

    /// Builds the CFI evaluation context (idempotent).
    #[inline(never)]
    pub fn prepare(&mut self) {
        if self.ctx.is_none() {
            self.ctx = Some(UnwindContext::new_in());
        }
    }

    pub fn is_prepared(&self) -> bool {
        self.ctx.is_some()
    }
}

impl Default for UnwindState {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for UnwindState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnwindState").finish_non_exhaustive()
    }
}

/// The CIEs parsed during one walk: (module index, CIE offset, CIE).
struct CieCache<'a> {
    entries: [Option<(usize, usize, CommonInformationEntry<Slice<'a>>)>; CIE_CACHE],
    /// The slot the next miss replaces.
    next: usize,
}

impl CieCache<'_> {
    const fn new() -> Self {
        CieCache {
            entries: [const { None }; CIE_CACHE],
            next: 0,
        }
    }
}

/// What evaluating one frame's rules reads: memory and the callee's
/// registers.
struct Eval<'e, 'w, M: Memory + ?Sized> {
    mem: &'e M,
    module: &'e Module<'w>,
    regs: &'e Regs,
    valid: u32,
}

impl<'w, M: Memory + ?Sized> Eval<'_, 'w, M> {
    fn read(&self, addr: u64) -> Result<u64, StopReason> {
        self.mem.read_u64(addr).ok_or(StopReason::BadMemory)
    }

    fn reg(&self, reg: Register) -> Result<u64, StopReason> {
        match self.regs.get(reg) {
            Some(v) if self.valid & bit(reg) != 0 => Ok(v),
            _ => Err(StopReason::BadCfi),
        }
    }

    /// Evaluates a DWARF expression (CFA or register rule) with a bounded,
    /// allocation-free evaluator. Returns the resulting address/value.
    fn eval_expr(
        &self,
        expr: gimli::Expression<Slice<'w>>,
        initial: Option<u64>,
    ) -> Result<u64, StopReason> {
        let encoding = gimli::Encoding {
            format: gimli::Format::Dwarf32,
            version: 4,
            address_size: 8,
        };
        let mut eval: Evaluation<Slice<'w>, FixedStorage> = Evaluation::new_in(expr.0, encoding);
        eval.set_max_iterations(MAX_EXPR_ITERATIONS);
        if let Some(v) = initial {
            eval.set_initial_value(v);
        }
        let mut res = eval.evaluate().map_err(|_| StopReason::BadCfi)?;
        loop {
            res = match res {
                EvaluationResult::Complete => break,
                EvaluationResult::RequiresMemory { address, size, .. } => {
                    if size != 8 {
                        return Err(StopReason::BadCfi);
                    }
                    let v = self.read(address)?;
                    eval.resume_with_memory(Value::Generic(v))
                }
                EvaluationResult::RequiresRegister { register, .. } => {
                    let v = self.reg(register)?;
                    eval.resume_with_register(Value::Generic(v))
                }
                _ => return Err(StopReason::BadCfi),
            }
            .map_err(|_| StopReason::BadCfi)?;
        }
        match eval.as_result() {
            [
                Piece {
                    location: gimli::Location::Address { address },
                    size_in_bits: None,
                    bit_offset: None,
                },
            ] => Ok(*address),
            _ => Err(StopReason::BadCfi),
        }
    }

    /// Applies one register rule. `Ok(None)` means "undefined".
    fn apply(
        &self,
        reg: Register,
        rule: &RegisterRule<usize>,
        cfa: u64,
    ) -> Result<Option<u64>, StopReason> {
        Ok(Some(match *rule {
            RegisterRule::Undefined => return Ok(None),
            RegisterRule::SameValue => {
                return Ok(self.regs.get(reg).filter(|_| self.valid & bit(reg) != 0));
            }
            RegisterRule::Offset(n) => self.read(cfa.wrapping_add_signed(n))?,
            RegisterRule::ValOffset(n) => cfa.wrapping_add_signed(n),
            RegisterRule::Register(r) => self.reg(r)?,
            RegisterRule::Expression(e) => {
                let expr = e
                    .get(&self.module.eh_frame)
                    .map_err(|_| StopReason::BadCfi)?;
                let addr = self.eval_expr(expr, Some(cfa))?;
                self.read(addr)?
            }
            RegisterRule::ValExpression(e) => {
                let expr = e
                    .get(&self.module.eh_frame)
                    .map_err(|_| StopReason::BadCfi)?;
                self.eval_expr(expr, Some(cfa))?
            }
            RegisterRule::Constant(c) => c,
            RegisterRule::Architectural => return Err(StopReason::BadCfi),
        }))
    }
}

/// The rows of a walk over [`Module`]s: a module's compact table when it
/// has one and the row is expressible, gimli otherwise.
pub struct GimliRows<'w> {
    modules: &'w [Module<'w>],
    state: &'w mut UnwindState,
    cies: CieCache<'w>,
}

impl<'w> GimliRows<'w> {
    pub(crate) fn new(modules: &'w [Module<'w>], state: &'w mut UnwindState) -> Self {
        GimliRows {
            modules,
            state,
            cies: CieCache::new(),
        }
    }

    /// The FDE covering `lookup_pc` in `module` (index `mi` in the walk's
    /// modules), its CIE taken from the walk's CIE cache when present.
    /// (Same as [`Module::fde_for`], without moving the FDE around.)
    #[inline(always)]
    fn fde_cached(
        cies: &mut CieCache<'w>,
        mi: usize,
        module: &Module<'w>,
        lookup_pc: u64,
    ) -> Result<FrameDescriptionEntry<Slice<'w>>, StopReason> {
        let ptr = match module.fde_ptr(lookup_pc) {
            Ok(Some(ptr)) => ptr,
            Ok(None) => return Err(StopReason::NoFde),
            Err(_) => return Err(StopReason::BadCfi),
        };
        let fde = module.fde_at_with(ptr, |section, bases, off| {
            if let Some((_, _, cie)) = cies
                .entries
                .iter()
                .flatten()
                .find(|e| e.0 == mi && e.1 == off.0)
            {
                return Ok(cie.clone());
            }
            let cie = section.cie_from_offset(bases, off)?;
            let slot = cies.next % CIE_CACHE;
            if let Some(e) = cies.entries.get_mut(slot) {
                *e = Some((mi, off.0, cie.clone()));
            }
            cies.next = slot.wrapping_add(1);
            Ok(cie)
        });
        match fde {
            Ok(fde) if fde.contains(lookup_pc) => Ok(fde),
            Ok(_) => Err(StopReason::NoFde),
            Err(_) => Err(StopReason::BadCfi),
        }
    }

    /// Evaluates the current frame's CFI. Returns its CFA, whether its CIE is
    /// a signal frame, and the caller's registers (`None` at the end of the
    /// stack).
    fn eval_frame<M: Memory + ?Sized>(
        &mut self,
        (mi, module): (usize, &Module<'w>),
        mem: &M,
        lookup_pc: u64,
        regs: &Regs,
        valid: u32,
        caller: &mut Regs,
    ) -> StepResult {
        let fde = Self::fde_cached(&mut self.cies, mi, module, lookup_pc).map_err(|e| (None, e))?;
        let signal = fde.is_signal_trampoline();
        let ra_reg = fde.cie().return_address_register();
        let Some(ctx) = self.state.ctx.as_mut() else {
            return Err((None, StopReason::BadCfi));
        };
        let row = fde
            .unwind_info_for_address(&module.eh_frame, &module.bases, ctx, lookup_pc)
            .map_err(|_| (None, StopReason::BadCfi))?;
        // The rules are applied straight from the row (borrowed from the
        // state), reading memory and registers through `ev`.
        let ev = Eval {
            mem,
            module,
            regs,
            valid,
        };
        // One pass over the row's rules (instead of a lookup per register),
        // indexed like the validity mask; applied below in a fixed order.
        let mut rules: [Option<&RegisterRule<usize>>; 17] = [None; 17];
        for (reg, rule) in row.registers() {
            let b = bit(*reg);
            if b != 0
                && let Some(slot) = rules.get_mut(b.trailing_zeros() as usize)
            {
                *slot = Some(rule);
            }
        }
        let rule_of = |reg: Register| {
            let b = bit(reg);
            if b == 0 {
                // Not a tracked register (an odd CIE return-address column).
                return row.register(reg);
            }
            rules
                .get(b.trailing_zeros() as usize)
                .copied()
                .flatten()
                .cloned()
        };
        let cfa = match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } => ev
                .reg(*register)
                .map_err(|e| (None, e))?
                .wrapping_add_signed(*offset),
            CfaRule::Expression(e) => {
                let expr = e
                    .get(&module.eh_frame)
                    .map_err(|_| (None, StopReason::BadCfi))?;
                ev.eval_expr(expr, None).map_err(|e| (None, e))?
            }
        };
        let fail = |e| (Some(cfa), e);

        let ra = match rule_of(ra_reg) {
            None | Some(RegisterRule::Undefined) => {
                return Ok(Step {
                    cfa,
                    signal,
                    caller_valid: None,
                });
            }
            Some(rule) => ev
                .apply(ra_reg, &rule, cfa)
                .map_err(fail)?
                .ok_or((Some(cfa), StopReason::BadCfi))?,
        };

        *caller = *regs;
        // Without a rule, a callee-saved register keeps the callee's value;
        // a caller-saved one is unknown in the caller (an exception entry
        // stub that saves it describes it with an explicit rule).
        let mut caller_valid = (valid & !VALID_CALLER_SAVED) | bit(X86_64::RA) | bit(X86_64::RSP);
        caller.rip = ra;
        // By convention the CFA is the caller's stack pointer unless the
        // CFI says otherwise (exception entry stubs restore the interrupted
        // rsp from the CPU-pushed frame).
        caller.rsp = match rule_of(X86_64::RSP) {
            None => cfa,
            Some(rule) => ev
                .apply(X86_64::RSP, &rule, cfa)
                .map_err(fail)?
                .ok_or((Some(cfa), StopReason::BadCfi))?,
        };
        // RESTORED lists the registers in validity-bit order from bit 2.
        for (reg, rule) in RESTORED.into_iter().zip(rules.iter().skip(2)) {
            let Some(rule) = rule else {
                continue;
            };
            match ev.apply(reg, rule, cfa).map_err(fail)? {
                Some(v) => {
                    if let Some(slot) = caller.slot(reg) {
                        *slot = v;
                    }
                    caller_valid |= bit(reg);
                }
                None => caller_valid &= !bit(reg),
            }
        }
        caller.clear_unknown(caller_valid);
        Ok(Step {
            cfa,
            signal,
            caller_valid: Some(caller_valid),
        })
    }
}

impl RowSource for GimliRows<'_> {
    fn step<M: Memory + ?Sized>(
        &mut self,
        mem: &M,
        lookup_pc: u64,
        regs: &Regs,
        valid: u32,
        caller: &mut Regs,
    ) -> StepResult {
        let modules = self.modules;
        let (mi, module) = modules
            .iter()
            .enumerate()
            .find(|(_, m)| m.spans(lookup_pc))
            .ok_or((None, StopReason::NoFde))?;
        if let Some(table) = &module.table {
            match table.lookup(lookup_pc) {
                Some(Row::Rules(d)) => return d.step(mem, regs, valid, caller),
                Some(Row::NoFde) => return Err((None, StopReason::NoFde)),
                Some(Row::Fallback) | None => {}
            }
        }
        self.eval_frame((mi, module), mem, lookup_pc, regs, valid, caller)
    }
}
