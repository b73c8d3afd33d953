//! The attestation protocol end to end on a fake guest memory, and the
//! development report checked by an independent parser (virtee's `sev`)
//! and a P-384 verification.

use p384::ecdsa::signature::DigestVerifier;
use p384::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha384, Sha512};
use std::collections::BTreeMap;
use svsm_attest::guid::{SERVICES_MANIFEST, VTPM};
use svsm_attest::{
    AttestError, CallError, DevelopmentReports, GuestMemory, Guid, MemError, NOT_ROOTED, SERVICES,
    SINGLE_SERVICE, Service, Sizes, handle_call,
};
use svsm_defs::snp_report::{AttestationReport, REPORT_SIZE};
use zerocopy::FromZeros;

/// Guest RAM below 16 MiB with the SVSM at 8..9 MiB (refused).
#[derive(Default)]
struct Ram(BTreeMap<u64, u8>);

const SVSM: std::ops::Range<u64> = 0x80_0000..0x90_0000;

impl Ram {
    fn ok(gpa: u64, len: usize) -> Result<(), MemError> {
        let end = gpa.checked_add(len as u64).ok_or(MemError)?;
        if end > 0x100_0000 || (gpa < SVSM.end && end > SVSM.start) {
            return Err(MemError);
        }
        Ok(())
    }
    fn bytes(&self, gpa: u64, len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| *self.0.get(&(gpa + i)).unwrap_or(&0))
            .collect()
    }
}

impl GuestMemory for Ram {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        Self::ok(gpa, buf.len())?;
        buf.iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = *self.0.get(&(gpa + i as u64)).unwrap_or(&0));
        Ok(())
    }
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        Self::ok(gpa, data.len())?;
        for (i, b) in data.iter().enumerate() {
            self.0.insert(gpa + i as u64, *b);
        }
        Ok(())
    }
}

const REQ: u64 = 0x1000;
const REPORT: u64 = 0x10_0000;
const MANIFEST: u64 = 0x20_0000;
const NONCE: u64 = 0x3_0010;

fn request(
    report_len: u32,
    nonce: &[u8],
    manifest_len: u32,
    service: Option<(Guid, u32)>,
) -> Vec<u8> {
    let mut b = Vec::new();
    for (gpa, len) in [
        (REPORT, report_len),
        (NONCE, nonce.len() as u32),
        (MANIFEST, manifest_len),
        (0x40_0000, 0),
    ] {
        b.extend_from_slice(&gpa.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
    }
    if let Some((g, v)) = service {
        b.extend_from_slice(&g.0);
        b.extend_from_slice(&v.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
    }
    b
}

struct World {
    ram: Ram,
    dev: DevelopmentReports,
    scratch: Box<AttestationReport>,
}

const VTPM_DATA: &[u8] = b"vTPM EK public key, say";
const OTHER: Guid = Guid::from_text("11112222-3333-4444-5555-666677778888");

fn services() -> [Service<'static>; 2] {
    [
        Service {
            guid: VTPM,
            data: VTPM_DATA,
        },
        Service {
            guid: OTHER,
            data: b"other service data",
        },
    ]
}

impl World {
    fn new(nonce: &[u8], req: &[u8]) -> Self {
        let mut ram = Ram::default();
        ram.write(NONCE, nonce).unwrap();
        ram.write(REQ, req).unwrap();
        World {
            ram,
            dev: DevelopmentReports::new([0xAB; 48], 1, 0x3_0000),
            scratch: AttestationReport::new_box_zeroed().unwrap(),
        }
    }
    fn call(&mut self, call: u32, rcx: u64) -> Result<Sizes, AttestError> {
        handle_call(
            call,
            rcx,
            &mut self.ram,
            &services(),
            &mut self.dev,
            &mut self.scratch,
        )
    }
}

/// Checks a report with the `sev` crate's parser and the development key.
fn verify(
    bytes: &[u8],
    key: &VerifyingKey,
) -> Result<sev::firmware::guest::AttestationReport, String> {
    let parsed =
        sev::firmware::guest::AttestationReport::from_bytes(bytes).map_err(|e| e.to_string())?;
    let mut r = [0u8; 48];
    let mut s = [0u8; 48];
    r.iter_mut()
        .zip(bytes[0x2A0..0x2D0].iter().rev())
        .for_each(|(d, b)| *d = *b);
    s.iter_mut()
        .zip(bytes[0x2E8..0x318].iter().rev())
        .for_each(|(d, b)| *d = *b);
    let sig = Signature::from_scalars(r, s).map_err(|e| e.to_string())?;
    key.verify_digest(Sha384::new_with_prefix(&bytes[..0x2A0]), &sig)
        .map_err(|e| e.to_string())?;
    Ok(parsed)
}

#[test]
fn guids_are_in_wire_order() {
    // The vTPM GUID's wire bytes as Linux and COCONUT-SVSM send them.
    assert_eq!(
        VTPM.0,
        [
            0xeb, 0xf1, 0x76, 0xc4, 0x23, 0x01, 0xa5, 0x45, 0x96, 0x41, 0xb4, 0xe7, 0xdd, 0xe5,
            0xbf, 0xe3
        ]
    );
    assert_eq!(&SERVICES_MANIFEST.0[..4], &[0xbb, 0x9e, 0x84, 0x63]);
}

#[test]
fn services_round_trip_with_an_independent_check() {
    let nonce = b"a fresh nonce from the relying party";
    let mut w = World::new(nonce, &request(0x1000, nonce, 0x1000, None));
    let sizes = w.call(SERVICES, REQ).unwrap();
    let manifest_len = 24 + 2 * 24 + VTPM_DATA.len() + 18;
    assert_eq!(
        sizes,
        Sizes {
            manifest: manifest_len as u64,
            certificates: 0,
            report: REPORT_SIZE as u64
        }
    );

    // The manifest the guest received.
    let m = w.ram.bytes(MANIFEST, manifest_len);
    assert_eq!(&m[..16], &SERVICES_MANIFEST.0);
    assert_eq!(
        u32::from_le_bytes(m[16..20].try_into().unwrap()) as usize,
        manifest_len
    );
    assert_eq!(u32::from_le_bytes(m[20..24].try_into().unwrap()), 2);
    assert_eq!(&m[24..40], &VTPM.0);
    let off = u32::from_le_bytes(m[40..44].try_into().unwrap()) as usize;
    let len = u32::from_le_bytes(m[44..48].try_into().unwrap()) as usize;
    assert_eq!(&m[off..off + len], VTPM_DATA);

    // The report: parsed by `sev`, signed by the development key, and
    // REPORT_DATA = SHA-512(nonce || manifest) computed here on its own.
    let report = w.ram.bytes(REPORT, REPORT_SIZE);
    let parsed = verify(&report, &w.dev.verifying_key()).expect("valid development report");
    let mut h = Sha512::new();
    h.update(nonce);
    h.update(&m);
    assert_eq!(parsed.report_data.as_slice(), &h.finalize()[..]);
    assert_eq!(parsed.vmpl, 1);
    assert_eq!(parsed.measurement.as_slice(), &[0xAB; 48]);
    assert_eq!(&parsed.chip_id[..NOT_ROOTED.len()], NOT_ROOTED);
    eprintln!(
        "development report: version {}, vmpl {}, report_data {:02x?}.., chip_id {:?}",
        parsed.version,
        parsed.vmpl,
        &parsed.report_data[..8],
        std::str::from_utf8(&parsed.chip_id[..NOT_ROOTED.len()]).unwrap()
    );

    // Any change to the signed part breaks the signature.
    let mut tampered = report.clone();
    tampered[0x50] ^= 1;
    assert!(verify(&tampered, &w.dev.verifying_key()).is_err());
}

#[test]
fn single_service_manifest_and_version() {
    let nonce = [7u8; 64];
    let mut w = World::new(&nonce, &request(0x1000, &nonce, 0x1000, Some((VTPM, 0))));
    let sizes = w.call(SINGLE_SERVICE, REQ).unwrap();
    assert_eq!(sizes.manifest as usize, 48 + VTPM_DATA.len());
    let m = w.ram.bytes(MANIFEST, sizes.manifest as usize);
    assert_eq!(u32::from_le_bytes(m[20..24].try_into().unwrap()), 1);
    assert_eq!(&m[48..], VTPM_DATA);
    let parsed = verify(&w.ram.bytes(REPORT, REPORT_SIZE), &w.dev.verifying_key()).unwrap();
    let mut h = Sha512::new();
    h.update(nonce);
    h.update(&m);
    assert_eq!(parsed.report_data.as_slice(), &h.finalize()[..]);

    let mut w = World::new(&nonce, &request(0x1000, &nonce, 0x1000, Some((VTPM, 1))));
    assert_eq!(
        w.call(SINGLE_SERVICE, REQ),
        Err(AttestError::Call(CallError::InvalidParameter))
    );
    let unknown = Guid::from_text("00000000-0000-0000-0000-000000000001");
    let mut w = World::new(&nonce, &request(0x1000, &nonce, 0x1000, Some((unknown, 0))));
    assert_eq!(
        w.call(SINGLE_SERVICE, REQ),
        Err(AttestError::Call(CallError::UnsupportedProtocol))
    );
}

#[test]
fn buffers_too_small_return_the_needed_sizes_and_write_nothing() {
    let nonce = b"n";
    let mut w = World::new(nonce, &request(0x100, nonce, 0x10, None));
    let want = Sizes {
        manifest: 24 + 48 + 41,
        certificates: 0,
        report: REPORT_SIZE as u64,
    };
    assert_eq!(w.call(SERVICES, REQ), Err(AttestError::TooSmall(want)));
    assert!(w.ram.bytes(REPORT, 0x100).iter().all(|b| *b == 0));
    assert!(w.ram.bytes(MANIFEST, 0x10).iter().all(|b| *b == 0));
    // Exactly large enough succeeds.
    let mut w = World::new(
        nonce,
        &request(REPORT_SIZE as u32, nonce, want.manifest as u32, None),
    );
    assert_eq!(w.call(SERVICES, REQ), Ok(want));
}

#[test]
fn malformed_requests() {
    let nonce = b"nonce";
    let good = request(0x1000, nonce, 0x1000, Some((VTPM, 0)));
    let cases: Vec<(&str, Vec<u8>, u64, u32, AttestError)> = vec![
        (
            "reserved byte in an entry",
            {
                let mut b = good.clone();
                b[0x1C] = 1;
                b
            },
            REQ,
            SINGLE_SERVICE,
            AttestError::Call(CallError::InvalidParameter),
        ),
        (
            "reserved byte after the version",
            {
                let mut b = good.clone();
                b[0x57] = 1;
                b
            },
            REQ,
            SINGLE_SERVICE,
            AttestError::Call(CallError::InvalidParameter),
        ),
        (
            "unaligned report buffer",
            {
                let mut b = good.clone();
                b[0] = 8;
                b
            },
            REQ,
            SINGLE_SERVICE,
            AttestError::Call(CallError::InvalidParameter),
        ),
        (
            "unaligned manifest buffer",
            {
                let mut b = good.clone();
                b[0x20] = 8;
                b
            },
            REQ,
            SINGLE_SERVICE,
            AttestError::Call(CallError::InvalidParameter),
        ),
        (
            "wrapping report buffer",
            {
                let mut b = good.clone();
                b[0..8].copy_from_slice(&0xFFFF_FFFF_FFFF_F000u64.to_le_bytes());
                b
            },
            REQ,
            SINGLE_SERVICE,
            AttestError::Call(CallError::InvalidParameter),
        ),
        (
            "nonce crossing a page",
            {
                let mut b = good.clone();
                b[0x10..0x18].copy_from_slice(&0x3_0FFEu64.to_le_bytes());
                b
            },
            REQ,
            SINGLE_SERVICE,
            AttestError::Call(CallError::InvalidParameter),
        ),
        (
            "nonce longer than a page",
            {
                let mut b = good.clone();
                b[0x10..0x18].copy_from_slice(&0x3_0000u64.to_le_bytes());
                b[0x18..0x1C].copy_from_slice(&0x1001u32.to_le_bytes());
                b
            },
            REQ,
            SINGLE_SERVICE,
            AttestError::Call(CallError::InvalidParameter),
        ),
        (
            "report buffer in the SVSM",
            {
                let mut b = good.clone();
                b[0..8].copy_from_slice(&SVSM.start.to_le_bytes());
                b
            },
            REQ,
            SINGLE_SERVICE,
            AttestError::Call(CallError::InvalidAddress),
        ),
        (
            "nonce in the SVSM",
            {
                let mut b = good.clone();
                b[0x10..0x18].copy_from_slice(&(SVSM.start + 0x10).to_le_bytes());
                b
            },
            REQ,
            SINGLE_SERVICE,
            AttestError::Call(CallError::InvalidAddress),
        ),
        (
            "request crossing a page",
            good.clone(),
            0xFC0,
            SINGLE_SERVICE,
            AttestError::Call(CallError::InvalidParameter),
        ),
        (
            "request in the SVSM",
            good.clone(),
            SVSM.start,
            SINGLE_SERVICE,
            AttestError::Call(CallError::InvalidAddress),
        ),
        (
            "unknown call",
            good.clone(),
            REQ,
            2,
            AttestError::Call(CallError::UnsupportedCall),
        ),
    ];
    for (what, req, rcx, call, want) in cases {
        let mut w = World::new(nonce, &req);
        if rcx != REQ && rcx < SVSM.start {
            w.ram.write(rcx, &req).unwrap();
        }
        assert_eq!(w.call(call, rcx), Err(want), "{what}");
        assert!(
            w.ram.bytes(REPORT, 64).iter().all(|b| *b == 0),
            "{what}: nothing written"
        );
    }
}

#[test]
fn fuzz_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/request");
    svsm_testkit::replay_corpus(&dir, fuzz_body::run);
}

#[path = "../fuzz/src/body.rs"]
mod fuzz_body;
