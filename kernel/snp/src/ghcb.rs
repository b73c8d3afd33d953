//! The GHCB page protocol (GHCB specification 56421, sections 2.3.2 and
//! 4.1): the request goes into the shared GHCB page (each field written is
//! marked in the valid bitmap), the GHCB MSR holds the page's GPA, VMGEXIT;
//! the hypervisor's result is SW_EXITINFO1[31:0] (0 success, 1 an error
//! with an exception to raise in SW_EXITINFO2, 2 a malformed request with
//! its reason in SW_EXITINFO2). Everything read back is the hypervisor's
//! word: outputs are used only when the hypervisor marked them valid.

use crate::hw::SnpHardware;
use core::mem::offset_of;
use svsm_defs::ghcb::{Ghcb, SHARED_BUFFER_SIZE, exit_code};
use svsm_defs::ioio::{IoioInfo, with_port};

/// The GHCB page format version the SVSM writes (GHCB protocol version 2).
pub const GHCB_VERSION: u16 = 2;
/// GHCB usage 0: the standard GHCB format.
pub const GHCB_USAGE_DEFAULT: u32 = 0;
/// The shared buffer's offset in the page (its GPA is the page's plus this).
pub const SHARED_BUFFER_OFFSET: u64 = 0x800;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GhcbError {
    /// SW_EXITINFO1[31:0] = 1: the hypervisor asks for an exception (the
    /// event in SW_EXITINFO2).
    Exception(u64),
    /// SW_EXITINFO1[31:0] = 2: the hypervisor found the request malformed
    /// (1 invalid GHCB, 2 invalid request, in SW_EXITINFO2).
    InvalidRequest(u64),
    /// Any other SW_EXITINFO1 value.
    UnknownResult(u64),
    /// An output the hypervisor had to provide is not marked valid.
    MissingOutput(&'static str),
    /// A request-specific failure: its SW_EXITINFO2.
    Failed(u64),
    /// A request the SVSM refuses to send (the reason).
    BadArgument(&'static str),
}

/// A registered GHCB page and its guest-physical address.
pub struct GhcbPage<'a> {
    pub ghcb: &'a mut Ghcb,
    pub gpa: u64,
}

macro_rules! set {
    ($g:expr, $field:ident, $v:expr) => {{
        $g.$field = $v;
        $g.mark_valid(offset_of!(Ghcb, $field));
    }};
}

fn output(g: &Ghcb, offset: usize, v: u64, name: &'static str) -> Result<u64, GhcbError> {
    if g.is_valid(offset) {
        Ok(v)
    } else {
        Err(GhcbError::MissingOutput(name))
    }
}

fn check_mmio_len(len: usize) -> Result<(), GhcbError> {
    match len {
        1 | 2 | 4 | 8 => Ok(()),
        _ => Err(GhcbError::BadArgument("MMIO size is not 1, 2, 4 or 8")),
    }
}

impl GhcbPage<'_> {
    /// Starts a request: no field valid, the format version and usage set.
    fn clear(&mut self) {
        self.ghcb.valid_bitmap = [0; 16];
        self.ghcb.sw_exit_code = 0;
        self.ghcb.sw_exit_info_1 = 0;
        self.ghcb.sw_exit_info_2 = 0;
        self.ghcb.protocol_version = GHCB_VERSION;
        self.ghcb.ghcb_usage = GHCB_USAGE_DEFAULT;
    }

    /// Sends the request in the page (after `clear` and the inputs).
    fn call<H: SnpHardware>(
        &mut self,
        hw: &mut H,
        code: u64,
        info1: u64,
        info2: u64,
    ) -> Result<(), GhcbError> {
        set!(self.ghcb, sw_exit_code, code);
        set!(self.ghcb, sw_exit_info_1, info1);
        set!(self.ghcb, sw_exit_info_2, info2);
        hw.write_ghcb_msr(self.gpa);
        hw.vmgexit(Some(self.ghcb));
        match self.ghcb.sw_exit_info_1 & 0xffff_ffff {
            0 => Ok(()),
            1 => Err(GhcbError::Exception(self.ghcb.sw_exit_info_2)),
            2 => Err(GhcbError::InvalidRequest(self.ghcb.sw_exit_info_2)),
            _ => Err(GhcbError::UnknownResult(self.ghcb.sw_exit_info_1)),
        }
    }

    /// IN or OUT of `size` bytes (1, 2 or 4) at `port`; returns the value
    /// read (IN) or `value` (OUT).
    pub fn ioio<H: SnpHardware>(
        &mut self,
        hw: &mut H,
        port: u16,
        size: u8,
        write: Option<u32>,
    ) -> Result<u32, GhcbError> {
        // No arithmetic that could panic: this runs under the console.
        let (mut info, mask) = match size {
            1 => (IoioInfo::SZ8, 0xff),
            2 => (IoioInfo::SZ16, 0xffff),
            4 => (IoioInfo::SZ32, 0xffff_ffff),
            _ => return Err(GhcbError::BadArgument("I/O size is not 1, 2 or 4")),
        };
        self.clear();
        match write {
            Some(v) => set!(self.ghcb, rax, u64::from(v)),
            None => info |= IoioInfo::TYPE_IN,
        }
        self.call(hw, exit_code::IOIO, with_port(info, port), 0)?;
        match write {
            Some(v) => Ok(v),
            None => {
                let rax = output(self.ghcb, offset_of!(Ghcb, rax), self.ghcb.rax, "RAX")?;
                Ok((rax & mask) as u32)
            }
        }
    }

    /// MMIO read of `len` bytes (1, 2, 4 or 8) at `gpa`: the hypervisor
    /// writes the data to the shared buffer, named by SW_SCRATCH.
    pub fn mmio_read<H: SnpHardware>(
        &mut self,
        hw: &mut H,
        gpa: u64,
        len: usize,
    ) -> Result<u64, GhcbError> {
        check_mmio_len(len)?;
        self.clear();
        set!(self.ghcb, sw_scratch, self.gpa + SHARED_BUFFER_OFFSET);
        self.call(hw, exit_code::MMIO_READ, gpa, len as u64)?;
        let mut bytes = [0u8; 8];
        bytes[..len].copy_from_slice(&self.ghcb.shared_buffer[..len]);
        Ok(u64::from_le_bytes(bytes))
    }

    /// MMIO write of the low `len` bytes (1, 2, 4 or 8) of `value` at `gpa`,
    /// passed in the shared buffer.
    pub fn mmio_write<H: SnpHardware>(
        &mut self,
        hw: &mut H,
        gpa: u64,
        len: usize,
        value: u64,
    ) -> Result<(), GhcbError> {
        check_mmio_len(len)?;
        self.clear();
        self.ghcb.shared_buffer[..len].copy_from_slice(&value.to_le_bytes()[..len]);
        set!(self.ghcb, sw_scratch, self.gpa + SHARED_BUFFER_OFFSET);
        self.call(hw, exit_code::MMIO_WRITE, gpa, len as u64)
    }

    /// RDMSR through the hypervisor.
    pub fn rdmsr<H: SnpHardware>(&mut self, hw: &mut H, msr: u32) -> Result<u64, GhcbError> {
        self.clear();
        set!(self.ghcb, rcx, u64::from(msr));
        self.call(hw, exit_code::MSR, 0, 0)?;
        let lo = output(self.ghcb, offset_of!(Ghcb, rax), self.ghcb.rax, "RAX")?;
        let hi = output(self.ghcb, offset_of!(Ghcb, rdx), self.ghcb.rdx, "RDX")?;
        Ok((hi << 32) | (lo & 0xffff_ffff))
    }

    /// WRMSR through the hypervisor.
    pub fn wrmsr<H: SnpHardware>(
        &mut self,
        hw: &mut H,
        msr: u32,
        value: u64,
    ) -> Result<(), GhcbError> {
        self.clear();
        set!(self.ghcb, rcx, u64::from(msr));
        set!(self.ghcb, rax, value & 0xffff_ffff);
        set!(self.ghcb, rdx, value >> 32);
        self.call(hw, exit_code::MSR, 1, 0)
    }

    /// Page state change of `pages` (guest frame, 2 MiB or not) to `state`,
    /// in as many requests as the shared buffer needs. The hypervisor
    /// advances the header's current entry; a request that makes no
    /// progress fails.
    pub fn page_state_change<H: SnpHardware>(
        &mut self,
        hw: &mut H,
        pages: &[(u64, bool)],
        state: psc::Operation,
    ) -> Result<(), GhcbError> {
        for chunk in pages.chunks(psc::MAX_ENTRIES) {
            self.clear();
            // Built in place: the shared buffer is 2 KiB, too much for the
            // small stacks this runs on.
            let buf = &mut self.ghcb.shared_buffer;
            buf.fill(0);
            let end = (chunk.len() - 1) as u16;
            buf[2..4].copy_from_slice(&end.to_le_bytes());
            for (i, &(gfn, large)) in chunk.iter().enumerate() {
                let e = psc::entry(gfn, state, large);
                buf[8 + 8 * i..16 + 8 * i].copy_from_slice(&e.to_le_bytes());
            }
            set!(self.ghcb, sw_scratch, self.gpa + SHARED_BUFFER_OFFSET);
            let mut last = None;
            loop {
                self.call(hw, exit_code::SNP_PAGE_STATE_CHANGE, 0, 0)?;
                if self.ghcb.sw_exit_info_2 != 0 {
                    return Err(GhcbError::Failed(self.ghcb.sw_exit_info_2));
                }
                let h = &self.ghcb.shared_buffer;
                let cur = u16::from_le_bytes([h[0], h[1]]);
                let end_now = u16::from_le_bytes([h[2], h[3]]);
                if end_now != end {
                    return Err(GhcbError::BadArgument(
                        "the hypervisor changed the end entry",
                    ));
                }
                if cur > end {
                    break;
                }
                if last == Some(cur) {
                    return Err(GhcbError::Failed(u64::from(cur)));
                }
                last = Some(cur);
            }
        }
        Ok(())
    }

    /// AP creation: starts (or, `on_init`, arms for INIT) the vCPU with
    /// `apic_id` on the VMSA at `vmsa_gpa` with `sev_features` (which
    /// must match the VMSA's).
    pub fn ap_create<H: SnpHardware>(
        &mut self,
        hw: &mut H,
        apic_id: u32,
        vmsa_gpa: u64,
        sev_features: u64,
        on_init: bool,
    ) -> Result<(), GhcbError> {
        if !vmsa_gpa.is_multiple_of(0x1000) {
            return Err(GhcbError::BadArgument("VMSA not page aligned"));
        }
        // A 2 MiB-aligned VMSA can collide with a large RMP entry (an SNP
        // erratum); KVM refuses it too.
        if vmsa_gpa.is_multiple_of(0x20_0000) {
            return Err(GhcbError::BadArgument("VMSA is 2 MiB aligned"));
        }
        self.clear();
        set!(self.ghcb, rax, sev_features);
        let request = if on_init {
            ap::CREATE_ON_INIT
        } else {
            ap::CREATE
        };
        self.call(
            hw,
            exit_code::SNP_AP_CREATION,
            (u64::from(apic_id) << 32) | request,
            vmsa_gpa,
        )
    }

    /// Destroys the vCPU with `apic_id`.
    pub fn ap_destroy<H: SnpHardware>(
        &mut self,
        hw: &mut H,
        apic_id: u32,
    ) -> Result<(), GhcbError> {
        self.clear();
        self.call(
            hw,
            exit_code::SNP_AP_CREATION,
            (u64::from(apic_id) << 32) | ap::DESTROY,
            0,
        )
    }

    /// An SNP guest request (a message to the firmware, encrypted with a
    /// VMPCK by the caller): request and response pages are shared pages.
    /// Returns the firmware's error code (SW_EXITINFO2[31:0]); a hypervisor
    /// error (SW_EXITINFO2[63:32]) fails the call.
    pub fn guest_request<H: SnpHardware>(
        &mut self,
        hw: &mut H,
        request_gpa: u64,
        response_gpa: u64,
    ) -> Result<u32, GhcbError> {
        if !request_gpa.is_multiple_of(0x1000) || !response_gpa.is_multiple_of(0x1000) {
            return Err(GhcbError::BadArgument("guest request page not aligned"));
        }
        if request_gpa == response_gpa {
            return Err(GhcbError::BadArgument("request and response share a page"));
        }
        self.clear();
        self.call(hw, exit_code::SNP_GUEST_REQUEST, request_gpa, response_gpa)?;
        let info2 = self.ghcb.sw_exit_info_2;
        if info2 >> 32 != 0 {
            return Err(GhcbError::Failed(info2));
        }
        Ok(info2 as u32)
    }

    /// The #HV doorbell page: `op` is one of [`doorbell`]; returns the GPA
    /// the hypervisor reports (preferred, set or current page).
    pub fn hv_doorbell<H: SnpHardware>(
        &mut self,
        hw: &mut H,
        op: u64,
        gpa: u64,
    ) -> Result<u64, GhcbError> {
        self.clear();
        self.call(hw, exit_code::HV_DOORBELL_PAGE, op, gpa)?;
        let got = self.ghcb.sw_exit_info_2;
        if op == doorbell::SET && got != gpa {
            return Err(GhcbError::Failed(got));
        }
        Ok(got)
    }
}

/// SNP AP creation requests (SW_EXITINFO1[31:0]).
pub mod ap {
    pub const CREATE_ON_INIT: u64 = 0;
    pub const CREATE: u64 = 1;
    pub const DESTROY: u64 = 2;
}

/// #HV doorbell page operations (SW_EXITINFO1).
pub mod doorbell {
    pub const GET_PREFERRED: u64 = 0;
    pub const SET: u64 = 1;
    pub const QUERY: u64 = 2;
    pub const CLEAR: u64 = 3;
}

/// The page state change structure in the shared buffer (GHCB 56421,
/// 4.1.6): a header (current entry u16, end entry u16, reserved u32) and
/// entries: current page 11:0, GFN 51:12, operation 55:52, page size 56.
pub mod psc {
    pub const MAX_ENTRIES: usize = (super::SHARED_BUFFER_SIZE - 8) / 8;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    #[repr(u64)]
    pub enum Operation {
        Private = 1,
        Shared = 2,
    }

    pub const fn entry(gfn: u64, op: Operation, large: bool) -> u64 {
        ((large as u64) << 56) | ((op as u64) << 52) | ((gfn & 0xff_ffff_ffff) << 12)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{Event, FakeHw};
    use core::cell::RefCell;
    use std::boxed::Box;
    use std::rc::Rc;
    use std::vec::Vec;
    use zerocopy::FromZeros;

    const GPA: u64 = 0x7000;

    /// What the hypervisor saw: (exit code, info1, info2, valid offsets of
    /// rax/rcx/rdx/sw_scratch).
    type Seen = Rc<RefCell<Vec<(u64, u64, u64, [bool; 4], u16)>>>;

    fn recording(hw: &mut FakeHw, mut answer: impl FnMut(&mut Ghcb) + 'static) -> Seen {
        let seen: Seen = Rc::default();
        let s = seen.clone();
        hw.hypervisor = Box::new(move |g| {
            s.borrow_mut().push((
                g.sw_exit_code,
                g.sw_exit_info_1,
                g.sw_exit_info_2,
                [
                    g.is_valid(offset_of!(Ghcb, rax)),
                    g.is_valid(offset_of!(Ghcb, rcx)),
                    g.is_valid(offset_of!(Ghcb, rdx)),
                    g.is_valid(offset_of!(Ghcb, sw_scratch)),
                ],
                g.protocol_version,
            ));
            g.valid_bitmap = [0; 16];
            g.sw_exit_info_1 = 0;
            g.sw_exit_info_2 = 0;
            answer(g);
        });
        seen
    }

    fn page(g: &mut Ghcb) -> GhcbPage<'_> {
        GhcbPage { ghcb: g, gpa: GPA }
    }

    #[test]
    fn mmio_sizes_other_than_1_2_4_8_are_not_sent() {
        let mut hw = FakeHw::new();
        let mut g = Box::new(Ghcb::new_zeroed());
        for len in [0, 3, 5, 16] {
            assert!(matches!(
                page(&mut g).mmio_read(&mut hw, 0xfee0_0000, len),
                Err(GhcbError::BadArgument(_))
            ));
            assert!(matches!(
                page(&mut g).mmio_write(&mut hw, 0xfee0_0000, len, 0),
                Err(GhcbError::BadArgument(_))
            ));
        }
        assert!(hw.events.is_empty());
        assert_eq!(page(&mut g).mmio_read(&mut hw, 0xfee0_0000, 8), Ok(0));
        assert_eq!(hw.events.len(), 2, "MSR write and VMGEXIT");
    }

    #[test]
    fn ioio_in_and_out() {
        let mut hw = FakeHw::new();
        let seen = recording(&mut hw, |g| {
            g.rax = 0xdead_beef;
            g.mark_valid(offset_of!(Ghcb, rax));
        });
        let mut g = Box::new(Ghcb::new_zeroed());
        assert_eq!(page(&mut g).ioio(&mut hw, 0x3f8, 1, Some(0x41)), Ok(0x41));
        assert_eq!(page(&mut g).ioio(&mut hw, 0x3fd, 1, None), Ok(0xef));
        assert_eq!(page(&mut g).ioio(&mut hw, 0xcfc, 2, None), Ok(0xbeef));
        assert_eq!(page(&mut g).ioio(&mut hw, 0xcfc, 4, None), Ok(0xdead_beef));
        let s = seen.borrow();
        assert_eq!(s[0].0, 0x7b);
        assert_eq!(s[0].1, (0x3f8 << 16) | 0x10, "OUT, 8-bit");
        assert_eq!(s[0].3, [true, false, false, false], "RAX carries the value");
        assert_eq!(s[0].4, 2, "GHCB version 2");
        assert_eq!(s[1].1, (0x3fd << 16) | 0x11, "IN, 8-bit");
        assert!(!s[1].3[0], "no RAX for IN");
        assert_eq!(s[2].1, (0xcfc << 16) | 0x21);
        assert_eq!(s[3].1, (0xcfc << 16) | 0x41);
        // The GHCB MSR holds the page's GPA for each request.
        assert!(hw.msr_writes().iter().all(|&v| v == GPA));
        assert_eq!(
            page(&mut g).ioio(&mut hw, 0, 3, None),
            Err(GhcbError::BadArgument("I/O size is not 1, 2 or 4"))
        );
    }

    #[test]
    fn ioio_in_needs_a_valid_rax() {
        let mut hw = FakeHw::new();
        recording(&mut hw, |g| g.rax = 5);
        let mut g = Box::new(Ghcb::new_zeroed());
        assert_eq!(
            page(&mut g).ioio(&mut hw, 0x60, 1, None),
            Err(GhcbError::MissingOutput("RAX"))
        );
    }

    #[test]
    fn results_other_than_success() {
        let mut hw = FakeHw::new();
        let mut g = Box::new(Ghcb::new_zeroed());
        for (info1, want) in [
            (1, GhcbError::Exception(0x8000_0b0d)),
            (2, GhcbError::InvalidRequest(0x8000_0b0d)),
            (0x1_0000_0007, GhcbError::UnknownResult(0x1_0000_0007)),
        ] {
            recording(&mut hw, move |g| {
                g.sw_exit_info_1 = info1;
                g.sw_exit_info_2 = 0x8000_0b0d;
            });
            assert_eq!(page(&mut g).wrmsr(&mut hw, 0x10, 1), Err(want));
        }
    }

    #[test]
    fn msr_read_and_write() {
        let mut hw = FakeHw::new();
        let seen = recording(&mut hw, |g| {
            g.rax = 0xffff_ffff_1234_5678;
            g.rdx = 0x9abc;
            g.mark_valid(offset_of!(Ghcb, rax));
            g.mark_valid(offset_of!(Ghcb, rdx));
        });
        let mut g = Box::new(Ghcb::new_zeroed());
        assert_eq!(page(&mut g).rdmsr(&mut hw, 0x1b), Ok(0x9abc_1234_5678));
        assert_eq!(page(&mut g).wrmsr(&mut hw, 0x1b, 0x1_0000_0002), Ok(()));
        let s = seen.borrow();
        assert_eq!((s[0].0, s[0].1), (0x7c, 0));
        assert_eq!(s[0].3, [false, true, false, false]);
        assert_eq!((s[1].0, s[1].1), (0x7c, 1));
        assert_eq!(s[1].3, [true, true, true, false]);
    }

    #[test]
    fn page_state_change_fills_the_shared_buffer_and_follows_progress() {
        let mut hw = FakeHw::new();
        let entries: Rc<RefCell<Vec<u64>>> = Rc::default();
        let e2 = entries.clone();
        let calls = Rc::new(RefCell::new(0));
        let c2 = calls.clone();
        let seen = recording(&mut hw, move |g| {
            let b = &mut g.shared_buffer;
            let end = u16::from_le_bytes([b[2], b[3]]);
            if *c2.borrow() == 0 {
                for i in 0..=end as usize {
                    e2.borrow_mut().push(u64::from_le_bytes(
                        b[8 + 8 * i..16 + 8 * i].try_into().unwrap(),
                    ));
                }
            }
            *c2.borrow_mut() += 1;
            // Two entries per round trip.
            let cur = u16::from_le_bytes([b[0], b[1]]) + 2;
            b[0..2].copy_from_slice(&cur.to_le_bytes());
        });
        let mut g = Box::new(Ghcb::new_zeroed());
        let pages = [(0x100, false), (0x200, true), (0x300, false)];
        assert_eq!(
            page(&mut g).page_state_change(&mut hw, &pages, psc::Operation::Shared),
            Ok(())
        );
        assert_eq!(*calls.borrow(), 2);
        assert_eq!(
            *entries.borrow(),
            [
                0x0020_0000_0010_0000,
                0x0120_0000_0020_0000,
                0x0020_0000_0030_0000
            ]
        );
        let s = seen.borrow();
        assert_eq!(s[0].0, 0x8000_0010);
        assert!(s[0].3[3], "SW_SCRATCH names the shared buffer");
        assert_eq!(g.sw_scratch, GPA + 0x800);
        assert_eq!(psc::MAX_ENTRIES, 253);
    }

    #[test]
    fn page_state_change_without_progress_or_with_an_error_fails() {
        let mut hw = FakeHw::new();
        recording(&mut hw, |_| {});
        let mut g = Box::new(Ghcb::new_zeroed());
        assert_eq!(
            page(&mut g).page_state_change(&mut hw, &[(1, false)], psc::Operation::Private),
            Err(GhcbError::Failed(0))
        );
        recording(&mut hw, |g| g.sw_exit_info_2 = 0x100);
        assert_eq!(
            page(&mut g).page_state_change(&mut hw, &[(1, false)], psc::Operation::Private),
            Err(GhcbError::Failed(0x100))
        );
    }

    #[test]
    fn ap_creation_encodes_apic_id_request_and_features() {
        let mut hw = FakeHw::new();
        let seen = recording(&mut hw, |_| {});
        let mut g = Box::new(Ghcb::new_zeroed());
        assert_eq!(
            page(&mut g).ap_create(&mut hw, 3, 0x8_1000, 0x9, false),
            Ok(())
        );
        assert_eq!(
            page(&mut g).ap_create(&mut hw, 4, 0x8_2000, 0x9, true),
            Ok(())
        );
        assert_eq!(page(&mut g).ap_destroy(&mut hw, 3), Ok(()));
        let s = seen.borrow();
        assert_eq!(
            (s[0].0, s[0].1, s[0].2),
            (0x8000_0013, (3 << 32) | 1, 0x8_1000)
        );
        assert!(s[0].3[0], "RAX carries the SEV features");
        assert!(!seen.borrow()[2].3[0], "destroy sends no features");
        assert_eq!(s[1].1, 4 << 32);
        assert_eq!(s[2].1, (3 << 32) | 2);
        assert_eq!(
            page(&mut g).ap_create(&mut hw, 1, 0x20_0000, 1, false),
            Err(GhcbError::BadArgument("VMSA is 2 MiB aligned"))
        );
        assert_eq!(
            page(&mut g).ap_create(&mut hw, 1, 0x20_0010, 1, false),
            Err(GhcbError::BadArgument("VMSA not page aligned"))
        );
        assert_eq!(
            seen.borrow().len(),
            3,
            "refused requests never reach the hypervisor"
        );
    }

    #[test]
    fn guest_request_returns_the_firmware_code() {
        let mut hw = FakeHw::new();
        let seen = recording(&mut hw, |g| g.sw_exit_info_2 = 0x16);
        let mut g = Box::new(Ghcb::new_zeroed());
        assert_eq!(
            page(&mut g).guest_request(&mut hw, 0x5000, 0x6000),
            Ok(0x16)
        );
        assert_eq!(
            seen.borrow()[0].0..seen.borrow()[0].0 + 1,
            0x8000_0011..0x8000_0012
        );
        assert_eq!((seen.borrow()[0].1, seen.borrow()[0].2), (0x5000, 0x6000));
        recording(&mut hw, |g| g.sw_exit_info_2 = 2 << 32);
        assert_eq!(
            page(&mut g).guest_request(&mut hw, 0x5000, 0x6000),
            Err(GhcbError::Failed(2 << 32))
        );
        assert!(page(&mut g).guest_request(&mut hw, 0x5000, 0x5000).is_err());
        assert!(page(&mut g).guest_request(&mut hw, 0x5001, 0x6000).is_err());
    }

    #[test]
    fn hv_doorbell_set_must_be_echoed() {
        let mut hw = FakeHw::new();
        let seen = recording(&mut hw, |g| g.sw_exit_info_2 = 0x9000);
        let mut g = Box::new(Ghcb::new_zeroed());
        assert_eq!(
            page(&mut g).hv_doorbell(&mut hw, doorbell::GET_PREFERRED, 0),
            Ok(0x9000)
        );
        assert_eq!(
            page(&mut g).hv_doorbell(&mut hw, doorbell::SET, 0x9000),
            Ok(0x9000)
        );
        assert_eq!(
            page(&mut g).hv_doorbell(&mut hw, doorbell::SET, 0xa000),
            Err(GhcbError::Failed(0x9000))
        );
        assert_eq!(seen.borrow()[0].0, 0x8000_0014);
        assert_eq!(
            hw.events
                .iter()
                .filter(|e| **e == Event::Vmgexit { page: true })
                .count(),
            3
        );
    }
}
