//! The attestation protocol as a module of the SVSM protocol registry: the
//! request path hands it the call, its registers and copy-only guest
//! memory; it answers with RCX/RDX/R8 and a result code.

use crate::protocol::{AttestError, CallError, GuestMemory, MemError, handle_call};
use crate::{ReportSource, Service};
use alloc::boxed::Box;
use svsm_defs::snp_report::AttestationReport;
use svsm_defs::svsm::protocol::ATTESTATION;
use svsm_protocol::{CallError as ReqError, Protocol, Request, VersionRange};
use zerocopy::FromZeros;

/// A report could not be obtained from the platform: protocol-specific
/// error 0 (0x8000_1000), this SVSM's own code (the specification defines
/// none for it).
pub const ERR_REPORT_UNAVAILABLE: u32 = 0;

struct Mem<'a>(&'a mut dyn svsm_protocol::GuestMemory);

impl GuestMemory for Mem<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.0.read(gpa, buf).map_err(|_| MemError)
    }
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.0.write(gpa, data).map_err(|_| MemError)
    }
}

struct State<S> {
    source: S,
    /// The report buffer, on the heap (1184 bytes: too large for a stack).
    scratch: Box<AttestationReport>,
}

/// Protocol 1, version 1, over a report source and the offered services.
/// Calls are serialized (one report at a time: the SNP sequence numbers
/// need it).
pub struct AttestationProtocol<S> {
    services: &'static [Service<'static>],
    state: spin::Mutex<State<S>>,
}

impl<S: ReportSource + Send> AttestationProtocol<S> {
    pub fn new(services: &'static [Service<'static>], source: S) -> Option<Self> {
        Some(AttestationProtocol {
            services,
            state: spin::Mutex::new(State {
                source,
                scratch: AttestationReport::new_box_zeroed().ok()?,
            }),
        })
    }
}

fn to_request_error(e: CallError) -> ReqError {
    match e {
        CallError::UnsupportedCall => ReqError::UnsupportedCall,
        CallError::UnsupportedProtocol => ReqError::UnsupportedProtocol,
        CallError::InvalidAddress => ReqError::InvalidAddress,
        CallError::InvalidParameter => ReqError::InvalidParameter,
        CallError::Platform => ReqError::Protocol(ERR_REPORT_UNAVAILABLE),
    }
}

impl<S: ReportSource + Send> Protocol for AttestationProtocol<S> {
    fn id(&self) -> u32 {
        ATTESTATION
    }

    fn versions(&self) -> VersionRange {
        VersionRange::new(1, 1)
    }

    fn handle(&self, call: u32, req: &mut Request<'_>) -> Result<(), ReqError> {
        let mut guard = self.state.lock();
        let State { source, scratch } = &mut *guard;
        let rcx = req.regs.rcx;
        let r = handle_call(
            call,
            rcx,
            &mut Mem(&mut *req.mem),
            self.services,
            source,
            scratch,
        );
        let (sizes, result) = match r {
            Ok(s) => (s, Ok(())),
            Err(AttestError::TooSmall(s)) => (s, Err(ReqError::InvalidParameter)),
            Err(AttestError::Call(e)) => return Err(to_request_error(e)),
        };
        req.out.rcx = sizes.manifest;
        req.out.rdx = sizes.certificates;
        req.out.r8 = sizes.report;
        result
    }
}
