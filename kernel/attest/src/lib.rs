//! The SVSM attestation protocol (protocol 1) as pure logic: the request
//! layout, the services manifest, REPORT_DATA = SHA-512(nonce || manifest),
//! the sizes returned in RCX (manifest), RDX (certificates) and R8
//! (report) with the "buffer too small" answer, and the native platform's
//! development report. `no_std`, no `unsafe`, no allocation: guest memory
//! comes through a copy-only trait, the report through [`ReportSource`]
//! (the SNP platform: an MSG_REPORT_REQ guest message; native:
//! [`DevelopmentReports`]), the report buffer from the caller.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod dev_report;
pub mod guid;
pub mod manifest;
mod protocol;
mod registry;
pub mod request;
pub mod snp_msg;

pub use dev_report::{DEVELOPMENT_KEY, DevelopmentReports, NOT_ROOTED};
pub use guid::Guid;
pub use manifest::{Manifest, Service};
pub use protocol::{
    AttestError, CallError, GuestMemory, MemError, SERVICES, SINGLE_SERVICE, Sizes, handle_call,
    report_data,
};
pub use registry::{AttestationProtocol, ERR_REPORT_UNAVAILABLE};
pub use request::{AttestRequest, Buffer, parse_request};

use svsm_defs::snp_report::{AttestationReport, REPORT_DATA_LEN};

/// The platform could not produce a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportError;

/// Where reports come from: fills `out` with a signed report carrying
/// `report_data`.
pub trait ReportSource {
    fn report(
        &mut self,
        report_data: &[u8; REPORT_DATA_LEN],
        out: &mut AttestationReport,
    ) -> Result<(), ReportError>;

    /// The size of the certificate chain the platform returns (none
    /// today: RDX = 0).
    fn certificates_len(&self) -> u32 {
        0
    }
}
