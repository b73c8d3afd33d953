//! What a walk reads (the caller's [`Memory`]) and what it yields
//! ([`Frame`]s, then a [`StopReason`]).

use crate::regs::{Regs, bit};
use core::fmt;
use gimli::Register;

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
#[cfg(test)]
mod tests {
    use super::*;
    use gimli::X86_64;

    #[test]
    fn stop_reason_names_round_trip() {
        for r in StopReason::ALL {
            assert_eq!(StopReason::from_name(r.name()), Some(r));
        }
        assert_eq!(StopReason::from_name("nope"), None);
    }

    #[test]
    fn lookup_pc_and_checked_get() {
        let mut f = Frame {
            index: 1,
            pc: 0x1000,
            sp: 0,
            cfa: None,
            exception: None,
            pc_is_exact: false,
            regs: Regs {
                rax: 5,
                rbx: 6,
                ..Default::default()
            },
            valid: Regs::mask_bit(X86_64::RBX),
        };
        assert_eq!(f.lookup_pc(), 0xfff);
        assert_eq!(f.get(X86_64::RBX), Some(6));
        assert_eq!(f.get(X86_64::RAX), None);
        f.pc_is_exact = true;
        assert_eq!(f.lookup_pc(), 0x1000);
    }
}
