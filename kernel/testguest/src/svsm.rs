//! Calling the SVSM the way Linux does: RAX = (protocol << 32) | call,
//! arguments in RCX, RDX, R8, R9, `call_pending = 1` in the calling area,
//! then the GHCB MSR protocol (MSR 0xC001_0130 <- 0x016 | VMPL 0 << 32) and
//! VMGEXIT (`rep vmmcall`), then `xchg(call_pending, 0)`. INCOMPLETE and
//! BUSY are retried.

use core::arch::asm;
use core::mem::offset_of;
use svsm_defs::ghcb::{Ghcb, exit_code, msr_protocol};
use svsm_defs::msr;

pub const INCOMPLETE: u64 = 0x8000_0000;
pub const BUSY: u64 = 0x8000_0007;
/// Retries of an INCOMPLETE/BUSY call before giving up.
const RETRIES: u32 = 1000;

/// The four result registers of a call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub r8: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The GHCB MSR did not hold the Run VMPL response afterwards, or the
    /// GHCB's SW_EXITINFO1 was not 0.
    BadResponse(u64),
    /// `call_pending` was still 1: the SVSM never served the call.
    NotServed,
}

fn wrmsr(m: u32, v: u64) {
    // SAFETY: the GHCB MSR write exits to the SVSM, which emulates it.
    unsafe {
        asm!("wrmsr", in("ecx") m, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack))
    };
}

fn rdmsr(m: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: as in `wrmsr`.
    unsafe { asm!("rdmsr", in("ecx") m, out("eax") lo, out("edx") hi, options(nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// How the guest reaches the SVSM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The GHCB MSR protocol: Run VMPL request 0x016 (VMPL 0).
    Msr,
    /// A GHCB page at this GPA: SW_EXITCODE 0x8000_0018, exit infos 0.
    Ghcb(u64),
}

pub struct Svsm {
    /// The calling area (identity mapped: its GPA is its address).
    pub caa: u64,
    pub via: Via,
}

impl Svsm {
    /// One call, without retries.
    pub fn call_once(
        &self,
        rax: u64,
        rcx: u64,
        rdx: u64,
        r8: u64,
        r9: u64,
    ) -> Result<Regs, CallError> {
        match self.via {
            Via::Msr => self.call_msr([rax, rcx, rdx, r8, r9]),
            Via::Ghcb(gpa) => self.call_ghcb(gpa, [rax, rcx, rdx, r8, r9]),
        }
    }

    fn call_msr(&self, regs: [u64; 5]) -> Result<Regs, CallError> {
        let saved = rdmsr(msr::GHCB);
        wrmsr(msr::GHCB, msr_protocol::RUN_VMPL_REQUEST);
        let r = self.issue(regs);
        let resp = rdmsr(msr::GHCB);
        wrmsr(msr::GHCB, saved);
        if msr_protocol::info(resp) != msr_protocol::RUN_VMPL_RESPONSE || resp >> 32 != 0 {
            return Err(CallError::BadResponse(resp));
        }
        r
    }

    fn call_ghcb(&self, gpa: u64, regs: [u64; 5]) -> Result<Regs, CallError> {
        let p = gpa as *mut Ghcb;
        // SAFETY: the GHCB is a page of this guest's memory (identity
        // mapped) that nothing else uses; fields are written in place.
        unsafe {
            (*p).valid_bitmap = [0; 16];
            (*p).protocol_version = 2;
            (*p).ghcb_usage = 0;
            (*p).sw_exit_code = exit_code::SNP_RUN_VMPL;
            (*p).sw_exit_info_1 = 0;
            (*p).sw_exit_info_2 = 0;
            for off in [
                offset_of!(Ghcb, sw_exit_code),
                offset_of!(Ghcb, sw_exit_info_1),
                offset_of!(Ghcb, sw_exit_info_2),
            ] {
                (*p).mark_valid(off);
            }
        }
        wrmsr(msr::GHCB, gpa);
        let r = self.issue(regs);
        // SAFETY: as above; the SVSM wrote its answer there.
        let info1 = unsafe { core::ptr::read_volatile(&raw const (*p).sw_exit_info_1) };
        if info1 as u32 != 0 {
            return Err(CallError::BadResponse(info1));
        }
        r
    }

    /// `call_pending = 1`, VMGEXIT, `xchg(call_pending, 0)`.
    fn issue(&self, [rax, rcx, rdx, r8, r9]: [u64; 5]) -> Result<Regs, CallError> {
        let pending = self.caa as *mut u8;
        let (mut a, mut c, mut d, mut r) = (rax, rcx, rdx, r8);
        let mut was: u8 = 0;
        // SAFETY: the calling area is this vCPU's page of guest memory;
        // `rep vmmcall` is VMGEXIT, which runs the SVSM and returns here.
        unsafe {
            asm!(
                "mov byte ptr [{p}], 1",
                "rep vmmcall",
                "xchg byte ptr [{p}], {w}",
                p = in(reg) pending,
                w = inout(reg_byte) was,
                inout("rax") a, inout("rcx") c, inout("rdx") d, inout("r8") r,
                in("r9") r9,
                options(nostack),
            )
        };
        if was != 0 {
            return Err(CallError::NotServed);
        }
        Ok(Regs {
            rax: a,
            rcx: c,
            rdx: d,
            r8: r,
        })
    }

    /// A call, retried while the result is INCOMPLETE or BUSY.
    pub fn call(&self, rax: u64, rcx: u64, rdx: u64, r8: u64, r9: u64) -> Result<Regs, CallError> {
        let mut res = self.call_once(rax, rcx, rdx, r8, r9)?;
        let mut n = 0;
        while (res.rax == INCOMPLETE || res.rax == BUSY) && n < RETRIES {
            res = self.call_once(rax, rcx, rdx, r8, r9)?;
            n += 1;
        }
        Ok(res)
    }
}

/// VMGEXIT with the GHCB page as the caller left it (the GHCB MSR names it).
pub fn vmgexit_as_is(svsm: &Svsm) {
    if let Via::Ghcb(gpa) = svsm.via {
        wrmsr(msr::GHCB, gpa);
    }
    let _ = svsm.issue([0; 5]);
}

/// A bare VMMCALL that the SVSM answers at once (the cost floor of an exit).
pub fn bare_vmmcall() -> u64 {
    let mut a: u64 = 0x1234;
    // SAFETY: VMMCALL exits to the SVSM, which clears RAX and resumes.
    unsafe { asm!("vmmcall", inout("rax") a, options(nostack)) };
    a
}
