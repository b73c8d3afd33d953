//! The register context a walk steps through, and the validity mask that
//! says which registers are known.

use gimli::{Register, X86_64};

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
    pub(crate) fn slot(&mut self, reg: Register) -> Option<&mut u64> {
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
    pub(crate) fn clear_unknown(&mut self, valid: u32) {
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
pub(crate) const RESTORED: [Register; 15] = {
    // BY_BIT from bit 2 on: one list, so the two orders cannot drift apart.
    let mut r = [X86_64::RA; 15];
    let mut i = 0;
    while i < r.len() {
        r[i] = BY_BIT[i + 2];
        i += 1;
    }
    r
};

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
pub(crate) fn bit(reg: Register) -> u32 {
    BITS.get(usize::from(reg.0)).copied().unwrap_or(0)
}

/// rip, rsp and the callee-saved registers (rbp, rbx, r12–r15).
pub const VALID_CALLEE_SAVED: u32 = 0xff;
/// The caller-saved registers (rax, rcx, rdx, rsi, rdi, r8–r11).
pub const VALID_CALLER_SAVED: u32 = 0x1ff00;
/// rip and all 16 general-purpose registers.
pub const VALID_ALL: u32 = VALID_CALLEE_SAVED | VALID_CALLER_SAVED;
/// The tracked registers in validity-bit order (bit `i` of the mask is
/// `BY_BIT[i]`): rip, rsp, then [`RESTORED`].
pub(crate) const BY_BIT: [Register; 17] = [
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_bits_by_register() {
        for (i, r) in BY_BIT.into_iter().enumerate() {
            assert_eq!(bit(r), 1 << i, "{r:?}");
        }
        assert_eq!(bit(X86_64::XMM0), 0);
        // eval_frame relies on this order.
        for (i, r) in RESTORED.into_iter().enumerate() {
            assert_eq!(bit(r), 1 << (i + 2), "{r:?}");
        }
        assert_eq!(bit(Register(u16::MAX)), 0);
        assert_eq!(VALID_ALL, (1 << 17) - 1);
    }

    #[test]
    fn get_and_clear_unknown() {
        let mut r = Regs::default();
        for (i, reg) in BY_BIT.into_iter().enumerate() {
            *r.slot(reg).unwrap() = 100 + i as u64;
        }
        for (i, reg) in BY_BIT.into_iter().enumerate() {
            assert_eq!(r.get(reg), Some(100 + i as u64));
        }
        assert_eq!(r.get(X86_64::XMM0), None);
        r.clear_unknown(VALID_CALLEE_SAVED);
        assert_eq!(r.rax, 0);
        assert_eq!(r.r11, 0);
        assert_eq!(r.rbp, 102);
        // rsp is never cleared (it is always known).
        r.clear_unknown(0);
        assert_eq!(r.rsp, 101);
        assert_eq!(r.rbx, 0);
    }
}
