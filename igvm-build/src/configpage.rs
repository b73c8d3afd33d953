//! Finding and rewriting the SVSM configuration page (`svsm_bootdefs::config`)
//! in a finished IGVM file: `igvm-build configure` and `run --cmdline` write
//! a copy of the file whose configuration page(s) hold another command line.
//!
//! The page is measured page data, so a variant file has another launch
//! digest on confidential platforms: the command line is part of what is
//! attested, as it should be.

use crate::qemu::plan::precheck;
use anyhow::{Context, Result, anyhow, bail};
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmRevision};
use igvm_defs::{IGVM_FIXED_HEADER, IGVM_FIXED_HEADER_V2, IgvmArchitecture};
use std::path::PathBuf;
use svsm_bootdefs::config;
use zerocopy::FromBytes;

/// One configuration page found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPage {
    pub gpa: u64,
    pub compatibility_mask: u32,
    /// The command line it holds (lossy UTF-8).
    pub cmdline: String,
}

/// Arguments of `igvm-build configure`.
#[derive(clap::Args, Debug, Clone)]
pub struct ConfigureArgs {
    /// The IGVM file (written by `igvm-build build`).
    pub igvm: PathBuf,
    /// Write a copy of the file whose configuration page holds `--cmdline`
    /// (without `-o`: print the configuration pages and their command lines).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// The command line for the copy, e.g. `test=<name>`.
    #[arg(long, default_value = "")]
    pub cmdline: String,
}

fn page_config(d: &IgvmDirectiveHeader) -> Option<(u64, u32, &[u8])> {
    match d {
        IgvmDirectiveHeader::PageData {
            gpa,
            compatibility_mask,
            data,
            ..
        } if config::ConfigHeader::parse(data).is_ok() => {
            Some((*gpa, *compatibility_mask, data.as_slice()))
        }
        _ => None,
    }
}

fn parse(bytes: &[u8]) -> Result<IgvmFile> {
    precheck(bytes)?;
    IgvmFile::new_from_binary(bytes, None).map_err(|e| anyhow!("invalid IGVM file: {e}"))
}

/// The revision to write a copy of `bytes` with (the one it was read with).
fn revision(bytes: &[u8]) -> Result<IgvmRevision> {
    let (fixed, _) =
        IGVM_FIXED_HEADER::read_from_prefix(bytes).map_err(|_| anyhow!("no IGVM fixed header"))?;
    match fixed.format_version {
        1 => Ok(IgvmRevision::V1),
        2 => {
            let (v2, _) = IGVM_FIXED_HEADER_V2::read_from_prefix(bytes)
                .map_err(|_| anyhow!("truncated IGVM version-2 fixed header"))?;
            if v2.architecture != IgvmArchitecture::X64 {
                bail!("IGVM file for architecture {:?}, not x64", v2.architecture);
            }
            Ok(IgvmRevision::V2 {
                arch: igvm::Arch::X64,
                page_size: v2.page_size,
            })
        }
        v => bail!("IGVM format version {v} is not supported"),
    }
}

/// The configuration pages of the file, in directive order.
pub fn config_pages(bytes: &[u8]) -> Result<Vec<ConfigPage>> {
    let file = parse(bytes)?;
    Ok(file
        .directives()
        .iter()
        .filter_map(page_config)
        .map(|(gpa, mask, data)| ConfigPage {
            gpa,
            compatibility_mask: mask,
            cmdline: config::read_cmdline(data)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .unwrap_or_default(),
        })
        .collect())
}

/// A copy of the IGVM file `bytes` whose configuration pages (one per
/// platform) hold `cmdline`; `Ok(None)` when the file has none.
pub fn with_cmdline(bytes: &[u8], cmdline: &str) -> Result<Option<Vec<u8>>> {
    let file = parse(bytes)?;
    let rev = revision(bytes)?;
    let mut found = 0;
    let mut directives = file.directives().to_vec();
    for d in &mut directives {
        if let IgvmDirectiveHeader::PageData { data, .. } = d
            && config::ConfigHeader::parse(data).is_ok()
        {
            config::write_cmdline(data, cmdline).map_err(|e| anyhow!("{e}"))?;
            found += 1;
        }
    }
    if found == 0 {
        return Ok(None);
    }
    let out = IgvmFile::new(
        rev,
        file.platforms().to_vec(),
        file.initializations().to_vec(),
        directives,
    )
    .map_err(|e| anyhow!("igvm: {e}"))?;
    let mut v = Vec::new();
    out.serialize(&mut v)
        .map_err(|e| anyhow!("igvm serialize: {e}"))?;
    Ok(Some(v))
}

/// `igvm-build configure`.
pub fn configure(a: &ConfigureArgs) -> Result<u8> {
    let bytes = std::fs::read(&a.igvm)
        .with_context(|| format!("cannot read IGVM file {}", a.igvm.display()))?;
    let ctx = || a.igvm.display().to_string();
    let Some(out) = &a.output else {
        let pages = config_pages(&bytes).with_context(ctx)?;
        if pages.is_empty() {
            bail!("{}: no SVSM configuration page", a.igvm.display());
        }
        for p in pages {
            println!(
                "configuration page at {:#x} (compatibility mask {:#x}): command line {:?}",
                p.gpa, p.compatibility_mask, p.cmdline
            );
        }
        return Ok(0);
    };
    let variant = with_cmdline(&bytes, &a.cmdline)
        .with_context(ctx)?
        .ok_or_else(|| anyhow!("{}: no SVSM configuration page", a.igvm.display()))?;
    std::fs::write(out, &variant).with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "igvm-build: wrote {} ({} bytes): command line {:?}",
        out.display(),
        variant.len(),
        a.cmdline
    );
    Ok(0)
}
