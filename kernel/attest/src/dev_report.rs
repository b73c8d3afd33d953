//! The native platform's attestation report: the SNP ATTESTATION_REPORT
//! layout, signed with a P-384 development key that any reader of this
//! source knows. It proves nothing about hardware; it lets the protocol,
//! the guest's parser and a verifier be exercised end to end where no AMD
//! secure processor exists. Marked three ways: SIGNING_KEY = 7 ("none":
//! no AMD key signed it), CHIP_ID spelling [`NOT_ROOTED`], and its own
//! verifying key (never an AMD VCEK/VLEK).

use crate::{ReportError, ReportSource};
use p384::ecdsa::signature::DigestSigner;
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha384};
use svsm_defs::snp_report::{
    AttestationReport, REPORT_DATA_LEN, SIG_ALGO_ECDSA_P384_SHA384, SIGNED_LEN,
};
use zerocopy::{FromZeros, IntoBytes};

/// The CHIP_ID text of every development report.
pub const NOT_ROOTED: &[u8] = b"SVSM DEVELOPMENT REPORT - NOT ROOTED IN HARDWARE";

/// The development key's secret scalar: public by design, so that tests
/// and host tools can check a development report without any secret.
pub const DEVELOPMENT_KEY: [u8; 48] = *b"svsm-native-development-key-not-a-secret-p384...";

/// KEY_INFO bits 4:2, SIGNING_KEY = 7: no AMD key.
const SIGNING_KEY_NONE: u32 = 7 << 2;

/// Report version 3 (the version the platform-family fields appear in).
const REPORT_VERSION: u32 = 3;

/// Builds and signs development reports for one guest.
pub struct DevelopmentReports {
    key: SigningKey,
    /// The guest's launch measurement, VMPL and policy, as the native host
    /// knows them.
    pub measurement: [u8; 48],
    pub vmpl: u32,
    pub policy: u64,
}

impl DevelopmentReports {
    pub fn new(measurement: [u8; 48], vmpl: u32, policy: u64) -> Self {
        let key = SigningKey::from_slice(&DEVELOPMENT_KEY)
            .expect("the development key is a valid scalar");
        DevelopmentReports {
            key,
            measurement,
            vmpl,
            policy,
        }
    }

    /// The key a verifier checks development reports with.
    pub fn verifying_key(&self) -> VerifyingKey {
        *self.key.verifying_key()
    }
}

impl ReportSource for DevelopmentReports {
    fn report(
        &mut self,
        report_data: &[u8; REPORT_DATA_LEN],
        out: &mut AttestationReport,
    ) -> Result<(), ReportError> {
        out.zero();
        out.version = REPORT_VERSION;
        out.policy = self.policy;
        out.vmpl = self.vmpl;
        out.signature_algo = SIG_ALGO_ECDSA_P384_SHA384;
        out.key_info = SIGNING_KEY_NONE;
        out.report_data = *report_data;
        out.measurement = self.measurement;
        // A Genoa-like family/model, so standard parsers accept the layout.
        out.cpuid_fam_id = 0x19;
        out.cpuid_mod_id = 0x11;
        out.cpuid_step = 1;
        out.chip_id[..NOT_ROOTED.len()].copy_from_slice(NOT_ROOTED);
        let digest = Sha384::new_with_prefix(&out.as_bytes()[..SIGNED_LEN]);
        let sig: Signature = self.key.try_sign_digest(digest).map_err(|_| ReportError)?;
        let (r, s) = sig.split_bytes();
        // The report holds R and S little-endian in 72-byte fields.
        for (dst, src) in [(&mut out.signature_r, r), (&mut out.signature_s, s)] {
            dst.iter_mut()
                .zip(src.iter().rev())
                .for_each(|(d, b)| *d = *b);
        }
        Ok(())
    }
}
