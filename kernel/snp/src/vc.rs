//! The #VC handler's logic (GHCB specification 56421, section 4: the
//! instructions a guest emulates on a #VC). The instruction is decoded by
//! `svsm-insn` from bytes copied through the caller's fetch accessor (the
//! SVSM's own code; a #VC from elsewhere is fatal) and must be the form the
//! exit code announced. CPUID is answered from the checked CPUID page, never
//! the hypervisor; port IO (IN/OUT and INS/OUTS, with REP) goes to the
//! hypervisor through GHCB IOIO requests, one element per request;
//! RDMSR/WRMSR through GHCB MSR requests. MMIO (a nested page fault) and
//! everything else is refused and ends in a fatal exception report.

use crate::cpuid::CheckedCpuid;
use crate::ghcb::{GhcbError, GhcbPage};
use crate::hw::SnpHardware;
use svsm_defs::ghcb::exit_code;
use svsm_insn::{
    DecodeError, DeviceError, Devices, EmulateError, Gpr, GuestState, Insn, InsnFetch, Mode, Op,
    Width, decode, emulate,
};

/// REP INS/OUTS iterations per #VC: the rest re-executes (and exits again),
/// so one #VC never holds the GHCB for an unbounded time.
pub const MAX_REPS_PER_VC: u64 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcError {
    /// An exit code this handler does not emulate.
    Unsupported(u64),
    /// The bytes at RIP could not be decoded.
    Decode(DecodeError),
    /// The instruction at RIP is not the form the exit code announced.
    Mismatch { exit_code: u64 },
    /// A string IO operand in memory could not be copied.
    Memory(u64),
    /// The hypervisor failed the request.
    Ghcb(GhcbError),
    /// A nested page fault at a linear address that is no MMIO the SVSM
    /// may access.
    NotMmio(u64),
}

impl From<GhcbError> for VcError {
    fn from(e: GhcbError) -> Self {
        Self::Ghcb(e)
    }
}

/// The linear-to-GPA translation of MMIO addresses the caller allows
/// (`None`: not an MMIO address the SVSM may access). A type parameter, not
/// `dyn`: the call stays direct, so the #VC path has no indirect call for
/// the stack analysis to over-approximate.
pub trait Translate: FnMut(u64) -> Option<u64> {}
impl<T: FnMut(u64) -> Option<u64> + ?Sized> Translate for T {}

/// The emulator's devices on SNP: port IO through GHCB IOIO requests, MMIO
/// through GHCB MMIO requests at the GPA `translate` gives for the linear
/// address (`None`: not an MMIO address the SVSM may access). The first
/// failure is kept so the caller reports it.
struct GhcbDevices<'h, 'g, 'p, 't, H: SnpHardware, T: Translate + ?Sized> {
    hw: &'h mut H,
    ghcb: &'g mut GhcbPage<'p>,
    translate: &'t mut T,
    failure: Option<VcError>,
}

impl<H: SnpHardware, T: Translate + ?Sized> GhcbDevices<'_, '_, '_, '_, H, T> {
    fn fail<R>(&mut self, e: VcError) -> Result<R, DeviceError> {
        self.failure = Some(e);
        Err(DeviceError)
    }
    fn io(&mut self, port: u16, width: Width, write: Option<u32>) -> Result<u32, DeviceError> {
        match self.ghcb.ioio(self.hw, port, width.bytes() as u8, write) {
            Ok(v) => Ok(v),
            Err(e) => self.fail(VcError::Ghcb(e)),
        }
    }
    fn gpa(&mut self, linear: u64) -> Result<u64, DeviceError> {
        match (self.translate)(linear) {
            Some(gpa) => Ok(gpa),
            None => self.fail(VcError::NotMmio(linear)),
        }
    }
}

impl<H: SnpHardware, T: Translate + ?Sized> Devices for GhcbDevices<'_, '_, '_, '_, H, T> {
    fn io_read(&mut self, port: u16, width: Width) -> Result<u32, DeviceError> {
        self.io(port, width, None)
    }
    fn io_write(&mut self, port: u16, width: Width, value: u32) -> Result<(), DeviceError> {
        self.io(port, width, Some(value)).map(|_| ())
    }
    fn mmio_read(&mut self, linear: u64, width: Width) -> Result<u64, DeviceError> {
        let gpa = self.gpa(linear)?;
        match self.ghcb.mmio_read(self.hw, gpa, width.bytes()) {
            Ok(v) => Ok(v),
            Err(e) => self.fail(VcError::Ghcb(e)),
        }
    }
    fn mmio_write(&mut self, linear: u64, width: Width, value: u64) -> Result<(), DeviceError> {
        let gpa = self.gpa(linear)?;
        match self.ghcb.mmio_write(self.hw, gpa, width.bytes(), value) {
            Ok(()) => Ok(()),
            Err(e) => self.fail(VcError::Ghcb(e)),
        }
    }
}

/// Emulates the instruction at `state`'s RIP that raised #VC with
/// `exit_code` (the #VC error code), advancing RIP past it (a REP string
/// instruction cut short at [`MAX_REPS_PER_VC`] keeps RIP, to run again).
/// On an error RIP is unchanged. A nested page fault (MMIO) is emulated at
/// the GPA `translate` gives for the access's linear address.
pub fn handle<
    H: SnpHardware,
    F: InsnFetch + ?Sized,
    S: GuestState + ?Sized,
    T: Translate + ?Sized,
>(
    hw: &mut H,
    ghcb: &mut GhcbPage<'_>,
    cpuid: &CheckedCpuid,
    exit_code: u64,
    fetch: &mut F,
    state: &mut S,
    translate: &mut T,
) -> Result<(), VcError> {
    let expected = match exit_code {
        exit_code::CPUID | exit_code::IOIO | exit_code::MSR | exit_code::NPF => exit_code,
        other => return Err(VcError::Unsupported(other)),
    };
    let insn = decode(fetch, state.rip(), Mode::Long64).map_err(VcError::Decode)?;
    let mismatch = VcError::Mismatch { exit_code };
    match (expected, insn.op) {
        (exit_code::CPUID, Op::Cpuid) => {
            // A leaf the page lacks reads as zeros, like a leaf past the
            // CPU's maximum.
            let r = cpuid
                .lookup(state.gpr(Gpr::RAX) as u32, state.gpr(Gpr::RCX) as u32)
                .unwrap_or_default();
            for (gpr, v) in [Gpr::RAX, Gpr::RBX, Gpr::RCX, Gpr::RDX].into_iter().zip(r) {
                state.set_gpr(gpr, u64::from(v));
            }
        }
        (exit_code::MSR, Op::Rdmsr) => {
            let v = ghcb.rdmsr(hw, state.gpr(Gpr::RCX) as u32)?;
            state.set_gpr(Gpr::RAX, v & 0xffff_ffff);
            state.set_gpr(Gpr::RDX, v >> 32);
        }
        (exit_code::MSR, Op::Wrmsr) => {
            let v = (state.gpr(Gpr::RDX) << 32) | (state.gpr(Gpr::RAX) & 0xffff_ffff);
            ghcb.wrmsr(hw, state.gpr(Gpr::RCX) as u32, v)?;
        }
        (exit_code::IOIO, _) if insn.io_access().is_some() => {
            return emulate_with_ghcb(hw, ghcb, translate, &insn, state, mismatch);
        }
        (exit_code::NPF, Op::Load { .. } | Op::Store { .. }) => {
            return emulate_with_ghcb(hw, ghcb, translate, &insn, state, mismatch);
        }
        _ => return Err(mismatch),
    }
    let next = insn.next_rip(state.rip(), state.ip_width());
    state.set_rip(next);
    Ok(())
}

/// Port IO and MMIO: `svsm_insn::emulate` with the GHCB as its devices.
fn emulate_with_ghcb<H: SnpHardware, S: GuestState + ?Sized, T: Translate + ?Sized>(
    hw: &mut H,
    ghcb: &mut GhcbPage<'_>,
    translate: &mut T,
    insn: &Insn,
    state: &mut S,
    mismatch: VcError,
) -> Result<(), VcError> {
    let mut devices = GhcbDevices {
        hw,
        ghcb,
        translate,
        failure: None,
    };
    match emulate(insn, state, &mut devices, MAX_REPS_PER_VC) {
        Ok(_) => Ok(()),
        Err(EmulateError::Memory(f)) => Err(VcError::Memory(f.addr)),
        Err(_) => Err(devices.failure.unwrap_or(mismatch)),
    }
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
    use svsm_insn::{MemFault, Segment, SliceFetch};
    use zerocopy::FromZeros;

    /// The interrupted context: 16 GPRs, RIP, RFLAGS and a 256-byte memory
    /// at linear 0x5000 for string IO.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Regs {
        gpr: [u64; 16],
        rip: u64,
        rflags: u64,
        mem: Vec<u8>,
    }

    const MEM: u64 = 0x5000;

    impl Regs {
        fn new(rip: u64, set: &[(Gpr, u64)]) -> Self {
            let mut r = Regs {
                gpr: [0; 16],
                rip,
                rflags: 2,
                mem: std::vec![0; 256],
            };
            for (g, v) in set {
                r.gpr[usize::from(g.0)] = *v;
            }
            r
        }
        fn g(&self, g: Gpr) -> u64 {
            self.gpr[usize::from(g.0)]
        }
        fn range(&self, linear: u64, n: usize) -> Result<usize, MemFault> {
            let o = linear
                .checked_sub(MEM)
                .map(|o| o as usize)
                .filter(|o| o + n <= self.mem.len())
                .ok_or(MemFault { addr: linear })?;
            Ok(o)
        }
    }

    impl GuestState for Regs {
        fn gpr(&self, r: Gpr) -> u64 {
            self.g(r)
        }
        fn set_gpr(&mut self, r: Gpr, value: u64) {
            self.gpr[usize::from(r.0)] = value;
        }
        fn rip(&self) -> u64 {
            self.rip
        }
        fn set_rip(&mut self, rip: u64) {
            self.rip = rip;
        }
        fn rflags(&self) -> u64 {
            self.rflags
        }
        fn segment_base(&self, _: Segment) -> u64 {
            0
        }
        fn read_memory(&mut self, linear: u64, buf: &mut [u8]) -> Result<(), MemFault> {
            let o = self.range(linear, buf.len())?;
            buf.copy_from_slice(&self.mem[o..o + buf.len()]);
            Ok(())
        }
        fn write_memory(&mut self, linear: u64, data: &[u8]) -> Result<(), MemFault> {
            let o = self.range(linear, data.len())?;
            self.mem[o..o + data.len()].copy_from_slice(data);
            Ok(())
        }
    }

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

    /// (exit code, info1, rax, rcx, rdx) per request.
    type Seen = Rc<RefCell<Vec<(u64, u64, u64, u64, u64)>>>;

    /// A hypervisor that answers IN with 0x1234_5678 (or, when counting,
    /// 0x10, 0x11, ...) and RDMSR with 0xaabb_ccdd_1122_3344, recording
    /// every request.
    fn hv(hw: &mut FakeHw, counting: bool) -> Seen {
        let seen: Rc<RefCell<Vec<_>>> = Rc::default();
        let s = seen.clone();
        hw.hypervisor = Box::new(move |g: &mut Ghcb| {
            let n = s.borrow().len() as u64;
            s.borrow_mut()
                .push((g.sw_exit_code, g.sw_exit_info_1, g.rax, g.rcx, g.rdx));
            g.sw_exit_info_1 = 0;
            g.rax = if counting { 0x10 + n } else { 0x1234_5678 };
            g.rdx = 0xaabb_ccdd;
            if g.sw_exit_code == 0x7c {
                g.rax = 0x1122_3344;
            }
            g.mark_valid(offset_of!(Ghcb, rax));
            g.mark_valid(offset_of!(Ghcb, rdx));
        });
        seen
    }

    /// Runs the handler on `insn` placed at the state's RIP.
    fn run(exit_code: u64, insn: &[u8], regs: &mut Regs, hw: &mut FakeHw) -> Result<(), VcError> {
        let mut g = Box::new(Ghcb::new_zeroed());
        let mut page = GhcbPage {
            ghcb: &mut g,
            gpa: 0x9000,
        };
        let mut fetch = SliceFetch {
            base: regs.rip,
            bytes: insn,
        };
        // MMIO at linear 0xfee0_0000.. maps to GPA 0xfee0_0000..
        let mut translate = |l: u64| (l >> 12 == 0xfee00).then_some(l);
        handle(
            hw,
            &mut page,
            &cpuid(),
            exit_code,
            &mut fetch,
            regs,
            &mut translate,
        )
    }

    #[test]
    fn cpuid_comes_from_the_page_not_the_hypervisor() {
        let mut hw = FakeHw::new();
        let mut r = Regs::new(0x1000, &[(Gpr::RAX, 7)]);
        run(0x72, &[0x0f, 0xa2], &mut r, &mut hw).unwrap();
        assert_eq!(
            (
                r.g(Gpr::RAX),
                r.g(Gpr::RBX),
                r.g(Gpr::RCX),
                r.g(Gpr::RDX),
                r.rip
            ),
            (0, 0x7777, 3, 4, 0x1002)
        );
        assert!(hw.events.is_empty(), "no exit to the hypervisor");
        let mut r = Regs::new(0, &[(Gpr::RAX, 0x4000_0000)]);
        run(0x72, &[0x0f, 0xa2], &mut r, &mut hw).unwrap();
        assert_eq!(&r.gpr[..4], &[0, 0, 0, 0], "absent leaf");
    }

    #[test]
    fn in_and_out_forms() {
        let mut hw = FakeHw::new();
        let seen = hv(&mut hw, false);
        // out dx, al
        let mut r = Regs::new(0, &[(Gpr::RAX, 0xffff_ff41), (Gpr::RDX, 0x3f8)]);
        run(0x7b, &[0xee], &mut r, &mut hw).unwrap();
        assert_eq!(r.rip, 1);
        // in al, dx keeps the upper bits of RAX
        let mut r = Regs::new(0, &[(Gpr::RAX, 0xaaaa_aaaa_aaaa_aaaa), (Gpr::RDX, 0x3fd)]);
        run(0x7b, &[0xec], &mut r, &mut hw).unwrap();
        assert_eq!(r.g(Gpr::RAX), 0xaaaa_aaaa_aaaa_aa78);
        // in ax, 0x60 (operand-size prefix)
        let mut r = Regs::new(0, &[(Gpr::RAX, u64::MAX)]);
        run(0x7b, &[0x66, 0xe5, 0x60], &mut r, &mut hw).unwrap();
        assert_eq!((r.g(Gpr::RAX), r.rip), (0xffff_ffff_ffff_5678, 3));
        // in eax, dx clears the upper half
        let mut r = Regs::new(0, &[(Gpr::RAX, u64::MAX), (Gpr::RDX, 0xcfc)]);
        run(0x7b, &[0xed], &mut r, &mut hw).unwrap();
        assert_eq!(r.g(Gpr::RAX), 0x1234_5678);
        // out 0xf4, eax
        let mut r = Regs::new(0, &[(Gpr::RAX, 0x1_0000_0021)]);
        run(0x7b, &[0xe7, 0xf4], &mut r, &mut hw).unwrap();
        let s = seen.borrow();
        assert_eq!((s[0].1, s[0].2), ((0x3f8 << 16) | 0x10, 0x41));
        assert_eq!(s[1].1, (0x3fd << 16) | 0x11);
        assert_eq!(s[2].1, (0x60 << 16) | 0x21);
        assert_eq!(s[3].1, (0xcfc << 16) | 0x41);
        assert_eq!((s[4].1, s[4].2), ((0xf4 << 16) | 0x40, 0x21));
        assert!(s.iter().all(|e| e.0 == 0x7b));
    }

    #[test]
    fn rep_outsb_sends_one_ioio_per_byte_from_memory() {
        let mut hw = FakeHw::new();
        let seen = hv(&mut hw, false);
        let mut r = Regs::new(0x40, &[(Gpr::RSI, MEM), (Gpr::RCX, 3), (Gpr::RDX, 0x3f8)]);
        r.mem[..3].copy_from_slice(b"abc");
        // rep outsb
        run(0x7b, &[0xf3, 0x6e], &mut r, &mut hw).unwrap();
        assert_eq!((r.g(Gpr::RSI), r.g(Gpr::RCX), r.rip), (MEM + 3, 0, 0x42));
        let s = seen.borrow();
        let sent: Vec<_> = s.iter().map(|e| (e.1, e.2)).collect();
        // One byte at a time, as plain OUT requests to 0x3f8.
        let info = (0x3f8 << 16) | 0x10;
        assert_eq!(sent, [(info, 0x61), (info, 0x62), (info, 0x63)]);
    }

    #[test]
    fn rep_insw_fills_memory_and_stops_at_the_per_vc_budget() {
        let mut hw = FakeHw::new();
        let seen = hv(&mut hw, true);
        let total = MAX_REPS_PER_VC + 2;
        let mut r = Regs::new(
            0x40,
            &[(Gpr::RDI, MEM), (Gpr::RCX, total), (Gpr::RDX, 0x1f0)],
        );
        // rep insw: the budget runs out, RIP stays for the re-execution.
        run(0x7b, &[0x66, 0xf3, 0x6d], &mut r, &mut hw).unwrap();
        assert_eq!((r.g(Gpr::RCX), r.rip), (2, 0x40));
        run(0x7b, &[0x66, 0xf3, 0x6d], &mut r, &mut hw).unwrap();
        assert_eq!(
            (r.g(Gpr::RCX), r.g(Gpr::RDI), r.rip),
            (0, MEM + 2 * total, 0x43)
        );
        let s = seen.borrow();
        assert_eq!(s.len() as u64, total);
        assert!(
            s.iter().all(|e| e.1 == (0x1f0 << 16) | 0x21),
            "IN word at DX"
        );
        assert_eq!(&r.mem[..6], &[0x10, 0, 0x11, 0, 0x12, 0]);
    }

    #[test]
    fn a_string_operand_outside_memory_is_a_memory_fault() {
        let mut hw = FakeHw::new();
        let mut r = Regs::new(0, &[(Gpr::RSI, 0x10), (Gpr::RDX, 0x3f8)]);
        assert_eq!(
            run(0x7b, &[0x6e], &mut r, &mut hw),
            Err(VcError::Memory(0x10))
        );
        assert_eq!(r.rip, 0);
        assert!(hw.events.is_empty(), "nothing sent");
    }

    #[test]
    fn msr_read_and_write() {
        let mut hw = FakeHw::new();
        let seen = hv(&mut hw, false);
        let mut r = Regs::new(10, &[(Gpr::RCX, 0xc000_0080)]);
        run(0x7c, &[0x0f, 0x32], &mut r, &mut hw).unwrap();
        assert_eq!(
            (r.g(Gpr::RAX), r.g(Gpr::RDX), r.rip),
            (0x1122_3344, 0xaabb_ccdd, 12)
        );
        let mut r = Regs::new(
            0,
            &[
                (Gpr::RCX, 0x1b),
                (Gpr::RAX, 0xffff_ffff_0000_0900),
                (Gpr::RDX, 0xfee),
            ],
        );
        run(0x7c, &[0x0f, 0x30], &mut r, &mut hw).unwrap();
        let s = seen.borrow();
        assert_eq!((s[0].0, s[0].1, s[0].3), (0x7c, 0, 0xc000_0080));
        assert_eq!((s[1].1, s[1].2, s[1].3, s[1].4), (1, 0x900, 0x1b, 0xfee));
    }

    #[test]
    fn mismatched_and_unsupported_exits_are_refused() {
        let mut hw = FakeHw::new();
        let fresh = Regs::new(0, &[]);
        let mut r = fresh.clone();
        for (code, insn) in [
            (0x72, &[0x90][..]),
            (0x7b, &[0x0f, 0xa2][..]),
            (0x7b, &[0x8b, 0x00][..]), // an MMIO load announced as IOIO
            (0x7c, &[0x0f, 0xa2][..]),
        ] {
            assert!(
                matches!(
                    run(code, insn, &mut r, &mut hw),
                    Err(VcError::Mismatch { .. } | VcError::Decode(_))
                ),
                "{code:#x} {insn:x?}"
            );
        }
        assert!(matches!(
            run(0x7b, &[], &mut r, &mut hw),
            Err(VcError::Decode(DecodeError::Fetch(_)))
        ));
        assert_eq!(
            run(0x401, &[0x8b, 0x00], &mut r, &mut hw),
            Err(VcError::Unsupported(0x401))
        );
        assert_eq!(
            run(0x400, &[0x8b, 0x00], &mut r, &mut hw),
            Err(VcError::NotMmio(0)),
            "MMIO outside the allowed range"
        );
        assert_eq!(
            run(0x400, &[0xec], &mut r, &mut hw),
            Err(VcError::Mismatch { exit_code: 0x400 }),
            "IN announced as MMIO"
        );
        assert_eq!(r, fresh, "nothing changed");
        assert!(hw.events.is_empty());
    }

    /// (exit code, info1, info2, scratch, shared-buffer bytes) per request.
    type MmioSeen = (u64, u64, u64, u64, Vec<u8>);

    #[test]
    fn mmio_load_and_store_through_the_shared_buffer() {
        let mut hw = FakeHw::new();
        let seen: Rc<RefCell<Vec<MmioSeen>>> = Rc::default();
        let s = seen.clone();
        hw.hypervisor = Box::new(move |g: &mut Ghcb| {
            let scratch_valid = g.is_valid(offset_of!(Ghcb, sw_scratch));
            assert!(scratch_valid);
            let n = g.sw_exit_info_2 as usize;
            s.borrow_mut().push((
                g.sw_exit_code,
                g.sw_exit_info_1,
                g.sw_exit_info_2,
                g.sw_scratch,
                g.shared_buffer[..n].to_vec(),
            ));
            g.sw_exit_info_1 = 0;
            if g.sw_exit_code == 0x8000_0001 {
                g.shared_buffer[..8].copy_from_slice(&0x8899_aabb_ccdd_eeffu64.to_le_bytes());
            }
        });
        // mov eax, [rbx+0x20]  (8b 43 20)
        let mut r = Regs::new(0x100, &[(Gpr::RBX, 0xfee0_0000), (Gpr::RAX, u64::MAX)]);
        run(0x400, &[0x8b, 0x43, 0x20], &mut r, &mut hw).unwrap();
        assert_eq!((r.g(Gpr::RAX), r.rip), (0xccdd_eeff, 0x103));
        // mov [rbx+0xb0], ecx  (89 8b b0 00 00 00)
        let mut r = Regs::new(0, &[(Gpr::RBX, 0xfee0_0000), (Gpr::RCX, 0x1_0000_0042)]);
        run(0x400, &[0x89, 0x8b, 0xb0, 0, 0, 0], &mut r, &mut hw).unwrap();
        assert_eq!(r.rip, 6);
        let s = seen.borrow();
        let scratch = 0x9000 + 0x800;
        assert_eq!(
            (s[0].0, s[0].1, s[0].2, s[0].3),
            (0x8000_0001, 0xfee0_0020, 4, scratch)
        );
        assert_eq!(
            (s[1].0, s[1].1, s[1].2, s[1].3, s[1].4.as_slice()),
            (0x8000_0002, 0xfee0_00b0, 4, scratch, &[0x42, 0, 0, 0][..])
        );
    }

    #[test]
    fn a_hypervisor_failure_is_reported() {
        let mut hw = FakeHw::new();
        hw.hypervisor = Box::new(|g| g.sw_exit_info_1 = 2);
        let mut r = Regs::new(0, &[]);
        assert_eq!(
            run(0x7b, &[0xec], &mut r, &mut hw),
            Err(VcError::Ghcb(GhcbError::InvalidRequest(0)))
        );
        assert_eq!(r.rip, 0, "RIP stays on the failed instruction");
    }
}
