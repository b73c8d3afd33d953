//! Finding and rewriting the SVSM configuration page (`svsm_bootdefs::config`)
//! in a finished IGVM file: `igvm-build configure` and `run --cmdline` write
//! a copy of the file whose configuration page(s) hold another command line.
//!
//! The page is measured page data, so a variant file has another launch
//! digest on confidential platforms: the command line is part of what is
//! attested, as it should be.

use crate::channel::{ChannelArgs, describe};
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
    /// Its channel configuration, described, or why it is refused.
    pub channel: String,
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
    /// Channel options for the copy; what is not given stays as in the file.
    #[command(flatten)]
    pub channel: ChannelArgs,
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
            channel: config::read_channel(data).map_or_else(|e| e.to_string(), |c| describe(&c)),
        })
        .collect())
}

/// A copy of the IGVM file `bytes` whose configuration pages (one per
/// platform) hold `cmdline`; `Ok(None)` when the file has none.
pub fn with_cmdline(bytes: &[u8], cmdline: &str) -> Result<Option<Vec<u8>>> {
    with_config(bytes, cmdline, &ChannelArgs::default())
}

/// Like [`with_cmdline`], also applying the channel options `channel` to
/// each page's channel configuration.
pub fn with_config(bytes: &[u8], cmdline: &str, channel: &ChannelArgs) -> Result<Option<Vec<u8>>> {
    let file = parse(bytes)?;
    let rev = revision(bytes)?;
    let mut found = 0;
    let mut directives = file.directives().to_vec();
    for d in &mut directives {
        if let IgvmDirectiveHeader::PageData { data, .. } = d
            && config::ConfigHeader::parse(data).is_ok()
        {
            config::write_cmdline(data, cmdline).map_err(|e| anyhow!("{e}"))?;
            if !channel.is_empty() {
                let current = config::read_channel(data).map_err(|e| anyhow!("{e}"))?;
                config::write_channel(data, &channel.resolve(&current)?)
                    .map_err(|e| anyhow!("{e}"))?;
            }
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
                "configuration page at {:#x} (compatibility mask {:#x}): command line {:?}; {}",
                p.gpa, p.compatibility_mask, p.cmdline, p.channel
            );
        }
        return Ok(0);
    };
    let variant = with_config(&bytes, &a.cmdline, &a.channel)
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

#[cfg(test)]
mod tests {
    use crate::build::{assemble, to_igvm};
    use crate::channel::ChannelArgs;
    use svsm_bootdefs::channel::{ChannelConfig, ProtocolEntry};
    use svsm_bootdefs::config;
    use svsm_bootdefs::layout::CONFIG_PAGE_GPA;

    /// `configure` rewrites the channel configuration of a copy, keeping
    /// what is not given and the command line.
    #[test]
    fn configure_rewrites_the_channel() {
        let img = assemble(
            &crate::build::tests::stage2(),
            &crate::build::tests::kernel(),
            "test=smoke",
        )
        .unwrap();
        let mut bytes = Vec::new();
        to_igvm(&img).unwrap().serialize(&mut bytes).unwrap();
        assert_eq!(
            config::read_channel(&img.pages.0[&CONFIG_PAGE_GPA]).unwrap(),
            ChannelConfig::default()
        );
        let args = ChannelArgs {
            protocols: Some("core=1,attest=1".into()),
            guest_vmpl: Some(2),
            pvalidate_budget: None,
        };
        let copy = super::with_config(&bytes, "test=smoke", &args)
            .unwrap()
            .unwrap();
        let pages = super::config_pages(&copy).unwrap();
        assert_eq!(pages[0].cmdline, "test=smoke");
        assert_eq!(
            pages[0].channel,
            "protocols core=1,attest=1, guest VMPL 2, features 0x0, PVALIDATE budget 0"
        );
        let again = ChannelArgs {
            pvalidate_budget: Some(16),
            ..Default::default()
        };
        let copy2 = super::with_config(&copy, "x", &again).unwrap().unwrap();
        let want = ChannelConfig::new(
            2,
            &[ProtocolEntry::new(0, 1, 1), ProtocolEntry::new(1, 1, 1)],
            0,
            16,
        )
        .unwrap();
        assert!(
            super::config_pages(&copy2).unwrap()[0]
                .channel
                .ends_with("budget 16")
        );
        let file = igvm::IgvmFile::new_from_binary(&copy2, None).unwrap();
        let page = file
            .directives()
            .iter()
            .find_map(|d| match d {
                igvm::IgvmDirectiveHeader::PageData { gpa, data, .. }
                    if *gpa == CONFIG_PAGE_GPA =>
                {
                    Some(data.clone())
                }
                _ => None,
            })
            .unwrap();
        assert_eq!(config::read_channel(&page).unwrap(), want);
        let bad = ChannelArgs {
            protocols: Some("vtpm=1".into()),
            ..Default::default()
        };
        let e = super::with_config(&bytes, "", &bad).unwrap_err();
        assert!(
            e.to_string().contains("core protocol (0) is not enabled"),
            "{e}"
        );
    }
}
