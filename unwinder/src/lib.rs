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
//! A compact [`UnwindTable`], compiled on the host from the same CFI
//! (`compile` feature), answers most rows without gimli: [`Module::with_table`]
//! uses it with gimli as the fallback, [`Walk::from_tables`] uses tables only.
//!
//! See docs/unwinder.md for the design and the kernel integration.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "compile")]
pub mod compile;
mod coverage;
mod format;
mod frame;
mod gimli_eval;
mod module;
mod regs;
pub mod table;
mod walk;

pub use coverage::{Coverage, coverage, is_padding};
pub use format::{BacktraceLine, BacktraceWriter, FrameLine, ParseError, write_backtrace};
pub use frame::{ExceptionEntry, Frame, Memory, StopReason};
/// DWARF register numbers for [`Regs::get`] and [`Frame::get`]
/// (e.g. `X86_64::R11`).
pub use gimli::{Register, X86_64};
pub use gimli_eval::{FixedStorage, GimliRows, UnwindState};
pub use module::{CfiSections, Module, ModuleError};
pub use regs::{Regs, VALID_ALL, VALID_CALLEE_SAVED, VALID_CALLER_SAVED};
pub use table::{TableRows, UnwindTable};
pub use walk::{RowSource, Step, StepResult, Walk, walk};

use gimli::{EndianSlice, LittleEndian};

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
