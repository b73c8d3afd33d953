//! The registers of a call.

/// What the guest passes: RAX = (protocol << 32) | call, arguments in RCX,
/// RDX, R8 and R9.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallRegs {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub r8: u64,
    pub r9: u64,
}

impl CallRegs {
    pub const fn protocol(&self) -> u32 {
        (self.rax >> 32) as u32
    }

    pub const fn call(&self) -> u32 {
        self.rax as u32
    }
}

/// What the guest gets back: the result code in RAX; RCX, RDX and R8 keep
/// their input values unless the call defines them as outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutRegs {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub r8: u64,
}

impl OutRegs {
    /// The registers before the call has produced anything.
    pub const fn unchanged(regs: &CallRegs) -> Self {
        Self {
            rax: regs.rax,
            rcx: regs.rcx,
            rdx: regs.rdx,
            r8: regs.r8,
        }
    }
}
