//! The attestation request fuzz body: input byte 0 picks the call, bytes
//! 1..0x59 are the request, the rest the nonce page. Guest memory is 64 KiB
//! with the SVSM at 32..48 KiB. Checks: no panic; success only with
//! buffers that fit the sizes returned, inside guest memory; "too small"
//! only when a buffer is smaller than the sizes it returns.

use svsm_attest::guid::VTPM;
use svsm_attest::{
    AttestError, DevelopmentReports, GuestMemory, MemError, SINGLE_SERVICE, Service, handle_call,
    parse_request,
};
use svsm_defs::snp_report::AttestationReport;
use zerocopy::FromZeros;

const RAM: u64 = 0x1_0000;
const SVSM: std::ops::Range<u64> = 0x8000..0xC000;

struct Mem(Vec<u8>);

impl Mem {
    fn range(gpa: u64, len: usize) -> Result<std::ops::Range<usize>, MemError> {
        let end = gpa.checked_add(len as u64).ok_or(MemError)?;
        if end > RAM || (gpa < SVSM.end && end > SVSM.start) {
            return Err(MemError);
        }
        Ok(gpa as usize..end as usize)
    }
}

impl GuestMemory for Mem {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        buf.copy_from_slice(&self.0[Self::range(gpa, buf.len())?]);
        Ok(())
    }
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let r = Self::range(gpa, data.len())?;
        self.0[r].copy_from_slice(data);
        Ok(())
    }
}

pub fn run(data: &[u8]) {
    let Some((&call, rest)) = data.split_first() else {
        return;
    };
    let mut mem = Mem(vec![0; RAM as usize]);
    let (req, nonce) = rest.split_at(rest.len().min(0x58));
    mem.0[0x1000..0x1000 + req.len()].copy_from_slice(req);
    let n = nonce.len().min(0x1000);
    mem.0[0x2000..0x2000 + n].copy_from_slice(&nonce[..n]);
    let services = [Service {
        guid: VTPM,
        data: b"vtpm",
    }];
    let mut dev = DevelopmentReports::new([0; 48], 0, 0);
    let mut scratch = AttestationReport::new_box_zeroed().expect("alloc");
    let call = u32::from(call % 3);
    // SERVICES reads the four entries only; SINGLE_SERVICE all 0x58 bytes.
    let size = if call == SINGLE_SERVICE { 0x58 } else { 0x40 };
    let parsed = parse_request(&mem.0[0x1000..0x1000 + size]).ok();
    match handle_call(call, 0x1000, &mut mem, &services, &mut dev, &mut scratch) {
        Ok(sizes) => {
            let p = parsed.expect("a call succeeded on a request that does not parse");
            assert!(u64::from(p.report.len) >= sizes.report);
            assert!(u64::from(p.manifest.len) >= sizes.manifest);
            assert!(Mem::range(p.report.gpa, sizes.report as usize).is_ok());
        }
        Err(AttestError::TooSmall(sizes)) => {
            let p = parsed.expect("too small reported for a request that does not parse");
            assert!(
                u64::from(p.report.len) < sizes.report
                    || u64::from(p.manifest.len) < sizes.manifest
                    || u64::from(p.certificates.len) < sizes.certificates
            );
        }
        Err(AttestError::Call(_)) => {}
    }
}
