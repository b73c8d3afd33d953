//! `igvm-build measure`: the SEV-SNP launch digest of an IGVM file.
//!
//! The firmware extends the digest once per page the loader adds
//! (SNP_LAUNCH_UPDATE, SNP firmware ABI 56860, PAGE_INFO): LD' =
//! SHA-384(PAGE_INFO with DIGEST_CUR = LD). This module lists those records
//! itself (for `--verbose`) and computes the chain, and requires the igvm
//! crate's own measurement to give the same digest. The conventions are the
//! ones QEMU's loader and KVM follow (docs/snp.md): pages without file data
//! are NORMAL pages of zeros, parameter areas UNMEASURED, the one VMSA at
//! `SNP_VMSA_GPA` after all pages. Files on which loaders would measure
//! differently (shared or 2 MiB SNP pages, a VMSA elsewhere or not last)
//! are refused.

use anyhow::{Context, Result, anyhow, bail, ensure};
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmPlatformHeader};
use igvm_defs::{IgvmPageDataType, IgvmPlatformType};
use sha2::{Digest, Sha384};
use std::collections::HashMap;
use std::path::PathBuf;
use svsm_bootdefs::layout::{PAGE_SIZE, SNP_VMSA_GPA};
use zerocopy::IntoBytes;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeasurePlatform {
    /// AMD SEV-SNP: the launch digest (MEASUREMENT of the attestation report).
    Snp,
}

#[derive(clap::Args, Debug, Clone)]
pub struct MeasureArgs {
    /// The platform whose launch measurement to compute.
    #[arg(long, value_enum)]
    pub platform: MeasurePlatform,
    /// The IGVM file.
    pub igvm: PathBuf,
    /// List every PAGE_INFO record (GPA, page type, contents hash).
    #[arg(long)]
    pub verbose: bool,
}

/// SNP page types (SNP firmware ABI, PAGE_INFO.PAGE_TYPE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageType {
    Normal = 1,
    Vmsa = 2,
    Zero = 3,
    Unmeasured = 4,
    Secrets = 5,
    Cpuid = 6,
}

/// One SNP_LAUNCH_UPDATE the digest records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub gpa: u64,
    pub page_type: PageType,
    /// SHA-384 of the page for NORMAL and VMSA pages, zeros otherwise.
    pub contents: [u8; 48],
}

/// The PAGE_INFO structure (0x70 bytes) with DIGEST_CUR = `digest`.
pub fn page_info(digest: &[u8; 48], r: &Record) -> [u8; 0x70] {
    let mut b = [0u8; 0x70];
    b[..0x30].copy_from_slice(digest);
    b[0x30..0x60].copy_from_slice(&r.contents);
    b[0x60..0x62].copy_from_slice(&0x70u16.to_le_bytes());
    b[0x62] = r.page_type as u8;
    // IMI_PAGE (0x63), the reserved byte and the VMPL1-3 permissions
    // (0x64-0x67) stay zero: a launch, no VMPL permissions granted.
    b[0x68..0x70].copy_from_slice(&r.gpa.to_le_bytes());
    b
}

/// LD_0 = zeros; LD_{i+1} = SHA-384(PAGE_INFO_i with DIGEST_CUR = LD_i).
pub fn chain(records: &[Record]) -> [u8; 48] {
    records
        .iter()
        .fold([0u8; 48], |ld, r| Sha384::digest(page_info(&ld, r)).into())
}

fn page_hash(data: &[u8]) -> Result<[u8; 48]> {
    ensure!(
        data.len() as u64 <= PAGE_SIZE,
        "page data of {} bytes exceeds a 4 KiB page",
        data.len()
    );
    let mut page = vec![0u8; PAGE_SIZE as usize];
    page[..data.len()].copy_from_slice(data);
    Ok(Sha384::digest(&page).into())
}

/// The SNP platform's compatibility mask in `file`.
pub fn snp_mask(file: &IgvmFile) -> Result<u32> {
    file.platforms()
        .iter()
        .find_map(|p| {
            let IgvmPlatformHeader::SupportedPlatform(sp) = p;
            (sp.platform_type == IgvmPlatformType::SEV_SNP).then_some(sp.compatibility_mask)
        })
        .ok_or_else(|| anyhow!("the IGVM file has no SEV_SNP platform header"))
}

/// The records the firmware would see for the SNP part of `file`, in order.
pub fn snp_records(file: &IgvmFile) -> Result<Vec<Record>> {
    let mask = snp_mask(file)?;
    let mut areas: HashMap<u32, u64> = HashMap::new();
    let mut out = Vec::new();
    let mut vmsa_seen = false;
    for d in file.directives() {
        if d.compatibility_mask().is_some_and(|m| m & mask == 0) {
            continue;
        }
        ensure!(
            !vmsa_seen,
            "a directive follows the SNP VMSA; KVM measures the VMSA after all pages"
        );
        let zeros = [0u8; 48];
        match d {
            IgvmDirectiveHeader::PageData {
                gpa,
                flags,
                data_type,
                data,
                ..
            } => {
                ensure!(
                    !flags.shared(),
                    "SNP page at {gpa:#x} is shared: loaders disagree on measuring it"
                );
                ensure!(
                    !flags.is_2mb_page(),
                    "SNP page at {gpa:#x} is a 2 MiB page: loaders disagree on measuring it"
                );
                let (page_type, contents) = match *data_type {
                    IgvmPageDataType::SECRETS => (PageType::Secrets, zeros),
                    IgvmPageDataType::CPUID_DATA | IgvmPageDataType::CPUID_XF => {
                        (PageType::Cpuid, zeros)
                    }
                    IgvmPageDataType::NORMAL if flags.unmeasured() => (PageType::Unmeasured, zeros),
                    IgvmPageDataType::NORMAL => (PageType::Normal, page_hash(data)?),
                    other => bail!("SNP page at {gpa:#x} has unknown data type {other:?}"),
                };
                out.push(Record {
                    gpa: *gpa,
                    page_type,
                    contents,
                });
            }
            IgvmDirectiveHeader::ParameterArea {
                number_of_bytes,
                parameter_area_index,
                ..
            } => {
                areas.insert(*parameter_area_index, *number_of_bytes);
            }
            IgvmDirectiveHeader::ParameterInsert(p) => {
                let len = areas.get(&p.parameter_area_index).ok_or_else(|| {
                    anyhow!(
                        "parameter insert names area {} that no directive declared",
                        p.parameter_area_index
                    )
                })?;
                for off in (0..*len).step_by(PAGE_SIZE as usize) {
                    out.push(Record {
                        gpa: p.gpa + off,
                        page_type: PageType::Unmeasured,
                        contents: zeros,
                    });
                }
            }
            IgvmDirectiveHeader::SnpVpContext {
                gpa,
                vp_index,
                vmsa,
                ..
            } => {
                ensure!(
                    *gpa == SNP_VMSA_GPA && *vp_index == 0,
                    "SNP VMSA for VP {vp_index} at {gpa:#x}: KVM takes one, for VP 0, at {SNP_VMSA_GPA:#x}"
                );
                out.push(Record {
                    gpa: *gpa,
                    page_type: PageType::Vmsa,
                    contents: page_hash(vmsa.as_bytes())?,
                });
                vmsa_seen = true;
            }
            _ => {}
        }
    }
    ensure!(vmsa_seen, "the SNP part of the IGVM file has no VMSA");
    Ok(out)
}

/// The SNP part's ID block, if it has one, checked against the digest and
/// the SNP guest policy (`crate::idblock::verify`).
pub fn check_id_block(bytes: &[u8], ld: &[u8; 48]) -> Result<bool> {
    let file = IgvmFile::new_from_binary(bytes, None).map_err(|e| anyhow!("igvm: {e}"))?;
    let mask = snp_mask(&file)?;
    let Some(block) = file.directives().iter().find(|d| {
        matches!(d, IgvmDirectiveHeader::SnpIdBlock { compatibility_mask, .. } if compatibility_mask & mask != 0)
    }) else {
        return Ok(false);
    };
    let policy = file
        .initializations()
        .iter()
        .find_map(|i| match i {
            igvm::IgvmInitializationHeader::GuestPolicy {
                policy,
                compatibility_mask,
            } if compatibility_mask & mask != 0 => Some(*policy),
            _ => None,
        })
        .ok_or_else(|| anyhow!("the SNP part has an ID block but no guest policy"))?;
    crate::idblock::verify(block, ld, policy)?;
    Ok(true)
}

/// The SNP launch digest of the IGVM file `bytes` and its records; the
/// digest is checked against the igvm crate's measurement.
pub fn snp_digest(bytes: &[u8]) -> Result<([u8; 48], Vec<Record>)> {
    let file =
        IgvmFile::new_from_binary(bytes, None).map_err(|e| anyhow!("invalid IGVM file: {e}"))?;
    let records = snp_records(&file)?;
    let ours = chain(&records);
    let theirs = igvm::measurement::generate_snp_measurement(
        file.initializations(),
        file.directives(),
        snp_mask(&file)?,
    )
    .map_err(|e| anyhow!("igvm measurement: {e}"))?;
    ensure!(
        ours == theirs,
        "internal error: the digest {} differs from the igvm crate's {}",
        hex(&ours),
        hex(&theirs)
    );
    Ok((ours, records))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn measure(a: &MeasureArgs) -> Result<u8> {
    let bytes =
        std::fs::read(&a.igvm).with_context(|| format!("cannot read {}", a.igvm.display()))?;
    let (digest, records) = match a.platform {
        MeasurePlatform::Snp => snp_digest(&bytes)?,
    };
    if a.verbose {
        for (i, r) in records.iter().enumerate() {
            println!(
                "{i:5} gpa {:#014x} {:<10} {}",
                r.gpa,
                format!("{:?}", r.page_type).to_uppercase(),
                hex(&r.contents)
            );
        }
        println!("{} records", records.len());
    }
    if check_id_block(&bytes, &digest)? {
        println!("snp id block: launch digest and policy match, ECDSA P-384 signature verified");
    }
    println!("snp launch digest: {}", hex(&digest));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::tests::{kernel, stage2};
    use crate::build::{assemble, assemble_for};
    use svsm_bootdefs::PlatformKind;

    fn rec(gpa: u64, page_type: PageType, contents: [u8; 48]) -> Record {
        Record {
            gpa,
            page_type,
            contents,
        }
    }

    /// A known-answer vector from sev-snp-measure 0.0.13's GCTX (one page of
    /// each type, in this order), computed once with its Python code.
    #[test]
    fn chain_matches_the_sev_snp_measure_known_answer() {
        let normal: Vec<u8> = (0..4096).map(|i| i as u8).collect();
        let records = [
            rec(0x1000, PageType::Normal, page_hash(&normal).unwrap()),
            rec(0x2000, PageType::Zero, [0; 48]),
            rec(0x3000, PageType::Unmeasured, [0; 48]),
            rec(0x4000, PageType::Secrets, [0; 48]),
            rec(0x5000, PageType::Cpuid, [0; 48]),
            rec(
                SNP_VMSA_GPA,
                PageType::Vmsa,
                page_hash(&[0xaa; 4096]).unwrap(),
            ),
        ];
        assert_eq!(
            hex(&chain(&records)),
            "ee9583d0c0926a3e1b2604d8a75b3defc6d483e421572abdaef5a8dea382aa9c\
             38d8f62965f8ffb4f608567795f3ff4e"
        );
        assert_eq!(chain(&[]), [0; 48], "LD_0 is all zeros");
    }

    #[test]
    fn page_info_layout_follows_the_abi() {
        let r = rec(0x1234_5000, PageType::Cpuid, [0x11; 48]);
        let b = page_info(&[0x22; 48], &r);
        assert_eq!(&b[..0x30], &[0x22; 48]);
        assert_eq!(&b[0x30..0x60], &[0x11; 48]);
        assert_eq!(&b[0x60..0x64], &[0x70, 0, 6, 0]);
        assert_eq!(&b[0x64..0x68], &[0; 4]);
        assert_eq!(
            u64::from_le_bytes(b[0x68..].try_into().unwrap()),
            0x1234_5000
        );
        // A short page is hashed as if zero padded.
        assert_eq!(page_hash(&[]).unwrap(), page_hash(&[0; 4096]).unwrap());
        assert!(page_hash(&[0; 4097]).is_err());
    }

    fn packaged() -> Vec<u8> {
        let n = assemble(&stage2(), &kernel(), "").unwrap();
        let s = assemble_for(&stage2(), &kernel(), "", PlatformKind::Snp).unwrap();
        let mut out = Vec::new();
        crate::snp::to_igvm(&n, &s)
            .unwrap()
            .serialize(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn records_of_a_packaged_file() {
        let bytes = packaged();
        let (digest, records) = snp_digest(&bytes).unwrap();
        assert_eq!(digest, chain(&records));
        let count = |t| records.iter().filter(|r| r.page_type == t).count();
        assert_eq!(count(PageType::Vmsa), 1);
        assert_eq!(count(PageType::Secrets), 1);
        assert_eq!(count(PageType::Cpuid), 1);
        assert_eq!(count(PageType::Unmeasured), 1, "the memory map");
        assert!(count(PageType::Normal) > 10);
        assert_eq!(records.last().unwrap().gpa, SNP_VMSA_GPA);
        // Another command line is another digest (the configuration page
        // is measured).
        let other = crate::configpage::with_cmdline(&bytes, "test=x")
            .unwrap()
            .unwrap();
        assert_ne!(snp_digest(&other).unwrap().0, digest);
    }

    fn rebuilt(bytes: &[u8], edit: impl FnOnce(&mut Vec<IgvmDirectiveHeader>)) -> Vec<u8> {
        let f = IgvmFile::new_from_binary(bytes, None).unwrap();
        let mut d = f.directives().to_vec();
        edit(&mut d);
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
        out
    }

    #[track_caller]
    fn refusal(bytes: &[u8]) -> String {
        match snp_digest(bytes) {
            Ok((d, _)) => panic!("measured as {}", hex(&d)),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn files_loaders_would_measure_differently_are_refused() {
        let bytes = packaged();
        // The VMSA moved before the last page.
        let moved = rebuilt(&bytes, |d| {
            let v = d.pop().unwrap();
            d.insert(0, v);
        });
        let f = IgvmFile::new_from_binary(&moved, None).unwrap();
        assert!(matches!(
            f.directives()[0],
            IgvmDirectiveHeader::SnpVpContext { .. }
        ));
        let e = refusal(&moved);
        assert!(e.contains("follows the SNP VMSA"), "{e}");
        // The VMSA elsewhere.
        let elsewhere = rebuilt(&bytes, |d| {
            if let Some(IgvmDirectiveHeader::SnpVpContext { gpa, .. }) = d.last_mut() {
                *gpa = 0x80_0000;
            }
        });
        let e = refusal(&elsewhere);
        assert!(e.contains("KVM takes one"), "{e}");
        // No VMSA at all.
        let none = rebuilt(&bytes, |d| {
            d.pop();
        });
        let e = refusal(&none);
        assert!(e.contains("no VMSA"), "{e}");
        // A shared SNP page.
        let shared = rebuilt(&bytes, |d| {
            let snp_page = d.iter_mut().find_map(|h| match h {
                IgvmDirectiveHeader::PageData {
                    flags,
                    compatibility_mask,
                    ..
                } if *compatibility_mask & crate::snp::SNP_COMPAT_MASK != 0 => Some(flags),
                _ => None,
            });
            let flags = snp_page.unwrap();
            *flags = flags.with_shared(true);
        });
        let e = refusal(&shared);
        assert!(e.contains("shared"), "{e}");
        // A native-only file has nothing to measure.
        let n = assemble(&stage2(), &kernel(), "").unwrap();
        let mut native = Vec::new();
        crate::build::to_igvm(&n)
            .unwrap()
            .serialize(&mut native)
            .unwrap();
        let e = refusal(&native);
        assert!(e.contains("no SEV_SNP platform"), "{e}");
        // Garbage.
        assert!(snp_digest(b"not an igvm file").is_err());
    }
}
