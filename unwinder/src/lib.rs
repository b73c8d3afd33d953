//! Bounded, allocation-free DWARF-CFI unwinder for x86_64.
//!
//! The unwinder reads `.eh_frame` through the `.eh_frame_hdr` binary-search
//! table (see [`Module`]), evaluates the CFA and register rules of each frame
//! with gimli and steps from a register context ([`Regs`]) to its callers.
//!
//! It is bounded and safe by construction:
//! - every memory read goes through the caller's [`Memory`] accessor, which
//!   the kernel restricts to known stack ranges; this crate contains no
//!   `unsafe` and never dereferences an address itself;
//! - it stops (see [`StopReason`]) on an undefined return address (the
//!   outermost frame, marked with `.cfi_undefined rip`), a PC without an
//!   FDE, a CFA that does not advance (unless [`Memory::stack_id`] says the
//!   caller is on another stack), a loop, a refused read, malformed CFI, or
//!   the caller's frame limit;
//! - the gimli unwind context lives in a fixed-size [`UnwindState`]; nothing
//!   on the unwinding path allocates.
//!
//! Frames entered through an exception or interrupt entry stub whose CIE has
//! the `S` augmentation (`.cfi_signal_frame`) are marked
//! ([`Frame::exception`]) and their FDE is looked up with the exact `pc`;
//! ordinary return addresses are looked up with `pc - 1`.
//!
//! See docs/unwinder.md for the design and the kernel integration.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod coverage;
mod format;

pub use coverage::{Coverage, coverage, is_padding};
pub use format::{BacktraceWriter, write_backtrace};
/// DWARF register numbers for [`Regs::get`] and [`Frame::get`]
/// (e.g. `X86_64::R11`).
pub use gimli::{Register, X86_64};

use core::fmt;
use gimli::{
    BaseAddresses, CfaRule, CommonInformationEntry, EhFrame, EhFrameHdr, EhFrameOffset,
    EndianSlice, Evaluation, EvaluationResult, EvaluationStorage, FrameDescriptionEntry,
    LittleEndian, ParsedEhFrameHdr, Piece, ReaderOffset, RegisterRule, UnwindContext,
    UnwindContextStorage, UnwindSection, UnwindTableRow, Value,
};

type Slice<'a> = EndianSlice<'a, LittleEndian>;

/// Register rules one CFI row may hold. x86_64 has 17 DWARF columns that
/// matter (16 GPRs + RA); a row with more rules is reported as `bad-cfi`.
pub const MAX_RULES: usize = 24;
/// Depth of `DW_CFA_remember_state` nesting supported.
pub const MAX_REMEMBER_DEPTH: usize = 4;
/// Default frame limit for [`Walk`].
pub const DEFAULT_FRAME_LIMIT: usize = 64;
/// How many exception-frame crossings are remembered for loop detection.
const MAX_CROSSINGS: usize = 8;
/// Bound on DWARF expression evaluation steps (CFA/register expressions).
const MAX_EXPR_ITERATIONS: u32 = 256;
/// Parsed CIEs a [`Walk`] keeps, so that the frames of one walk parse each
/// distinct CIE once rather than once per FDE.
const CIE_CACHE: usize = 4;
/// `DW_EH_PE_datarel | DW_EH_PE_sdata4`: the usual `.eh_frame_hdr` table
/// encoding, searched directly (see [`FastTable`]).
const DATAREL_SDATA4: u8 = 0x3b;

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

/// The registers the unwinder tracks: the return address / instruction
/// pointer and all 16 general-purpose registers.
///
/// Which of them are known is tracked separately (a validity mask, see
/// [`Frame::valid`] and [`Walk::with_all_registers_valid`]): a walk started
/// with [`Walk::new`] trusts only rip, rsp and the SysV callee-saved
/// registers (rbx, rbp, r12–r15), which is what [`capture_regs!`] fills in.
/// Build values with `Regs { rip, rsp, ..Default::default() }`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub rip: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
}

impl Regs {
    /// The value of a DWARF register (rip as the return-address column, or
    /// any general-purpose register), `None` for other registers. This does
    /// not say whether the value is known; see [`Frame::get`].
    #[inline]
    pub fn get(&self, reg: Register) -> Option<u64> {
        let mut r = *self;
        r.slot(reg).map(|v| *v)
    }

    #[inline]
    fn slot(&mut self, reg: Register) -> Option<&mut u64> {
        Some(match reg {
            X86_64::RA => &mut self.rip,
            X86_64::RSP => &mut self.rsp,
            X86_64::RBP => &mut self.rbp,
            X86_64::RBX => &mut self.rbx,
            X86_64::R12 => &mut self.r12,
            X86_64::R13 => &mut self.r13,
            X86_64::R14 => &mut self.r14,
            X86_64::R15 => &mut self.r15,
            X86_64::RAX => &mut self.rax,
            X86_64::RCX => &mut self.rcx,
            X86_64::RDX => &mut self.rdx,
            X86_64::RSI => &mut self.rsi,
            X86_64::RDI => &mut self.rdi,
            X86_64::R8 => &mut self.r8,
            X86_64::R9 => &mut self.r9,
            X86_64::R10 => &mut self.r10,
            X86_64::R11 => &mut self.r11,
            _ => return None,
        })
    }

    /// Zeroes the general-purpose registers (but rsp) that `valid` does not
    /// mark as known.
    #[inline]
    fn clear_unknown(&mut self, valid: u32) {
        let clear = |reg: Register, v: &mut u64| {
            if valid & bit(reg) == 0 {
                *v = 0;
            }
        };
        clear(X86_64::RBP, &mut self.rbp);
        clear(X86_64::RBX, &mut self.rbx);
        clear(X86_64::R12, &mut self.r12);
        clear(X86_64::R13, &mut self.r13);
        clear(X86_64::R14, &mut self.r14);
        clear(X86_64::R15, &mut self.r15);
        clear(X86_64::RAX, &mut self.rax);
        clear(X86_64::RCX, &mut self.rcx);
        clear(X86_64::RDX, &mut self.rdx);
        clear(X86_64::RSI, &mut self.rsi);
        clear(X86_64::RDI, &mut self.rdi);
        clear(X86_64::R8, &mut self.r8);
        clear(X86_64::R9, &mut self.r9);
        clear(X86_64::R10, &mut self.r10);
        clear(X86_64::R11, &mut self.r11);
    }

    /// The bit of `reg` in a validity mask ([`Frame::valid`]); 0 for a
    /// register that is not tracked.
    pub fn mask_bit(reg: Register) -> u32 {
        bit(reg)
    }
}

/// Captures the current register values into a [`Regs`], making the
/// function that expands it frame #00 of a walk (its `rip` is an address
/// inside that function, its `rsp` that function's stack pointer).
///
/// Only rip, rsp and the callee-saved registers are captured; the
/// caller-saved ones stay 0, and [`Walk::new`] treats them as unknown.
///
/// ```ignore
/// #[inline(never)]
/// fn print_backtrace() {
///     let regs = svsm_unwinder::capture_regs!();
///     let walk = svsm_unwinder::Walk::new(&modules, &mem, &mut state, regs);
///     // ...
/// }
/// ```
#[cfg(target_arch = "x86_64")]
#[macro_export]
macro_rules! capture_regs {
    () => {{
        let mut r = $crate::Regs::default();
        let p: *mut $crate::Regs = &mut r;
        // SAFETY: stores the current register values into `r`, a live,
        // writable `Regs` whose field offsets come from `offset_of!`. The
        // asm touches no other memory and does not use the stack.
        unsafe {
            ::core::arch::asm!(
                "mov [{p} + {o_rsp}], rsp",
                "mov [{p} + {o_rbp}], rbp",
                "mov [{p} + {o_rbx}], rbx",
                "mov [{p} + {o_r12}], r12",
                "mov [{p} + {o_r13}], r13",
                "mov [{p} + {o_r14}], r14",
                "mov [{p} + {o_r15}], r15",
                "lea {t}, [rip]",
                "mov [{p} + {o_rip}], {t}",
                p = in(reg) p,
                t = out(reg) _,
                o_rip = const ::core::mem::offset_of!($crate::Regs, rip),
                o_rsp = const ::core::mem::offset_of!($crate::Regs, rsp),
                o_rbp = const ::core::mem::offset_of!($crate::Regs, rbp),
                o_rbx = const ::core::mem::offset_of!($crate::Regs, rbx),
                o_r12 = const ::core::mem::offset_of!($crate::Regs, r12),
                o_r13 = const ::core::mem::offset_of!($crate::Regs, r13),
                o_r14 = const ::core::mem::offset_of!($crate::Regs, r14),
                o_r15 = const ::core::mem::offset_of!($crate::Regs, r15),
                options(nostack, preserves_flags),
            );
        }
        r
    }};
}

/// The DWARF columns restored for the caller besides rip and rsp: every
/// general-purpose register but rsp.
const RESTORED: [Register; 15] = [
    X86_64::RBP,
    X86_64::RBX,
    X86_64::R12,
    X86_64::R13,
    X86_64::R14,
    X86_64::R15,
    X86_64::RAX,
    X86_64::RCX,
    X86_64::RDX,
    X86_64::RSI,
    X86_64::RDI,
    X86_64::R8,
    X86_64::R9,
    X86_64::R10,
    X86_64::R11,
];

/// Bit of a tracked register in the validity mask, by DWARF number.
const BITS: [u32; 17] = [
    1 << 8,  // 0 rax
    1 << 10, // 1 rdx
    1 << 9,  // 2 rcx
    1 << 3,  // 3 rbx
    1 << 11, // 4 rsi
    1 << 12, // 5 rdi
    1 << 2,  // 6 rbp
    1 << 1,  // 7 rsp
    1 << 13, // 8 r8
    1 << 14, // 9 r9
    1 << 15, // 10 r10
    1 << 16, // 11 r11
    1 << 4,  // 12 r12
    1 << 5,  // 13 r13
    1 << 6,  // 14 r14
    1 << 7,  // 15 r15
    1 << 0,  // 16 return address (rip)
];

/// Bit of a tracked register in the validity mask.
#[inline]
fn bit(reg: Register) -> u32 {
    BITS.get(usize::from(reg.0)).copied().unwrap_or(0)
}

/// rip, rsp and the callee-saved registers (rbp, rbx, r12–r15).
pub const VALID_CALLEE_SAVED: u32 = 0xff;
/// The caller-saved registers (rax, rcx, rdx, rsi, rdi, r8–r11).
pub const VALID_CALLER_SAVED: u32 = 0x1ff00;
/// rip and all 16 general-purpose registers.
pub const VALID_ALL: u32 = VALID_CALLEE_SAVED | VALID_CALLER_SAVED;

/// Caller-supplied memory accessor. The unwinder reads the stack only through
/// this; return `None` for any address outside the ranges it may read (the
/// walk then stops with [`StopReason::BadMemory`]).
pub trait Memory {
    fn read_u64(&self, addr: u64) -> Option<u64>;

    /// An identifier of the stack containing `addr`, if the accessor knows
    /// its stacks (`None`: unknown). Two addresses are on the same stack iff
    /// their ids are equal.
    ///
    /// The walk uses it to accept a *stack switch* between ordinary frames:
    /// when a caller's sp is not above its callee's (which otherwise stops
    /// the walk with [`StopReason::CfaNotAdvancing`]) but both ids are known
    /// and differ, the caller ran on another stack (e.g. it called a
    /// trampoline that switched stacks) and the walk goes on.
    fn stack_id(&self, addr: u64) -> Option<u64> {
        let _ = addr;
        None
    }
}

impl<M: Memory + ?Sized> Memory for &M {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        (**self).read_u64(addr)
    }

    fn stack_id(&self, addr: u64) -> Option<u64> {
        (**self).stack_id(addr)
    }
}

/// Why a walk ended. The names match docs/serial-formats.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// The return-address rule is undefined: the CFI-marked outermost frame.
    EndOfStack,
    /// The PC has no FDE.
    NoFde,
    /// The caller's stack pointer does not lie above the callee's, and the
    /// accessor does not say the caller is on another stack.
    CfaNotAdvancing,
    /// A frame (pc, sp) repeated across an exception-frame crossing or a
    /// stack switch.
    Loop,
    /// The frame limit was reached.
    FrameLimit,
    /// The memory accessor refused a read.
    BadMemory,
    /// The CFI is malformed or uses a rule this unwinder does not support.
    BadCfi,
}

impl StopReason {
    pub const ALL: [StopReason; 7] = [
        Self::EndOfStack,
        Self::NoFde,
        Self::CfaNotAdvancing,
        Self::Loop,
        Self::FrameLimit,
        Self::BadMemory,
        Self::BadCfi,
    ];

    /// The name used in the `BACKTRACE END` line.
    pub fn name(self) -> &'static str {
        match self {
            Self::EndOfStack => "end-of-stack",
            Self::NoFde => "no-fde",
            Self::CfaNotAdvancing => "cfa-not-advancing",
            Self::Loop => "loop",
            Self::FrameLimit => "frame-limit",
            Self::BadMemory => "bad-memory",
            Self::BadCfi => "bad-cfi",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The location of the CFI sections of one loaded image.
#[derive(Clone, Copy, Debug)]
pub struct CfiSections<'a> {
    /// Contents of `.eh_frame_hdr` (must contain the binary-search table).
    pub eh_frame_hdr: &'a [u8],
    /// Virtual address at which `.eh_frame_hdr` is loaded.
    pub eh_frame_hdr_addr: u64,
    /// Contents of `.eh_frame`.
    pub eh_frame: &'a [u8],
    /// Virtual address at which `.eh_frame` is loaded.
    pub eh_frame_addr: u64,
}

/// One loaded image's CFI: the parsed `.eh_frame_hdr` search table and
/// `.eh_frame`. Construction validates the header; lookups never panic on
/// malformed data (they report `bad-cfi`).
pub struct Module<'a> {
    hdr: ParsedEhFrameHdr<Slice<'a>>,
    /// The search table, when its encoding allows searching it directly.
    fast: Option<FastTable<'a>>,
    eh_frame: EhFrame<Slice<'a>>,
    bases: BaseAddresses,
    eh_frame_addr: u64,
    eh_frame_len: usize,
    fde_count: usize,
    pc_start: u64,
    pc_end: u64,
}

impl fmt::Debug for Module<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("fde_count", &self.fde_count)
            .field("pc_start", &format_args!("{:#x}", self.pc_start))
            .field("pc_end", &format_args!("{:#x}", self.pc_end))
            .finish()
    }
}

/// Errors from [`Module::new`].
pub type ModuleError = &'static str;

impl<'a> Module<'a> {
    pub fn new(s: CfiSections<'a>) -> Result<Self, ModuleError> {
        let bases = BaseAddresses::default()
            .set_eh_frame_hdr(s.eh_frame_hdr_addr)
            .set_eh_frame(s.eh_frame_addr);
        let hdr = EhFrameHdr::new(s.eh_frame_hdr, LittleEndian)
            .parse(&bases, 8)
            .map_err(|_| "malformed .eh_frame_hdr")?;
        let ptr = hdr
            .eh_frame_ptr()
            .direct()
            .map_err(|_| ".eh_frame_hdr has an indirect eh_frame_ptr")?;
        if ptr != s.eh_frame_addr {
            return Err(".eh_frame_hdr eh_frame_ptr does not match the .eh_frame address");
        }
        let eh_frame = EhFrame::new(s.eh_frame, LittleEndian);
        let mut m = Module {
            hdr,
            eh_frame,
            bases,
            eh_frame_addr: s.eh_frame_addr,
            eh_frame_len: s.eh_frame.len(),
            fast: None,
            fde_count: 0,
            pc_start: 0,
            pc_end: 0,
        };
        let (count, first) = {
            let table = m
                .hdr
                .table()
                .ok_or(".eh_frame_hdr has no binary-search table")?;
            let mut iter = table.iter(&m.bases);
            let count = iter.size_hint().0;
            let first = match iter.next() {
                Ok(Some((loc, _))) => loc.direct().map_err(|_| "indirect FDE location")?,
                _ => return Err("malformed .eh_frame_hdr table"),
            };
            (count, first)
        };
        // Rows are at least 4 bytes; a larger count is corrupt (and would
        // overflow gimli's unchecked row arithmetic).
        if count > s.eh_frame_hdr.len() / 4 {
            return Err(".eh_frame_hdr fde_count exceeds the section");
        }
        m.fde_count = count;
        m.fast = FastTable::new(s.eh_frame_hdr, s.eh_frame_hdr_addr, count);
        m.pc_start = first;
        let last = m
            .table_entry(count.saturating_sub(1))
            .ok_or("malformed .eh_frame_hdr table")?;
        let fde = m.fde_at(last.1).map_err(|_| "malformed last FDE")?;
        m.pc_end = fde.end_address();
        if m.pc_end < m.pc_start {
            return Err(".eh_frame_hdr table is not sorted");
        }
        Ok(m)
    }

    /// Number of FDEs in the search table.
    pub fn fde_count(&self) -> usize {
        self.fde_count
    }

    /// The range [start, end) from the first FDE to the end of the last one.
    pub fn pc_range(&self) -> (u64, u64) {
        (self.pc_start, self.pc_end)
    }

    /// Whether `pc` lies in the range spanned by this module's FDEs.
    pub fn spans(&self, pc: u64) -> bool {
        pc >= self.pc_start && pc < self.pc_end
    }

    /// The `n`th search-table entry: (initial location, FDE address).
    fn table_entry(&self, n: usize) -> Option<(u64, u64)> {
        if let Some(fast) = &self.fast {
            return fast.entry(n);
        }
        let table = self.hdr.table()?;
        let mut iter = table.iter(&self.bases);
        let (loc, fde) = iter.nth(n).ok()??;
        Some((loc.direct().ok()?, fde.direct().ok()?))
    }

    fn fde_at(&self, fde_addr: u64) -> gimli::Result<FrameDescriptionEntry<Slice<'a>>> {
        self.fde_at_with(fde_addr, EhFrame::cie_from_offset)
    }

    fn fde_at_with<F>(
        &self,
        fde_addr: u64,
        get_cie: F,
    ) -> gimli::Result<FrameDescriptionEntry<Slice<'a>>>
    where
        F: FnMut(
            &EhFrame<Slice<'a>>,
            &BaseAddresses,
            EhFrameOffset,
        ) -> gimli::Result<CommonInformationEntry<Slice<'a>>>,
    {
        // Computed here rather than with `EhHdrTable::pointer_to_offset`,
        // which subtracts without checking (a corrupt table entry below
        // `.eh_frame` would overflow).
        let off = fde_addr
            .checked_sub(self.eh_frame_addr)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o < self.eh_frame_len)
            .ok_or(gimli::Error::BadBranchTarget(fde_addr))?;
        self.eh_frame
            .fde_from_offset(&self.bases, EhFrameOffset(off), get_cie)
    }

    /// The FDE covering `pc`, `Ok(None)` if there is none, `Err` if the CFI
    /// is malformed.
    pub(crate) fn fde_for(
        &self,
        pc: u64,
    ) -> Result<Option<FrameDescriptionEntry<Slice<'a>>>, ModuleError> {
        self.fde_for_with(pc, EhFrame::cie_from_offset)
    }

    /// [`Module::fde_for`], getting the FDE's CIE from `get_cie`.
    fn fde_for_with<F>(
        &self,
        pc: u64,
        get_cie: F,
    ) -> Result<Option<FrameDescriptionEntry<Slice<'a>>>, ModuleError>
    where
        F: FnMut(
            &EhFrame<Slice<'a>>,
            &BaseAddresses,
            EhFrameOffset,
        ) -> gimli::Result<CommonInformationEntry<Slice<'a>>>,
    {
        let Some(ptr) = self.fde_ptr(pc)? else {
            return Ok(None);
        };
        let fde = self
            .fde_at_with(ptr, get_cie)
            .map_err(|_| "malformed FDE")?;
        Ok(fde.contains(pc).then_some(fde))
    }

    /// The address of the FDE that may cover `pc` (the search table's
    /// candidate, to be checked with `contains`); `Ok(None)` without a
    /// table.
    fn fde_ptr(&self, pc: u64) -> Result<Option<u64>, ModuleError> {
        if let Some(fast) = &self.fast {
            return fast
                .lookup(pc)
                .map(Some)
                .ok_or("malformed .eh_frame_hdr table");
        }
        let Some(table) = self.hdr.table() else {
            return Ok(None);
        };
        table
            .lookup(pc, &self.bases)
            .and_then(|p| p.direct())
            .map(Some)
            .map_err(|_| "malformed .eh_frame_hdr table")
    }

    /// The [start, end) range of the FDE covering `pc`, if any.
    pub fn fde_range(&self, pc: u64) -> Option<(u64, u64)> {
        let fde = self.fde_for(pc).ok()??;
        Some((fde.initial_address(), fde.end_address()))
    }

    /// Calls `f(start, end)` for every FDE in search-table order. Stops and
    /// returns `Err` at the first malformed entry.
    pub fn for_each_fde(&self, mut f: impl FnMut(u64, u64)) -> Result<(), ModuleError> {
        let Some(table) = self.hdr.table() else {
            return Ok(());
        };
        let mut iter = table.iter(&self.bases);
        for _ in 0..self.fde_count {
            let (_, ptr) = match iter.next() {
                Ok(Some(e)) => e,
                _ => return Err("malformed .eh_frame_hdr table"),
            };
            let addr = ptr.direct().map_err(|_| "indirect FDE pointer")?;
            let fde = self.fde_at(addr).map_err(|_| "malformed FDE")?;
            f(fde.initial_address(), fde.end_address());
        }
        Ok(())
    }
}

/// The `.eh_frame_hdr` search table in its usual encoding
/// (`DW_EH_PE_datarel | DW_EH_PE_sdata4` pairs, after a 4-byte
/// `eh_frame_ptr` and `fde_count`), binary-searched in place. Other
/// encodings go through gimli's (slower, general) table reader.
#[derive(Clone, Copy, Debug)]
struct FastTable<'a> {
    /// The `fde_count` 8-byte entries.
    rows: &'a [u8],
    /// Base of `datarel`: the address of `.eh_frame_hdr`.
    base: u64,
}

impl<'a> FastTable<'a> {
    fn new(hdr: &'a [u8], hdr_addr: u64, count: usize) -> Option<Self> {
        let &[_version, ptr_enc, count_enc, table_enc, ..] = hdr else {
            return None;
        };
        // A direct 4-byte encoding (udata4 or sdata4, any application).
        let four = |enc: u8| enc != 0xff && enc & 0x80 == 0 && matches!(enc & 0x0f, 0x03 | 0x0b);
        if table_enc != DATAREL_SDATA4 || !four(ptr_enc) || !four(count_enc) || count == 0 {
            return None;
        }
        let len = count.checked_mul(8)?;
        let rows = hdr.get(12..)?.get(..len)?;
        Some(FastTable {
            rows,
            base: hdr_addr,
        })
    }

    fn count(&self) -> usize {
        self.rows.len() / 8
    }

    /// The `n`th entry: (initial location, FDE address).
    fn entry(&self, n: usize) -> Option<(u64, u64)> {
        let row = self.rows.get(n.checked_mul(8)?..)?.first_chunk::<8>()?;
        let (loc, fde) = row.split_first_chunk::<4>()?;
        let fde = fde.first_chunk::<4>()?;
        let rel = |b: &[u8; 4]| {
            self.base
                .wrapping_add(i64::from(i32::from_le_bytes(*b)) as u64)
        };
        Some((rel(loc), rel(fde)))
    }

    /// The FDE address of the last entry whose initial location is at most
    /// `pc` (the first entry if there is none, as gimli does).
    fn lookup(&self, pc: u64) -> Option<u64> {
        // Invariant: entries below `lo` start at or below `pc`, entries at or
        // above `hi` start above it.
        let (mut lo, mut hi) = (0usize, self.count());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid)?.0 <= pc {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Some(self.entry(lo.saturating_sub(1))?.1)
    }
}

/// Where a frame was entered through an exception/interrupt entry: the
/// entry stub's frame, whose CIE carries the `S` augmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExceptionEntry {
    /// PC inside the entry stub (its return address or interrupted point).
    pub stub_pc: u64,
    /// CFA of the entry stub's frame: the address just above the frame the
    /// CPU pushed. The kernel may use it to find e.g. a pushed vector number.
    pub stub_cfa: u64,
}

/// One frame of a backtrace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Position in the backtrace (#00 is the starting context).
    pub index: usize,
    /// The frame's instruction pointer: for #00 and frames entered through
    /// an exception, the exact PC; otherwise the return address.
    pub pc: u64,
    /// The stack pointer in this frame.
    pub sp: u64,
    /// The frame's CFA, if its CFI could be evaluated.
    pub cfa: Option<u64>,
    /// Set if this frame was interrupted by an exception/interrupt whose
    /// entry stub is described by a signal-frame CIE (or the walk started
    /// from an exception context).
    pub exception: Option<ExceptionEntry>,
    /// Whether `pc` is exact (used as is for lookups) or a return address
    /// (looked up as `pc - 1`).
    pub pc_is_exact: bool,
    /// The registers of this frame. Only those whose bit
    /// ([`Regs::mask_bit`]) is set in `valid` are known; the others are 0.
    pub regs: Regs,
    /// Validity mask of `regs` (see [`VALID_ALL`] and friends).
    pub valid: u32,
}

impl Frame {
    /// The value of a register in this frame, if it is known.
    pub fn get(&self, reg: Register) -> Option<u64> {
        self.regs.get(reg).filter(|_| self.valid & bit(reg) != 0)
    }

    /// The address to use for FDE and symbol lookups.
    pub fn lookup_pc(&self) -> u64 {
        if self.pc_is_exact {
            self.pc
        } else {
            self.pc.wrapping_sub(1)
        }
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

/// Walks the stack from a register context to its callers, one [`Frame`] at a
/// time (an [`Iterator`]). After the iterator ends, [`Walk::stop_reason`]
/// says why. Each `next()` does a bounded amount of work; the whole walk
/// yields at most `limit` frames.
pub struct Walk<'w, M: Memory + ?Sized> {
    modules: &'w [Module<'w>],
    mem: &'w M,
    state: &'w mut UnwindState,
    regs: Regs,
    valid: u32,
    pc_is_exact: bool,
    exception: Option<ExceptionEntry>,
    index: usize,
    limit: usize,
    stop: Option<StopReason>,
    crossings: [(u64, u64); MAX_CROSSINGS],
    ncross: usize,
    cies: CieCache<'w>,
}

impl<'w, M: Memory + ?Sized> Walk<'w, M> {
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
        Walk {
            modules,
            mem,
            state,
            regs,
            valid: VALID_CALLEE_SAVED,
            pc_is_exact: true,
            exception: None,
            index: 0,
            limit: DEFAULT_FRAME_LIMIT,
            stop: None,
            crossings: [(0, 0); MAX_CROSSINGS],
            ncross: 0,
            cies: CieCache::new(),
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
    #[allow(clippy::type_complexity)]
    fn eval_frame(
        &mut self,
        lookup_pc: u64,
    ) -> Result<(u64, bool, Option<(Regs, u32)>), (Option<u64>, StopReason)> {
        let modules = self.modules;
        let (mi, module) = modules
            .iter()
            .enumerate()
            .find(|(_, m)| m.spans(lookup_pc))
            .ok_or((None, StopReason::NoFde))?;
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
            mem: self.mem,
            module,
            regs: &self.regs,
            valid: self.valid,
        };
        let regs = self.regs;
        let valid = self.valid;
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
            None | Some(RegisterRule::Undefined) => return Ok((cfa, signal, None)),
            Some(rule) => ev
                .apply(ra_reg, &rule, cfa)
                .map_err(fail)?
                .ok_or((Some(cfa), StopReason::BadCfi))?,
        };

        let mut caller = regs;
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
        Ok((cfa, signal, Some((caller, caller_valid))))
    }

    fn remember_crossing(&mut self, pc: u64, sp: u64) -> bool {
        let n = self.ncross.min(MAX_CROSSINGS);
        if self.crossings[..n].contains(&(pc, sp)) {
            return false;
        }
        self.crossings[self.ncross % MAX_CROSSINGS] = (pc, sp);
        self.ncross = self.ncross.saturating_add(1);
        true
    }
}

impl<M: Memory + ?Sized> Iterator for Walk<'_, M> {
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
        self.index += 1;
        match self.eval_frame(frame.lookup_pc()) {
            Err((cfa, reason)) => {
                frame.cfa = cfa;
                self.stop = Some(reason);
            }
            Ok((cfa, _, None)) => {
                frame.cfa = Some(cfa);
                self.stop = Some(StopReason::EndOfStack);
            }
            Ok((cfa, signal, Some((caller, valid)))) => {
                frame.cfa = Some(cfa);
                if signal {
                    // The caller is the interrupted context: it may live on
                    // another stack (IST), so the stack pointer need not
                    // grow; detect loops through the crossings instead.
                    if !self.remember_crossing(caller.rip, caller.rsp) {
                        self.stop = Some(StopReason::Loop);
                        return Some(frame);
                    }
                    self.exception = Some(ExceptionEntry {
                        stub_pc: frame.pc,
                        stub_cfa: cfa,
                    });
                    self.pc_is_exact = true;
                } else {
                    if caller.rsp <= self.regs.rsp {
                        // Legitimate only as a switch to another stack
                        // (e.g. through `svsm_call_on_stack`), which the
                        // accessor must vouch for; switches go into the
                        // loop detector like exception crossings.
                        let from = self.mem.stack_id(self.regs.rsp);
                        let to = self.mem.stack_id(caller.rsp);
                        let switch = matches!((from, to), (Some(a), Some(b)) if a != b);
                        if !switch {
                            self.stop = Some(StopReason::CfaNotAdvancing);
                            return Some(frame);
                        }
                        if !self.remember_crossing(caller.rip, caller.rsp) {
                            self.stop = Some(StopReason::Loop);
                            return Some(frame);
                        }
                    }
                    self.exception = None;
                    self.pc_is_exact = false;
                }
                self.regs = caller;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.eh_frame_hdr` at `addr` with `eh_frame_ptr` (pcrel|sdata4),
    /// `fde_count` (udata4) and a table in `table_enc` of (loc, fde) pairs,
    /// both given as offsets from `addr`.
    fn hdr(table_enc: u8, rows: &[(i32, i32)]) -> [u8; 12 + 8 * 8] {
        let mut h = [0u8; 12 + 8 * 8];
        h[..4].copy_from_slice(&[1, 0x1b, 0x03, table_enc]);
        h[4..8].copy_from_slice(&0x1000i32.to_le_bytes());
        h[8..12].copy_from_slice(&(rows.len() as u32).to_le_bytes());
        for (i, &(loc, fde)) in rows.iter().enumerate() {
            h[12 + 8 * i..16 + 8 * i].copy_from_slice(&loc.to_le_bytes());
            h[16 + 8 * i..20 + 8 * i].copy_from_slice(&fde.to_le_bytes());
        }
        h
    }

    #[test]
    fn fast_table_lookup_matches_gimli() {
        const ADDR: u64 = 0xffff_8000_0010_0000;
        let rows = [
            (-0x4000, 0x100),
            (-0x3000, 0x200),
            (-0x2ff0, 0x300),
            (-0x100, 0x400),
            (0x10, 0x500),
            (0x2000, 0x600),
            (0x2001, 0x700),
            (0x7000, 0x800),
        ];
        for n in 1..=rows.len() {
            let h = hdr(DATAREL_SDATA4, &rows[..n]);
            let fast = FastTable::new(&h, ADDR, n).expect("usual encoding");
            let bases = BaseAddresses::default().set_eh_frame_hdr(ADDR);
            let parsed = EhFrameHdr::new(&h[..], LittleEndian)
                .parse(&bases, 8)
                .unwrap();
            let table = parsed.table().unwrap();
            for &(loc, _) in &rows {
                for d in [-2i64, -1, 0, 1, 0x800] {
                    let pc = ADDR.wrapping_add_signed(i64::from(loc) + d);
                    let want = table.lookup(pc, &bases).unwrap().direct().unwrap();
                    assert_eq!(fast.lookup(pc), Some(want), "n={n} pc={pc:#x}");
                }
            }
            for (i, e) in table.iter(&bases).enumerate() {
                let (loc, fde) = e.unwrap();
                let want = (loc.direct().unwrap(), fde.direct().unwrap());
                assert_eq!(fast.entry(i), Some(want));
            }
            assert_eq!(fast.entry(n), None);
        }
    }

    #[test]
    fn validity_bits_by_register() {
        let order = [
            X86_64::RA,
            X86_64::RSP,
            X86_64::RBP,
            X86_64::RBX,
            X86_64::R12,
            X86_64::R13,
            X86_64::R14,
            X86_64::R15,
            X86_64::RAX,
            X86_64::RCX,
            X86_64::RDX,
            X86_64::RSI,
            X86_64::RDI,
            X86_64::R8,
            X86_64::R9,
            X86_64::R10,
            X86_64::R11,
        ];
        for (i, r) in order.into_iter().enumerate() {
            assert_eq!(bit(r), 1 << i, "{r:?}");
        }
        assert_eq!(bit(X86_64::XMM0), 0);
        // eval_frame relies on this order.
        for (i, r) in RESTORED.into_iter().enumerate() {
            assert_eq!(bit(r), 1 << (i + 2), "{r:?}");
        }
        assert_eq!(bit(Register(u16::MAX)), 0);
    }

    #[test]
    fn fast_table_only_for_the_usual_encoding() {
        let h = hdr(DATAREL_SDATA4, &[(0, 0x100), (0x10, 0x200)]);
        assert!(FastTable::new(&h, 0x1000, 2).is_some());
        // udata4 rows, or a count that does not fit the section: gimli's path.
        let h = hdr(0x33, &[(0, 0x100), (0x10, 0x200)]);
        assert!(FastTable::new(&h, 0x1000, 2).is_none());
        let h = hdr(DATAREL_SDATA4, &[(0, 0x100)]);
        assert!(FastTable::new(&h[..20], 0x1000, 2).is_none());
        assert!(FastTable::new(&h, 0x1000, 0).is_none());
        // An 8-byte eh_frame_ptr moves the table.
        let mut h = hdr(DATAREL_SDATA4, &[(0, 0x100)]);
        h[1] = 0x00;
        assert!(FastTable::new(&h, 0x1000, 1).is_none());
    }
}
