//! The attestation messenger's transport on SNP: svsm-attest's
//! [`GuestRequestTransport`] over the GHCB SNP_GUEST_REQUEST exit (GHCB
//! specification 56421, section 4.1.8). The encrypted request is copied into
//! a shared (hypervisor-visible) request page, the exit names the request
//! and response pages by GPA, and the response is copied out of the shared
//! response page once: the hypervisor can change shared pages at any time,
//! so nothing is read from them in place.

use crate::ghcb::{GhcbError, GhcbPage};
use crate::hw::SnpHardware;
use svsm_attest::snp_msg::{GuestRequestTransport, MsgError};
use svsm_defs::PAGE_SIZE;

/// A page shared with the hypervisor (page state Shared, mapped without
/// the C-bit), accessed only by copying.
pub trait SharedPage {
    /// Its guest-physical address (page-aligned).
    fn gpa(&self) -> u64;
    /// Replaces the page's contents with `data`, zero-filled to the end.
    fn write(&mut self, data: &[u8]);
    /// Copies the start of the page into `out` (at most one page).
    fn read(&self, out: &mut [u8]);
}

/// SNP guest requests through a registered GHCB page and two shared pages.
pub struct GhcbGuestRequest<'a, 'g, H: SnpHardware, P: SharedPage> {
    pub hw: &'a mut H,
    pub ghcb: &'a mut GhcbPage<'g>,
    pub request: P,
    pub response: P,
    /// The last failure, for the caller's log: the messenger only sees
    /// `Transport` or `Firmware`.
    pub last_error: Option<GhcbError>,
}

impl<H: SnpHardware, P: SharedPage> GuestRequestTransport for GhcbGuestRequest<'_, '_, H, P> {
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<(), MsgError> {
        if request.len() > PAGE_SIZE as usize || response.len() > PAGE_SIZE as usize {
            return Err(MsgError::Transport);
        }
        self.request.write(request);
        // A stale response must never pass for this request's.
        self.response.write(&[]);
        let code = self
            .ghcb
            .guest_request(self.hw, self.request.gpa(), self.response.gpa())
            .map_err(|e| {
                self.last_error = Some(e);
                MsgError::Transport
            })?;
        if code != 0 {
            return Err(MsgError::Firmware(code));
        }
        self.response.read(response);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeHw;
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use aes_gcm::{Aes256Gcm, Tag};
    use core::cell::RefCell;
    use std::boxed::Box;
    use std::rc::Rc;
    use std::vec::Vec;
    use svsm_attest::snp_msg::GuestMessenger;
    use svsm_defs::ghcb::Ghcb;
    use svsm_defs::snp_msg::{MSG_REPORT_REQ, MSG_SIZE, MsgHeader, ReportReq, ReportRsp};
    use svsm_defs::snp_report::AttestationReport;
    use zerocopy::{FromBytes, FromZeros, IntoBytes};

    const VMPCK: [u8; 32] = [0x3c; 32];
    const REQ_GPA: u64 = 0x7_0000;
    const RSP_GPA: u64 = 0x7_1000;
    const GHCB_GPA: u64 = 0x9000;

    type Mem = Rc<RefCell<Vec<u8>>>;

    /// A shared page in the test's "guest memory", which the fake
    /// firmware reads and writes by GPA too.
    struct TestPage {
        gpa: u64,
        mem: Mem,
    }

    impl SharedPage for TestPage {
        fn gpa(&self) -> u64 {
            self.gpa
        }
        fn write(&mut self, data: &[u8]) {
            let mut m = self.mem.borrow_mut();
            m.fill(0);
            m[..data.len()].copy_from_slice(data);
        }
        fn read(&self, out: &mut [u8]) {
            out.copy_from_slice(&self.mem.borrow()[..out.len()]);
        }
    }

    fn iv(seqno: u64) -> [u8; 12] {
        let mut iv = [0u8; 12];
        iv[..8].copy_from_slice(&seqno.to_le_bytes());
        iv
    }

    /// The secure processor behind the hypervisor: decrypts the request
    /// page with the same VMPCK and writes an encrypted MSG_REPORT_RSP to
    /// the response page. `fw_error` is returned in SW_EXITINFO2 instead.
    fn firmware(req: &Mem, rsp: &Mem, g: &mut Ghcb, fw_error: u64) -> u64 {
        assert_eq!(
            (g.sw_exit_code, g.sw_exit_info_1, g.sw_exit_info_2),
            (0x8000_0011, REQ_GPA, RSP_GPA)
        );
        g.sw_exit_info_1 = 0;
        g.sw_exit_info_2 = fw_error;
        let cipher = Aes256Gcm::new(&VMPCK.into());
        let page = req.borrow();
        let (hdr, body) = page.split_at(0x60);
        let h = MsgHeader::read_from_bytes(hdr).unwrap();
        assert_eq!((h.algo, h.msg_type, h.msg_vmpck), (1, MSG_REPORT_REQ, 0));
        let mut payload = body[..usize::from(h.msg_size)].to_vec();
        let tag = Tag::from(<[u8; 16]>::try_from(&h.authtag[..16]).unwrap());
        cipher
            .decrypt_in_place_detached(&iv(h.msg_seqno).into(), &hdr[0x30..], &mut payload, &tag)
            .expect("the request authenticates under the VMPCK");
        if fw_error != 0 {
            return h.msg_seqno;
        }
        let req = ReportReq::read_from_bytes(&payload).unwrap();
        let mut r = ReportRsp::new_zeroed();
        r.report_size = 0x4A0;
        r.report.version = 3;
        r.report.vmpl = req.vmpl;
        r.report.report_data = req.report_data;
        let mut rh = MsgHeader::new_zeroed();
        rh.msg_seqno = h.msg_seqno + 1;
        rh.algo = 1;
        rh.hdr_version = 1;
        rh.hdr_size = 0x60;
        rh.msg_type = MSG_REPORT_REQ + 1;
        rh.msg_version = 1;
        rh.msg_size = r.as_bytes().len() as u16;
        let mut body = r.as_bytes().to_vec();
        let tag = cipher
            .encrypt_in_place_detached(&iv(rh.msg_seqno).into(), &rh.as_bytes()[0x30..], &mut body)
            .unwrap();
        rh.authtag[..16].copy_from_slice(&tag);
        let mut out = rsp.borrow_mut();
        out[..0x60].copy_from_slice(rh.as_bytes());
        out[0x60..0x60 + body.len()].copy_from_slice(&body);
        h.msg_seqno
    }

    struct Setup {
        hw: FakeHw,
        req: Mem,
        rsp: Mem,
        /// The request sequence numbers the firmware saw.
        seen: Rc<RefCell<Vec<u64>>>,
    }

    fn setup(fw_error: u64) -> Setup {
        let req: Mem = Rc::new(RefCell::new(std::vec![0; 4096]));
        let rsp: Mem = Rc::new(RefCell::new(std::vec![0; 4096]));
        let seen: Rc<RefCell<Vec<u64>>> = Rc::default();
        let mut hw = FakeHw::new();
        let (q, s, n) = (req.clone(), rsp.clone(), seen.clone());
        hw.hypervisor = Box::new(move |g| {
            let seqno = firmware(&q, &s, g, fw_error);
            n.borrow_mut().push(seqno);
        });
        Setup { hw, req, rsp, seen }
    }

    fn report(
        s: &mut Setup,
        m: &mut GuestMessenger,
        data: u8,
    ) -> Result<Box<AttestationReport>, MsgError> {
        let mut g = Box::new(Ghcb::new_zeroed());
        let mut ghcb = GhcbPage {
            ghcb: &mut g,
            gpa: GHCB_GPA,
        };
        let mut t = GhcbGuestRequest {
            hw: &mut s.hw,
            ghcb: &mut ghcb,
            request: TestPage {
                gpa: REQ_GPA,
                mem: s.req.clone(),
            },
            response: TestPage {
                gpa: RSP_GPA,
                mem: s.rsp.clone(),
            },
            last_error: None,
        };
        let mut req = Box::new([0u8; MSG_SIZE]);
        let mut rsp = Box::new([0u8; MSG_SIZE]);
        let mut out = AttestationReport::new_box_zeroed().unwrap();
        m.get_report(&mut t, &[data; 64], 2, &mut req, &mut rsp, &mut out)?;
        Ok(out)
    }

    #[test]
    fn report_round_trip_through_the_ghcb() {
        let mut s = setup(0);
        let mut m = GuestMessenger::new(&VMPCK, 0, 0);
        for i in 1..=3u8 {
            let out = report(&mut s, &mut m, i).unwrap();
            assert_eq!((out.report_data, out.vmpl), ([i; 64], 2));
        }
        assert_eq!(*s.seen.borrow(), [1, 3, 5], "request sequence numbers");
        assert_eq!(m.last_seqno(), 6);
        // Each exchange: the GHCB's GPA into the MSR, one page VMGEXIT.
        use crate::fake::Event;
        let one = [Event::WriteMsr(GHCB_GPA), Event::Vmgexit { page: true }];
        assert_eq!(s.hw.events, [one.clone(), one.clone(), one].concat());
    }

    #[test]
    fn a_firmware_error_retires_the_key() {
        let mut s = setup(0x16);
        let mut m = GuestMessenger::new(&VMPCK, 0, 4);
        assert_eq!(
            report(&mut s, &mut m, 1).unwrap_err(),
            MsgError::Firmware(0x16)
        );
        assert!(m.is_retired());
        assert_eq!(report(&mut s, &mut m, 1).unwrap_err(), MsgError::KeyRetired);
        assert_eq!(*s.seen.borrow(), [5], "nothing sent after the failure");
    }

    #[test]
    fn a_hypervisor_error_retires_the_key() {
        // SW_EXITINFO2[63:32] non-zero: the hypervisor failed the request.
        let mut s = setup(1 << 32);
        let mut m = GuestMessenger::new(&VMPCK, 0, 0);
        assert_eq!(report(&mut s, &mut m, 1).unwrap_err(), MsgError::Transport);
        assert!(m.is_retired());
    }

    #[test]
    fn a_stale_response_page_is_not_accepted() {
        // The hypervisor never runs the firmware: the response page holds
        // what the previous exchange left, cleared before the exit.
        let mut s = setup(0);
        let mut m = GuestMessenger::new(&VMPCK, 0, 0);
        report(&mut s, &mut m, 1).unwrap();
        s.hw.hypervisor = Box::new(|g| {
            g.sw_exit_info_1 = 0;
            g.sw_exit_info_2 = 0;
        });
        assert_eq!(
            report(&mut s, &mut m, 2).unwrap_err(),
            MsgError::BadResponse
        );
        assert!(m.is_retired());
    }
}
