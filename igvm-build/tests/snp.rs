//! The SEV-SNP part of the shipped IGVM file: read back with the igvm
//! crate, and its launch digest cross-checked with an independent
//! implementation (sev-snp-measure's GCTX driven by
//! `scripts/snp-measure-ref.py`, which parses the file itself). `make
//! test-snp` runs these with SVSM_PROD_IGVM (the production image) and
//! SVSM_SNP_MEASURE_WHEEL (the sev-snp-measure wheel) set; plain `cargo
//! test` skips them.

use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmPlatformHeader};
use igvm_build::measure::{PageType, snp_digest};
use igvm_build::snp::{SNP_COMPAT_MASK, kvm_refusal};
use igvm_defs::{IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType};
use std::path::{Path, PathBuf};
use std::process::Command;
use svsm_bootdefs::layout::SNP_VMSA_GPA;
use svsm_defs::vmsa::Vmsa;
use zerocopy::{FromBytes, IntoBytes};

mod scratch;
use scratch::Scratch;

fn env_path(name: &str) -> PathBuf {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("{name} must be set (run `make test-snp`)"))
        .into()
}

fn shipped() -> Vec<u8> {
    std::fs::read(env_path("SVSM_PROD_IGVM")).unwrap()
}

fn scratch() -> Scratch {
    Scratch::new("igvm-build-snp")
}

/// (page kinds with counts, digest) from the independent implementation.
fn reference(file: &Path) -> (Vec<(String, usize)>, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/snp-measure-ref.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(env_path("SVSM_SNP_MEASURE_WHEEL"))
        .arg(file)
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "reference failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut kinds = Vec::new();
    let mut digest = String::new();
    for l in text.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            ["pages", k, n] => kinds.push((k.to_string(), n.parse().unwrap())),
            ["digest", d] => digest = d.to_string(),
            _ => panic!("unexpected reference output {l:?}"),
        }
    }
    (kinds, digest)
}

/// `igvm-build measure --platform snp FILE`'s digest.
fn ours(file: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_igvm-build"))
        .args(["measure", "--platform", "snp"])
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("snp launch digest: "))
        .unwrap_or_else(|| panic!("unexpected output {text:?}"))
        .to_string()
}

#[test]
#[ignore = "needs SVSM_PROD_IGVM: run `make test-snp`"]
fn shipped_file_has_both_platforms_and_the_vmsa_last() {
    let bytes = shipped();
    let f = IgvmFile::new_from_binary(&bytes, None).unwrap();
    let platforms: Vec<IgvmPlatformType> = f
        .platforms()
        .iter()
        .map(|p| {
            let IgvmPlatformHeader::SupportedPlatform(sp) = p;
            sp.platform_type
        })
        .collect();
    assert_eq!(
        platforms,
        [IgvmPlatformType::NATIVE, IgvmPlatformType::SEV_SNP]
    );
    let Some(IgvmDirectiveHeader::SnpVpContext {
        gpa,
        compatibility_mask,
        vmsa,
        ..
    }) = f.directives().last()
    else {
        panic!("the last directive is not the SNP VMSA");
    };
    assert_eq!((*gpa, *compatibility_mask), (SNP_VMSA_GPA, SNP_COMPAT_MASK));
    let vmsa = Vmsa::read_from_bytes(vmsa.as_bytes()).unwrap();
    assert_eq!(kvm_refusal(*gpa, &vmsa), None);
    let vp_contexts = f
        .directives()
        .iter()
        .filter(|d| matches!(d, IgvmDirectiveHeader::SnpVpContext { .. }))
        .count();
    assert_eq!(vp_contexts, 1);
}

#[test]
#[ignore = "needs SVSM_PROD_IGVM and SVSM_SNP_MEASURE_WHEEL: run `make test-snp`"]
fn digest_agrees_with_sev_snp_measure() {
    let path = env_path("SVSM_PROD_IGVM");
    let (kinds, want) = reference(&path);
    let got = ours(&path);
    assert_eq!(got, want, "igvm-build measure against sev-snp-measure");
    println!("shipped {}: snp launch digest {got}", path.display());
    let names: Vec<&str> = kinds.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["cpuid", "normal", "secrets", "unmeasured", "vmsa"],
        "{kinds:?}"
    );
    // The records agree with the reference's page counts.
    let (_, records) = snp_digest(&shipped()).unwrap();
    let n = |t| records.iter().filter(|r| r.page_type == t).count();
    for (k, count) in &kinds {
        let t = match k.as_str() {
            "cpuid" => PageType::Cpuid,
            "normal" => PageType::Normal,
            "secrets" => PageType::Secrets,
            "unmeasured" => PageType::Unmeasured,
            _ => PageType::Vmsa,
        };
        assert_eq!(n(t), *count, "{k}");
    }
    // --verbose lists every record, the VMSA last, then the same digest.
    let out = Command::new(env!("CARGO_BIN_EXE_igvm-build"))
        .args(["measure", "--platform", "snp", "--verbose"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), records.len() + 2, "{text}");
    assert!(
        lines[records.len() - 1].contains("gpa 0xfffffffff000 VMSA"),
        "{text}"
    );
    assert_eq!(lines[records.len()], format!("{} records", records.len()));
    assert_eq!(
        lines[records.len() + 1],
        format!("snp launch digest: {got}")
    );
}

/// A page without file data (the loaders add it as a NORMAL page of zeros)
/// and an unmeasured page: the two implementations still agree, and each
/// changes the digest.
#[test]
#[ignore = "needs SVSM_PROD_IGVM and SVSM_SNP_MEASURE_WHEEL: run `make test-snp`"]
fn digest_agrees_on_zero_and_unmeasured_pages() {
    let bytes = shipped();
    let f = IgvmFile::new_from_binary(&bytes, None).unwrap();
    let base = ours(&env_path("SVSM_PROD_IGVM"));
    for (gpa, unmeasured) in [(0x1f_0000u64, false), (0x1f_1000, true)] {
        let mut d = f.directives().to_vec();
        d.insert(
            0,
            IgvmDirectiveHeader::PageData {
                gpa,
                compatibility_mask: SNP_COMPAT_MASK,
                flags: IgvmPageDataFlags::new().with_unmeasured(unmeasured),
                data_type: IgvmPageDataType::NORMAL,
                data: vec![],
            },
        );
        let mut out = Vec::new();
        IgvmFile::new(
            igvm::IgvmRevision::V1,
            f.platforms().to_vec(),
            f.initializations().to_vec(),
            d,
        )
        .unwrap()
        .serialize(&mut out)
        .unwrap();
        let dir = scratch();
        let path = dir.join(format!("extra-{gpa:x}.igvm"));
        std::fs::write(&path, &out).unwrap();
        let (kinds, want) = reference(&path);
        let kind = if unmeasured { "unmeasured" } else { "zero" };
        assert!(kinds.iter().any(|(k, _)| k == kind), "{kinds:?}");
        let got = ours(&path);
        assert_eq!(got, want, "{kind} page");
        assert_ne!(got, base);
    }
}

/// `igvm-build run` on QEMU without SEV refuses the file's SNP part alone
/// (exit 2, QEMU never started) and boots the same file's native part
/// (`tests/boot.rs`, `tests/upstream.rs`).
#[test]
#[ignore = "needs SVSM_PROD_IGVM: run `make test-snp`"]
fn run_refuses_an_snp_only_file() {
    let f = IgvmFile::new_from_binary(&shipped(), None).unwrap();
    let snp_only = |p: &&IgvmPlatformHeader| {
        let IgvmPlatformHeader::SupportedPlatform(sp) = p;
        sp.platform_type == IgvmPlatformType::SEV_SNP
    };
    let platforms: Vec<_> = f.platforms().iter().filter(snp_only).cloned().collect();
    let directives: Vec<_> = f
        .directives()
        .iter()
        .filter(|d| {
            d.compatibility_mask()
                .is_none_or(|m| m & SNP_COMPAT_MASK != 0)
        })
        .cloned()
        .map(|mut d| {
            if let Some(m) = d.compatibility_mask_mut() {
                *m = SNP_COMPAT_MASK;
            }
            d
        })
        .collect();
    let mut out = Vec::new();
    IgvmFile::new(
        igvm::IgvmRevision::V1,
        platforms,
        f.initializations().to_vec(),
        directives,
    )
    .unwrap()
    .serialize(&mut out)
    .unwrap();
    let dir = scratch();
    let path = dir.join("snp-only.igvm");
    std::fs::write(&path, &out).unwrap();
    // Still a measurable SNP file.
    assert!(snp_digest(&out).is_ok());
    let run = Command::new(env!("CARGO_BIN_EXE_igvm-build"))
        .args(["run", "--timeout", "5"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no NATIVE platform header (it supports: SEV_SNP)"),
        "{stderr}"
    );
    assert!(run.stdout.is_empty() || !String::from_utf8_lossy(&run.stdout).contains("SVSM"));
}

/// An ID block for the shipped file: `measure` verifies it, Python's
/// `cryptography` (OpenSSL) verifies its signature independently from the
/// ABI fields, and a block for another digest is refused.
#[test]
#[ignore = "needs SVSM_PROD_IGVM: run `make test-snp`"]
fn id_block_is_signed_and_verified() {
    let key = p384::ecdsa::SigningKey::from_slice(&[0x42; 48]).unwrap();
    let signed = igvm_build::snp::with_id_block(&shipped(), &key).unwrap();
    let dir = scratch();
    let path = dir.join("id-block.igvm");
    std::fs::write(&path, &signed).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_igvm-build"))
        .args(["measure", "--platform", "snp"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("signature verified"), "{text}");
    // The block is not measured: the digest is the unsigned file's.
    assert_eq!(ours(&path), ours(&env_path("SVSM_PROD_IGVM")));
    let f = IgvmFile::new_from_binary(&signed, None).unwrap();
    let n = f.directives().len();
    assert!(matches!(
        f.directives()[n - 1],
        IgvmDirectiveHeader::SnpVpContext { .. }
    ));
    let IgvmDirectiveHeader::SnpIdBlock {
        ld,
        id_key_signature,
        id_public_key,
        ..
    } = &f.directives()[n - 2]
    else {
        panic!("no ID block before the VMSA");
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let script = r#"
import sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
qx, qy, r, s, ld = (bytes.fromhex(a) for a in sys.argv[1:6])
policy = int(sys.argv[6], 16)
le = lambda b: int.from_bytes(b, "little")
block = ld + bytes(32) + (1).to_bytes(4, "little") + bytes(4) + policy.to_bytes(8, "little")
key = ec.EllipticCurvePublicNumbers(le(qx), le(qy), ec.SECP384R1()).public_key()
key.verify(encode_dss_signature(le(r), le(s)), block, ec.ECDSA(hashes.SHA384()))
print("verified")
"#;
    let py = Command::new("python3")
        .args(["-c", script])
        .args([
            hex(&id_public_key.qx),
            hex(&id_public_key.qy),
            hex(&id_key_signature.r_comp),
            hex(&id_key_signature.s_comp),
            hex(ld),
            format!("{:x}", igvm_build::snp::guest_policy()),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&py.stdout).trim(),
        "verified",
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    // A block signed for another digest: measure exits 2, naming it.
    let mut d = f.directives().to_vec();
    if let IgvmDirectiveHeader::SnpIdBlock { ld, .. } = &mut d[n - 2] {
        ld[0] ^= 1;
    }
    let mut bad = Vec::new();
    IgvmFile::new(
        igvm::IgvmRevision::V1,
        f.platforms().to_vec(),
        f.initializations().to_vec(),
        d,
    )
    .unwrap()
    .serialize(&mut bad)
    .unwrap();
    let dir = scratch();
    let path = dir.join("id-block-bad.igvm");
    std::fs::write(&path, &bad).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_igvm-build"))
        .args(["measure", "--platform", "snp"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("does not match"), "{err}");
}
