//! The attestation request the guest points RCX at (SVSM specification
//! 58019, attestation protocol): four `{u64 gpa; u32 len; u8 rsvd[4]}`
//! buffer entries (report, nonce, manifest, certificates), and for
//! SINGLE_SERVICE the service GUID and manifest version.

use crate::CallError;
use crate::guid::Guid;
use svsm_defs::PAGE_SIZE;

/// SERVICES reads the four entries.
pub const SERVICES_REQUEST_SIZE: usize = 0x40;
/// SINGLE_SERVICE adds GUID[16] at 0x40, u32 manifest version at 0x50 and
/// four reserved bytes.
pub const SINGLE_SERVICE_REQUEST_SIZE: usize = 0x58;
/// The largest nonce accepted: one page, not crossing a page boundary.
pub const NONCE_MAX: u32 = PAGE_SIZE as u32;

/// A guest buffer: `len` bytes at guest-physical `gpa`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub gpa: u64,
    pub len: u32,
}

impl Buffer {
    fn end(&self) -> Option<u64> {
        self.gpa.checked_add(u64::from(self.len))
    }
}

/// A parsed, checked request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttestRequest {
    pub report: Buffer,
    pub nonce: Buffer,
    pub manifest: Buffer,
    pub certificates: Buffer,
    /// SINGLE_SERVICE: the service and its manifest version.
    pub service: Option<(Guid, u32)>,
}

fn entry(b: &[u8], at: usize) -> Result<Buffer, CallError> {
    let gpa = u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(b[at + 8..at + 12].try_into().expect("4 bytes"));
    if b[at + 12..at + 16] != [0; 4] {
        return Err(CallError::InvalidParameter);
    }
    Ok(Buffer { gpa, len })
}

/// Parses the request bytes (`SERVICES_REQUEST_SIZE` or
/// `SINGLE_SERVICE_REQUEST_SIZE` of them, as copied from the guest once).
/// Every reserved byte must be zero; no buffer may wrap the address space;
/// the report and manifest buffers must be page-aligned; the nonce must fit
/// in one page.
pub fn parse_request(b: &[u8]) -> Result<AttestRequest, CallError> {
    if b.len() != SERVICES_REQUEST_SIZE && b.len() != SINGLE_SERVICE_REQUEST_SIZE {
        return Err(CallError::InvalidParameter);
    }
    let req = AttestRequest {
        report: entry(b, 0x00)?,
        nonce: entry(b, 0x10)?,
        manifest: entry(b, 0x20)?,
        certificates: entry(b, 0x30)?,
        service: match b.get(0x40..0x58) {
            Some(s) => {
                if s[0x14..0x18] != [0; 4] {
                    return Err(CallError::InvalidParameter);
                }
                let guid = Guid(s[..16].try_into().expect("16 bytes"));
                let version = u32::from_le_bytes(s[16..20].try_into().expect("4 bytes"));
                Some((guid, version))
            }
            None => None,
        },
    };
    check_buffers(&req)?;
    Ok(req)
}

fn check_buffers(req: &AttestRequest) -> Result<(), CallError> {
    let all = [req.report, req.nonce, req.manifest, req.certificates];
    if all.iter().any(|b| b.end().is_none()) {
        return Err(CallError::InvalidParameter);
    }
    if !req.report.gpa.is_multiple_of(PAGE_SIZE) || !req.manifest.gpa.is_multiple_of(PAGE_SIZE) {
        return Err(CallError::InvalidParameter);
    }
    let n = req.nonce;
    let crosses = n.len > 0 && n.gpa / PAGE_SIZE != (n.gpa + u64::from(n.len) - 1) / PAGE_SIZE;
    if n.len > NONCE_MAX || crosses {
        return Err(CallError::InvalidParameter);
    }
    Ok(())
}
