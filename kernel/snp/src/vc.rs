//! The #VC handler's logic (GHCB specification 56421, section 4: the
//! instructions a guest emulates on a #VC): CPUID is answered from the
//! checked CPUID page, never the hypervisor; IN/OUT and RDMSR/WRMSR go to
//! the hypervisor through the GHCB. Only the plain forms are decoded here
//! (IN/OUT with an immediate or DX port, optional operand-size prefix);
//! string I/O, MMIO and everything else is refused and ends in a fatal
//! exception report. The instruction bytes are a copy the caller fetched
//! from the SVSM's own code (a #VC from elsewhere is fatal).

use crate::cpuid::CheckedCpuid;
use crate::ghcb::{GhcbError, GhcbPage};
use crate::hw::SnpHardware;
use svsm_defs::ghcb::exit_code;

/// The registers a #VC handler may read and change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcRegs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rip: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcError {
    /// An exit code this handler does not emulate.
    Unsupported(u64),
    /// The instruction at RIP is not the form the exit code announced.
    Decode { exit_code: u64, first_byte: u8 },
    /// The hypervisor failed the request.
    Ghcb(GhcbError),
}

impl From<GhcbError> for VcError {
    fn from(e: GhcbError) -> Self {
        Self::Ghcb(e)
    }
}

/// A decoded IN or OUT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortIo {
    pub port: u16,
    pub size: u8,
    pub is_in: bool,
    pub len: u64,
}

/// Decodes IN/OUT: E4/E5/E6/E7 ib (immediate port), EC/ED/EE/EF (DX),
/// with an optional 0x66 prefix (16-bit for the E5/E7/ED/EF forms).
pub fn decode_io(insn: &[u8], dx: u16) -> Option<PortIo> {
    let (opsize16, rest) = match insn.first()? {
        0x66 => (true, &insn[1..]),
        _ => (false, insn),
    };
    let prefix = u64::from(opsize16);
    let op = *rest.first()?;
    let wide = if opsize16 { 2 } else { 4 };
    let (size, is_in) = match op {
        0xe4 | 0xec => (1, true),
        0xe5 | 0xed => (wide, true),
        0xe6 | 0xee => (1, false),
        0xe7 | 0xef => (wide, false),
        _ => return None,
    };
    let (port, len) = if op & 0x08 == 0 {
        (u16::from(*rest.get(1)?), 2)
    } else {
        (dx, 1)
    };
    Some(PortIo {
        port,
        size,
        is_in,
        len: prefix + len,
    })
}

/// Writes an IN result into RAX: 8/16-bit results keep the other bits,
/// a 32-bit result clears the upper half (as the instruction does).
fn merge(rax: u64, v: u32, size: u8) -> u64 {
    match size {
        1 => (rax & !0xff) | u64::from(v & 0xff),
        2 => (rax & !0xffff) | u64::from(v & 0xffff),
        _ => u64::from(v),
    }
}

/// Emulates the instruction that raised #VC with `exit_code` (the #VC
/// error code), advancing RIP past it.
pub fn handle<H: SnpHardware>(
    hw: &mut H,
    ghcb: &mut GhcbPage<'_>,
    cpuid: &CheckedCpuid,
    exit_code: u64,
    insn: &[u8],
    regs: &mut VcRegs,
) -> Result<(), VcError> {
    let bad = || VcError::Decode {
        exit_code,
        first_byte: insn.first().copied().unwrap_or(0),
    };
    match exit_code {
        exit_code::CPUID => {
            if !insn.starts_with(&[0x0f, 0xa2]) {
                return Err(bad());
            }
            // A leaf the page lacks reads as zeros, like a leaf past the
            // CPU's maximum.
            let r = cpuid
                .lookup(regs.rax as u32, regs.rcx as u32)
                .unwrap_or_default();
            regs.rax = u64::from(r[0]);
            regs.rbx = u64::from(r[1]);
            regs.rcx = u64::from(r[2]);
            regs.rdx = u64::from(r[3]);
            regs.rip += 2;
        }
        exit_code::IOIO => {
            let io = decode_io(insn, regs.rdx as u16).ok_or_else(bad)?;
            if io.is_in {
                let v = ghcb.ioio(hw, io.port, io.size, None)?;
                regs.rax = merge(regs.rax, v, io.size);
            } else {
                // `ioio` keeps the low `io.size` bytes.
                let v = match io.size {
                    1 => regs.rax & 0xff,
                    2 => regs.rax & 0xffff,
                    _ => regs.rax & 0xffff_ffff,
                };
                ghcb.ioio(hw, io.port, io.size, Some(v as u32))?;
            }
            regs.rip += io.len;
        }
        exit_code::MSR => {
            let msr = regs.rcx as u32;
            match insn {
                [0x0f, 0x32, ..] => {
                    let v = ghcb.rdmsr(hw, msr)?;
                    regs.rax = v & 0xffff_ffff;
                    regs.rdx = v >> 32;
                }
                [0x0f, 0x30, ..] => {
                    let v = (regs.rdx << 32) | (regs.rax & 0xffff_ffff);
                    ghcb.wrmsr(hw, msr, v)?;
                }
                _ => return Err(bad()),
            }
            regs.rip += 2;
        }
        other => return Err(VcError::Unsupported(other)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeHw;
    use core::cell::RefCell;
    use core::mem::offset_of;
    use std::boxed::Box;
    use std::rc::Rc;
    use std::vec::Vec;
    use svsm_defs::cpuid::{CpuidEntry, CpuidPage, LEAF_SEV_INFO};
    use svsm_defs::ghcb::Ghcb;
    use zerocopy::FromZeros;

    fn cpuid() -> CheckedCpuid {
        let mut p = CpuidPage::new_zeroed();
        let e = |eax_in, ecx_in, eax, ebx| CpuidEntry {
            eax_in,
            ecx_in,
            eax,
            ebx,
            ecx: 3,
            edx: 4,
            ..Default::default()
        };
        p.entries[0] = e(0, 0, 0xd, 0x1111);
        p.entries[1] = e(1, 0, 0xa10f11, 0);
        p.entries[2] = e(7, 0, 0, 0x7777);
        p.entries[3] = e(LEAF_SEV_INFO, 0, 0x1b, 0x33);
        p.count = 4;
        CheckedCpuid::check(&p, 51).unwrap()
    }

    /// A hypervisor that answers IN with 0x1234_5678 and RDMSR with
    /// 0xaabb_ccdd_1122_3344, recording (exit code, info1, rax, rcx, rdx).
    /// (exit code, info1, rax, rcx, rdx) per request.
    type Seen = Rc<RefCell<Vec<(u64, u64, u64, u64, u64)>>>;

    fn hv(hw: &mut FakeHw) -> Seen {
        let seen: Rc<RefCell<Vec<_>>> = Rc::default();
        let s = seen.clone();
        hw.hypervisor = Box::new(move |g: &mut Ghcb| {
            s.borrow_mut()
                .push((g.sw_exit_code, g.sw_exit_info_1, g.rax, g.rcx, g.rdx));
            g.sw_exit_info_1 = 0;
            g.rax = 0x1234_5678;
            g.rdx = 0xaabb_ccdd;
            if g.sw_exit_code == 0x7c {
                g.rax = 0x1122_3344;
            }
            g.mark_valid(offset_of!(Ghcb, rax));
            g.mark_valid(offset_of!(Ghcb, rdx));
        });
        seen
    }

    fn run(exit_code: u64, insn: &[u8], regs: &mut VcRegs, hw: &mut FakeHw) -> Result<(), VcError> {
        let mut g = Box::new(Ghcb::new_zeroed());
        let mut page = GhcbPage {
            ghcb: &mut g,
            gpa: 0x9000,
        };
        handle(hw, &mut page, &cpuid(), exit_code, insn, regs)
    }

    #[test]
    fn cpuid_comes_from_the_page_not_the_hypervisor() {
        let mut hw = FakeHw::new();
        let mut r = VcRegs {
            rax: 7,
            rcx: 0,
            rip: 0x1000,
            ..Default::default()
        };
        run(0x72, &[0x0f, 0xa2], &mut r, &mut hw).unwrap();
        assert_eq!(
            (r.rax, r.rbx, r.rcx, r.rdx, r.rip),
            (0, 0x7777, 3, 4, 0x1002)
        );
        assert!(hw.events.is_empty(), "no exit to the hypervisor");
        let mut r = VcRegs {
            rax: 0x4000_0000,
            ..Default::default()
        };
        run(0x72, &[0x0f, 0xa2], &mut r, &mut hw).unwrap();
        assert_eq!((r.rax, r.rbx, r.rcx, r.rdx), (0, 0, 0, 0), "absent leaf");
    }

    #[test]
    fn in_and_out_forms() {
        let mut hw = FakeHw::new();
        let seen = hv(&mut hw);
        // out dx, al
        let mut r = VcRegs {
            rax: 0xffff_ff41,
            rdx: 0x3f8,
            ..Default::default()
        };
        run(0x7b, &[0xee], &mut r, &mut hw).unwrap();
        assert_eq!(r.rip, 1);
        // in al, dx keeps the upper bits of RAX
        let mut r = VcRegs {
            rax: 0xaaaa_aaaa_aaaa_aaaa,
            rdx: 0x3fd,
            ..Default::default()
        };
        run(0x7b, &[0xec], &mut r, &mut hw).unwrap();
        assert_eq!(r.rax, 0xaaaa_aaaa_aaaa_aa78);
        // in ax, 0x60 (operand-size prefix)
        let mut r = VcRegs {
            rax: u64::MAX,
            ..Default::default()
        };
        run(0x7b, &[0x66, 0xe5, 0x60], &mut r, &mut hw).unwrap();
        assert_eq!((r.rax, r.rip), (0xffff_ffff_ffff_5678, 3));
        // in eax, dx clears the upper half
        let mut r = VcRegs {
            rax: u64::MAX,
            rdx: 0xcfc,
            ..Default::default()
        };
        run(0x7b, &[0xed], &mut r, &mut hw).unwrap();
        assert_eq!(r.rax, 0x1234_5678);
        // out 0xf4, eax
        let mut r = VcRegs {
            rax: 0x1_0000_0021,
            ..Default::default()
        };
        run(0x7b, &[0xe7, 0xf4], &mut r, &mut hw).unwrap();
        let s = seen.borrow();
        assert_eq!((s[0].1, s[0].2), ((0x3f8 << 16) | 0x10, 0x41));
        assert_eq!(s[1].1, (0x3fd << 16) | 0x11);
        assert_eq!(s[2].1, (0x60 << 16) | 0x21);
        assert_eq!(s[3].1, (0xcfc << 16) | 0x41);
        assert_eq!((s[4].1, s[4].2), ((0xf4 << 16) | 0x40, 0x21));
    }

    #[test]
    fn msr_read_and_write() {
        let mut hw = FakeHw::new();
        let seen = hv(&mut hw);
        let mut r = VcRegs {
            rcx: 0xc000_0080,
            rip: 10,
            ..Default::default()
        };
        run(0x7c, &[0x0f, 0x32], &mut r, &mut hw).unwrap();
        assert_eq!((r.rax, r.rdx, r.rip), (0x1122_3344, 0xaabb_ccdd, 12));
        let mut r = VcRegs {
            rcx: 0x1b,
            rax: 0xffff_ffff_0000_0900,
            rdx: 0xfee,
            ..Default::default()
        };
        run(0x7c, &[0x0f, 0x30], &mut r, &mut hw).unwrap();
        let s = seen.borrow();
        assert_eq!((s[0].1, s[0].3), (0, 0xc000_0080));
        assert_eq!((s[1].1, s[1].2, s[1].3, s[1].4), (1, 0x900, 0x1b, 0xfee));
    }

    #[test]
    fn mismatched_and_unsupported_exits_are_refused() {
        let mut hw = FakeHw::new();
        let mut r = VcRegs::default();
        for (code, insn) in [
            (0x72, &[0x90][..]),
            (0x7b, &[0x6c][..]), // INSB: string I/O
            (0x7b, &[][..]),
            (0x7c, &[0x0f, 0xa2][..]),
        ] {
            assert!(
                matches!(
                    run(code, insn, &mut r, &mut hw),
                    Err(VcError::Decode { .. })
                ),
                "{code:#x} {insn:x?}"
            );
        }
        assert_eq!(
            run(0x400, &[0x8b, 0x00], &mut r, &mut hw),
            Err(VcError::Unsupported(0x400)),
            "MMIO (NPF)"
        );
        assert_eq!(r, VcRegs::default(), "nothing changed");
        assert!(hw.events.is_empty());
    }

    #[test]
    fn a_hypervisor_failure_is_reported() {
        let mut hw = FakeHw::new();
        hw.hypervisor = Box::new(|g| g.sw_exit_info_1 = 2);
        let mut r = VcRegs::default();
        assert_eq!(
            run(0x7b, &[0xec], &mut r, &mut hw),
            Err(VcError::Ghcb(GhcbError::InvalidRequest(0)))
        );
        assert_eq!(r.rip, 0, "RIP stays on the failed instruction");
    }
}
