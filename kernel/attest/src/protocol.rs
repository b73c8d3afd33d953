//! The two calls: SERVICES (0) and SINGLE_SERVICE (1).

use crate::manifest::{Manifest, Service};
use crate::request::{
    AttestRequest, Buffer, SERVICES_REQUEST_SIZE, SINGLE_SERVICE_REQUEST_SIZE, parse_request,
};
use crate::{ReportSource, guid::Guid};
use sha2::{Digest, Sha512};
use svsm_defs::PAGE_SIZE;
use svsm_defs::snp_report::{AttestationReport, REPORT_DATA_LEN, REPORT_SIZE};
use zerocopy::IntoBytes;

pub const SERVICES: u32 = 0;
pub const SINGLE_SERVICE: u32 = 1;

/// The only manifest version defined.
const MANIFEST_VERSION: u32 = 0;

/// A failed call, named as the SVSM result codes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    UnsupportedCall,
    /// SINGLE_SERVICE for a GUID this SVSM does not offer.
    UnsupportedProtocol,
    InvalidAddress,
    InvalidParameter,
    /// The platform failed to produce a report.
    Platform,
}

/// The outputs: RCX = manifest size, RDX = certificates size, R8 = report
/// size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    pub manifest: u64,
    pub certificates: u64,
    pub report: u64,
}

/// How a call fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttestError {
    Call(CallError),
    /// A buffer is too small: the call returns INVALID_PARAMETER with the
    /// sizes it needs in RCX, RDX and R8, so the guest can retry.
    TooSmall(Sizes),
}

impl From<CallError> for AttestError {
    fn from(e: CallError) -> Self {
        AttestError::Call(e)
    }
}

/// An access outside guest memory (the SVSM's own memory included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemError;

/// Guest-physical memory, by copy only.
pub trait GuestMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError>;
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError>;
}

fn mem<T>(r: Result<T, MemError>) -> Result<T, CallError> {
    r.map_err(|_| CallError::InvalidAddress)
}

/// REPORT_DATA = SHA-512(nonce || manifest). The nonce is streamed from
/// guest memory in small pieces (read once; no guest-sized buffer).
pub fn report_data(
    m: &(impl GuestMemory + ?Sized),
    nonce: Buffer,
    manifest: &Manifest<'_>,
) -> Result<[u8; REPORT_DATA_LEN], CallError> {
    let mut h = Sha512::new();
    let mut chunk = [0u8; 128];
    let mut done = 0u64;
    while done < u64::from(nonce.len) {
        let n = (u64::from(nonce.len) - done).min(chunk.len() as u64) as usize;
        mem(m.read(nonce.gpa + done, &mut chunk[..n]))?;
        h.update(&chunk[..n]);
        done += n as u64;
    }
    manifest.for_each_piece(|p| h.update(p));
    Ok(h.finalize().into())
}

/// Handles attestation call `call` with RCX = `rcx` (the request's GPA).
/// `services` are the services this SVSM offers; `source` produces the
/// report into `scratch` (a caller-owned buffer: the report is too large
/// for a kernel stack). On success the sizes go to RCX, RDX and R8.
pub fn handle_call(
    call: u32,
    rcx: u64,
    m: &mut (impl GuestMemory + ?Sized),
    services: &[Service<'_>],
    source: &mut (impl ReportSource + ?Sized),
    scratch: &mut AttestationReport,
) -> Result<Sizes, AttestError> {
    let req = read_request(call, rcx, m)?;
    let manifest = match req.service {
        None => Manifest::all(services),
        Some((_, v)) if v != MANIFEST_VERSION => return Err(CallError::InvalidParameter.into()),
        Some((guid, _)) => single(services, &guid)?,
    };
    let sizes = Sizes {
        manifest: manifest.len() as u64,
        certificates: u64::from(source.certificates_len()),
        report: REPORT_SIZE as u64,
    };
    if u64::from(req.report.len) < sizes.report
        || u64::from(req.manifest.len) < sizes.manifest
        || u64::from(req.certificates.len) < sizes.certificates
    {
        return Err(AttestError::TooSmall(sizes));
    }
    let data = report_data(m, req.nonce, &manifest)?;
    source
        .report(&data, scratch)
        .map_err(|_| CallError::Platform)?;
    mem(m.write(req.report.gpa, scratch.as_bytes()))?;
    write_manifest(m, req.manifest.gpa, &manifest)?;
    Ok(sizes)
}

fn single<'a>(services: &'a [Service<'a>], guid: &Guid) -> Result<Manifest<'a>, CallError> {
    Manifest::single(services, guid).ok_or(CallError::UnsupportedProtocol)
}

/// Copies the request in once. It must not cross a page.
fn read_request(
    call: u32,
    rcx: u64,
    m: &(impl GuestMemory + ?Sized),
) -> Result<AttestRequest, CallError> {
    let size = match call {
        SERVICES => SERVICES_REQUEST_SIZE,
        SINGLE_SERVICE => SINGLE_SERVICE_REQUEST_SIZE,
        _ => return Err(CallError::UnsupportedCall),
    };
    let last = rcx
        .checked_add(size as u64 - 1)
        .ok_or(CallError::InvalidParameter)?;
    if rcx / PAGE_SIZE != last / PAGE_SIZE {
        return Err(CallError::InvalidParameter);
    }
    let mut bytes = [0u8; SINGLE_SERVICE_REQUEST_SIZE];
    mem(m.read(rcx, &mut bytes[..size]))?;
    parse_request(&bytes[..size])
}

fn write_manifest(
    m: &mut (impl GuestMemory + ?Sized),
    gpa: u64,
    manifest: &Manifest<'_>,
) -> Result<(), CallError> {
    let mut at = gpa;
    let mut result = Ok(());
    manifest.for_each_piece(|p| {
        if result.is_ok() {
            result = mem(m.write(at, p));
            at += p.len() as u64;
        }
    });
    result
}
