//! Attestation reports from the SEV-SNP secure processor: the MSG_REPORT_REQ
//! guest message, encrypted with AES-256-GCM under a VMPCK (VMPCK0 for the
//! SVSM), with the message sequence numbers that keep each IV unique.
//!
//! The transport (copying the message to the shared pages, the GHCB
//! SNP_GUEST_REQUEST exit) is the platform's: [`GuestRequestTransport`].
//! Sequence numbers: a request uses `last + 1`, its response must carry
//! `last + 2`, and `last` advances by 2 after every exchange. Any failure
//! after a request was sent (transport, authentication, sequence, format)
//! retires the key: the sequence number can no longer be known to be
//! unused, and reusing an AES-GCM IV would give the key away.

use crate::{ReportError, ReportSource};
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use svsm_defs::snp_msg::{
    AAD_OFFSET, AEAD_AES_256_GCM, AUTHTAG_LEN, HEADER_SIZE, HEADER_VERSION, MSG_REPORT_REQ,
    MSG_REPORT_RSP, MSG_SIZE, MSG_VERSION, MsgHeader, ReportReq, ReportRsp,
};
use svsm_defs::snp_report::{AttestationReport, REPORT_DATA_LEN, REPORT_SIZE};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// Why a guest-message exchange failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgError {
    /// The key was retired (by an earlier failure) or the sequence numbers
    /// are used up.
    KeyRetired,
    Transport,
    /// The response's header is not the answer to this request (type,
    /// version, sequence number, VMPCK, sizes).
    BadResponse,
    /// The response failed authentication.
    Auth,
    /// The firmware refused the request (its status code).
    Firmware(u32),
}

/// Sends a request page and receives the response page (the GHCB
/// SNP_GUEST_REQUEST exit, through shared pages).
pub trait GuestRequestTransport {
    fn exchange(&mut self, request: &[u8], response: &mut [u8]) -> Result<(), MsgError>;
}

/// One VMPCK and its sequence numbers.
pub struct GuestMessenger {
    cipher: Option<Aes256Gcm>,
    vmpck_id: u8,
    /// The last sequence number used (0: none yet).
    last_seqno: u64,
}

fn iv(seqno: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut iv = [0u8; 12];
    iv[..8].copy_from_slice(&seqno.to_le_bytes());
    iv.into()
}

impl GuestMessenger {
    /// `vmpck` from the secrets page (copied, never referenced), `vmpck_id`
    /// its index, `last_seqno` the last sequence number used with it.
    pub fn new(vmpck: &[u8; 32], vmpck_id: u8, last_seqno: u64) -> Self {
        GuestMessenger {
            cipher: Some(Aes256Gcm::new(vmpck.into())),
            vmpck_id,
            last_seqno,
        }
    }

    pub fn last_seqno(&self) -> u64 {
        self.last_seqno
    }

    pub fn is_retired(&self) -> bool {
        self.cipher.is_none()
    }

    /// Encrypts `payload` as message `msg_type` into `page`; returns the
    /// sequence number used and the message length.
    fn seal(
        &self,
        msg_type: u8,
        payload: &[u8],
        page: &mut [u8; MSG_SIZE],
    ) -> Result<(u64, usize), MsgError> {
        let cipher = self.cipher.as_ref().ok_or(MsgError::KeyRetired)?;
        let seqno = self
            .last_seqno
            .checked_add(1)
            .filter(|s| *s < u64::MAX)
            .ok_or(MsgError::KeyRetired)?;
        page.fill(0);
        let (hdr_bytes, body) = page.split_at_mut(HEADER_SIZE);
        let hdr = MsgHeader::mut_from_bytes(hdr_bytes).expect("header size");
        hdr.msg_seqno = seqno;
        hdr.algo = AEAD_AES_256_GCM;
        hdr.hdr_version = HEADER_VERSION;
        hdr.hdr_size = HEADER_SIZE as u16;
        hdr.msg_type = msg_type;
        hdr.msg_version = MSG_VERSION;
        hdr.msg_size = payload.len() as u16;
        hdr.msg_vmpck = self.vmpck_id;
        let body = &mut body[..payload.len()];
        body.copy_from_slice(payload);
        let tag = cipher
            .encrypt_in_place_detached(&iv(seqno), &hdr_bytes[AAD_OFFSET..], body)
            .map_err(|_| MsgError::Transport)?;
        page[..AUTHTAG_LEN].copy_from_slice(&tag);
        Ok((seqno, HEADER_SIZE + payload.len()))
    }

    /// Checks that `page` answers request `seqno` with `msg_type`, and
    /// decrypts its payload in place; returns the payload.
    fn open<'p>(
        &self,
        seqno: u64,
        msg_type: u8,
        page: &'p mut [u8; MSG_SIZE],
    ) -> Result<&'p [u8], MsgError> {
        let cipher = self.cipher.as_ref().ok_or(MsgError::KeyRetired)?;
        let (hdr_bytes, body) = page.split_at_mut(HEADER_SIZE);
        let hdr = MsgHeader::ref_from_bytes(hdr_bytes).expect("header size");
        let size = usize::from(hdr.msg_size);
        let expected = hdr.msg_seqno == seqno + 1
            && hdr.algo == AEAD_AES_256_GCM
            && hdr.hdr_version == HEADER_VERSION
            && usize::from(hdr.hdr_size) == HEADER_SIZE
            && hdr.msg_type == msg_type
            && hdr.msg_version == MSG_VERSION
            && hdr.msg_vmpck == self.vmpck_id
            && size <= body.len();
        if !expected {
            return Err(MsgError::BadResponse);
        }
        let tag_bytes: [u8; AUTHTAG_LEN] = hdr.authtag[..AUTHTAG_LEN].try_into().expect("tag size");
        let tag = Tag::from(tag_bytes);
        let body = &mut body[..size];
        cipher
            .decrypt_in_place_detached(&iv(seqno + 1), &hdr_bytes[AAD_OFFSET..], body, &tag)
            .map_err(|_| MsgError::Auth)?;
        Ok(body)
    }

    /// MSG_REPORT_REQ for `report_data` at `vmpl`: the report goes to
    /// `out`. `request` and `response` are page buffers the caller owns
    /// (not on the stack).
    pub fn get_report(
        &mut self,
        transport: &mut (impl GuestRequestTransport + ?Sized),
        report_data: &[u8; REPORT_DATA_LEN],
        vmpl: u32,
        request: &mut [u8; MSG_SIZE],
        response: &mut [u8; MSG_SIZE],
        out: &mut AttestationReport,
    ) -> Result<(), MsgError> {
        let mut req = ReportReq::new_zeroed();
        req.report_data = *report_data;
        req.vmpl = vmpl;
        let (seqno, len) = self.seal(MSG_REPORT_REQ, req.as_bytes(), request)?;
        // From here on the sequence number is spent, whatever happens.
        let r = transport
            .exchange(&request[..len], response)
            .and_then(|()| self.open(seqno, MSG_REPORT_RSP, response).map(|p| p.len()));
        match r {
            Ok(n) => {
                self.last_seqno = seqno + 1;
                parse_report_rsp(&response[HEADER_SIZE..HEADER_SIZE + n], out)
            }
            Err(e) => {
                self.cipher = None;
                Err(e)
            }
        }
    }
}

fn parse_report_rsp(payload: &[u8], out: &mut AttestationReport) -> Result<(), MsgError> {
    let (rsp, _) = ReportRsp::ref_from_prefix(payload).map_err(|_| MsgError::BadResponse)?;
    if rsp.status != 0 {
        return Err(MsgError::Firmware(rsp.status));
    }
    if rsp.report_size as usize != REPORT_SIZE {
        return Err(MsgError::BadResponse);
    }
    *out = rsp.report.clone();
    Ok(())
}

/// The SNP platform's [`ReportSource`]: reports from the secure processor.
pub struct SnpReports<'a, T: GuestRequestTransport + ?Sized> {
    pub messenger: GuestMessenger,
    pub transport: &'a mut T,
    /// The VMPL whose report is requested (the guest's).
    pub vmpl: u32,
    pub request: &'a mut [u8; MSG_SIZE],
    pub response: &'a mut [u8; MSG_SIZE],
}

impl<T: GuestRequestTransport + ?Sized> ReportSource for SnpReports<'_, T> {
    fn report(
        &mut self,
        report_data: &[u8; REPORT_DATA_LEN],
        out: &mut AttestationReport,
    ) -> Result<(), ReportError> {
        self.messenger
            .get_report(
                self.transport,
                report_data,
                self.vmpl,
                self.request,
                self.response,
                out,
            )
            .map_err(|_| ReportError)
    }
}
