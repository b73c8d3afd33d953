//! MSG_REPORT_REQ against a fake secure processor that holds the same
//! VMPCK: it decrypts and checks the request (AES-256-GCM, header as AAD,
//! sequence number as IV) and answers with a report, so both directions
//! of the encryption, the sequence-number rules and every refusal are
//! exercised.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Tag};
use svsm_attest::snp_msg::{GuestMessenger, GuestRequestTransport, MsgError, SnpReports};
use svsm_attest::{ReportError, ReportSource};
use svsm_defs::snp_msg::{MSG_REPORT_REQ, MSG_SIZE, MsgHeader, ReportReq, ReportRsp};
use svsm_defs::snp_report::AttestationReport;
use zerocopy::{FromBytes, FromZeros, IntoBytes};

const VMPCK: [u8; 32] = [0x5a; 32];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    FlipCiphertext,
    WrongSeqno,
    WrongType,
    Status(u32),
    ShortReport,
    TransportDown,
}

struct FakePsp {
    cipher: Aes256Gcm,
    fault: Fault,
    /// Sequence numbers of the requests seen.
    seen: Vec<u64>,
}

fn iv(seqno: u64) -> [u8; 12] {
    let mut iv = [0u8; 12];
    iv[..8].copy_from_slice(&seqno.to_le_bytes());
    iv
}

impl FakePsp {
    fn new(fault: Fault) -> Self {
        FakePsp {
            cipher: Aes256Gcm::new(&VMPCK.into()),
            fault,
            seen: Vec::new(),
        }
    }
}

impl GuestRequestTransport for FakePsp {
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<(), MsgError> {
        if self.fault == Fault::TransportDown {
            return Err(MsgError::Transport);
        }
        // The request, as the firmware checks it.
        let (hdr, body) = request.split_at(0x60);
        let h = MsgHeader::read_from_bytes(hdr).unwrap();
        assert_eq!(
            (h.algo, h.hdr_version, h.hdr_size, h.msg_type, h.msg_vmpck),
            (1, 1, 0x60, MSG_REPORT_REQ, 0)
        );
        assert_eq!(usize::from(h.msg_size), body.len());
        let mut payload = body.to_vec();
        let tag = Tag::from(<[u8; 16]>::try_from(&h.authtag[..16]).unwrap());
        self.cipher
            .decrypt_in_place_detached(&iv(h.msg_seqno).into(), &hdr[0x30..], &mut payload, &tag)
            .expect("the request authenticates under the VMPCK");
        self.seen.push(h.msg_seqno);
        let req = ReportReq::read_from_bytes(&payload).unwrap();

        // The response.
        let mut rsp = ReportRsp::new_zeroed();
        rsp.status = if let Fault::Status(s) = self.fault {
            s
        } else {
            0
        };
        rsp.report_size = if self.fault == Fault::ShortReport {
            0x100
        } else {
            0x4A0
        };
        rsp.report.version = 3;
        rsp.report.vmpl = req.vmpl;
        rsp.report.report_data = req.report_data;
        let mut rh = MsgHeader::new_zeroed();
        rh.msg_seqno = h.msg_seqno
            + if self.fault == Fault::WrongSeqno {
                3
            } else {
                1
            };
        rh.algo = 1;
        rh.hdr_version = 1;
        rh.hdr_size = 0x60;
        rh.msg_type = if self.fault == Fault::WrongType { 4 } else { 6 };
        rh.msg_version = 1;
        rh.msg_size = rsp.as_bytes().len() as u16;
        let mut body = rsp.as_bytes().to_vec();
        let tag = self
            .cipher
            .encrypt_in_place_detached(&iv(rh.msg_seqno).into(), &rh.as_bytes()[0x30..], &mut body)
            .unwrap();
        rh.authtag[..16].copy_from_slice(&tag);
        if self.fault == Fault::FlipCiphertext {
            body[100] ^= 1;
        }
        response.fill(0);
        response[..0x60].copy_from_slice(rh.as_bytes());
        response[0x60..0x60 + body.len()].copy_from_slice(&body);
        Ok(())
    }
}

struct Pages {
    req: Box<[u8; MSG_SIZE]>,
    rsp: Box<[u8; MSG_SIZE]>,
    out: Box<AttestationReport>,
}

fn pages() -> Pages {
    Pages {
        req: Box::new([0; MSG_SIZE]),
        rsp: Box::new([0; MSG_SIZE]),
        out: AttestationReport::new_box_zeroed().unwrap(),
    }
}

#[test]
fn report_round_trip_and_sequence_numbers() {
    let mut psp = FakePsp::new(Fault::None);
    let mut m = GuestMessenger::new(&VMPCK, 0, 10);
    let mut p = pages();
    for i in 0..3u8 {
        let data = [i; 64];
        m.get_report(&mut psp, &data, 1, &mut p.req, &mut p.rsp, &mut p.out)
            .unwrap();
        assert_eq!(p.out.report_data, data);
        assert_eq!(p.out.vmpl, 1);
    }
    assert_eq!(psp.seen, [11, 13, 15], "request numbers step by 2");
    assert_eq!(m.last_seqno(), 16);
    // The request on the wire is not the plaintext.
    assert!(!p.req.windows(64).any(|w| w == [2u8; 64]));
}

#[test]
fn every_bad_response_retires_the_key() {
    let cases = [
        (Fault::FlipCiphertext, MsgError::Auth),
        (Fault::WrongSeqno, MsgError::BadResponse),
        (Fault::WrongType, MsgError::BadResponse),
        (Fault::TransportDown, MsgError::Transport),
    ];
    for (fault, want) in cases {
        let mut psp = FakePsp::new(fault);
        let mut m = GuestMessenger::new(&VMPCK, 0, 0);
        let mut p = pages();
        assert_eq!(
            m.get_report(&mut psp, &[1; 64], 0, &mut p.req, &mut p.rsp, &mut p.out),
            Err(want),
            "{fault:?}"
        );
        assert!(m.is_retired(), "{fault:?}");
        psp.fault = Fault::None;
        assert_eq!(
            m.get_report(&mut psp, &[1; 64], 0, &mut p.req, &mut p.rsp, &mut p.out),
            Err(MsgError::KeyRetired),
            "{fault:?}: no second request under a possibly reused IV"
        );
    }
}

#[test]
fn firmware_refusals_keep_the_key() {
    for (fault, want) in [
        (Fault::Status(0x16), MsgError::Firmware(0x16)),
        (Fault::ShortReport, MsgError::BadResponse),
    ] {
        let mut psp = FakePsp::new(fault);
        let mut m = GuestMessenger::new(&VMPCK, 0, 0);
        let mut p = pages();
        assert_eq!(
            m.get_report(&mut psp, &[1; 64], 0, &mut p.req, &mut p.rsp, &mut p.out),
            Err(want)
        );
        assert!(
            !m.is_retired(),
            "an authenticated answer: the sequence numbers are known"
        );
        assert_eq!(m.last_seqno(), 2);
    }
}

#[test]
fn sequence_numbers_run_out_instead_of_wrapping() {
    let mut m = GuestMessenger::new(&VMPCK, 0, u64::MAX - 1);
    let mut p = pages();
    let r = m.get_report(
        &mut FakePsp::new(Fault::None),
        &[0; 64],
        0,
        &mut p.req,
        &mut p.rsp,
        &mut p.out,
    );
    assert_eq!(r, Err(MsgError::KeyRetired));
}

#[test]
fn snp_reports_is_a_report_source() {
    let mut psp = FakePsp::new(Fault::None);
    let mut p = pages();
    let mut src = SnpReports {
        messenger: GuestMessenger::new(&VMPCK, 0, 0),
        transport: &mut psp,
        vmpl: 2,
        request: &mut p.req,
        response: &mut p.rsp,
    };
    let mut out = AttestationReport::new_box_zeroed().unwrap();
    src.report(&[9; 64], &mut out).unwrap();
    assert_eq!((out.vmpl, out.report_data), (2, [9; 64]));
    src.transport.fault = Fault::FlipCiphertext;
    assert_eq!(src.report(&[9; 64], &mut out), Err(ReportError));
}
