//! The `--protocols`, `--guest-vmpl` and `--pvalidate-budget` options of
//! `build` and `configure`: the SVSM<->VMM channel configuration written
//! into the measured configuration page (`svsm_bootdefs::channel`).

use anyhow::{Result, anyhow, bail};
use svsm_bootdefs::channel::{ChannelConfig, PROTOCOL_NAMES, ProtocolEntry};

/// The channel options. `build` starts from the default configuration
/// (core protocol version 1, guest at VMPL 1, no PVALIDATE budget);
/// `configure` from the file's, changing only what is given.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ChannelArgs {
    /// Protocols the SVSM offers the guest, comma-separated
    /// `name=version` or `name=min-max` (names: core, attest, vtpm, apic,
    /// or a protocol number), e.g. `core=1,attest=1`. The core protocol must
    /// be listed.
    #[arg(long)]
    pub protocols: Option<String>,
    /// The VMPL the guest runs at (1-3).
    #[arg(long)]
    pub guest_vmpl: Option<u8>,
    /// PVALIDATE entries handled per call before it returns INCOMPLETE
    /// (0: no limit).
    #[arg(long)]
    pub pvalidate_budget: Option<u16>,
}

impl ChannelArgs {
    /// `base` with the given options applied, checked.
    pub fn resolve(&self, base: &ChannelConfig) -> Result<ChannelConfig> {
        let protocols = match &self.protocols {
            Some(s) => parse_protocols(s)?,
            None => base.protocols().to_vec(),
        };
        ChannelConfig::new(
            self.guest_vmpl.unwrap_or(base.guest_vmpl()),
            &protocols,
            base.features(),
            self.pvalidate_budget.unwrap_or(base.pvalidate_budget()),
        )
        .map_err(|e| anyhow!("{e}"))
    }

    pub fn is_empty(&self) -> bool {
        self.protocols.is_none() && self.guest_vmpl.is_none() && self.pvalidate_budget.is_none()
    }
}

/// Parses `core=1,attest=1-2`.
pub fn parse_protocols(s: &str) -> Result<Vec<ProtocolEntry>> {
    s.split(',')
        .map(|item| {
            let (name, versions) = item
                .split_once('=')
                .ok_or_else(|| anyhow!("--protocols: `{item}` is not name=version"))?;
            let id = protocol_id(name.trim())?;
            let (min, max) = match versions.split_once('-') {
                Some((a, b)) => (version(a, item)?, version(b, item)?),
                None => (version(versions, item)?, version(versions, item)?),
            };
            Ok(ProtocolEntry::new(id, min, max))
        })
        .collect()
}

fn protocol_id(name: &str) -> Result<u32> {
    if let Some(&(_, id)) = PROTOCOL_NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(id);
    }
    name.parse().map_err(|_| {
        let known: Vec<&str> = PROTOCOL_NAMES.iter().map(|(n, _)| *n).collect();
        anyhow!(
            "--protocols: unknown protocol `{name}` (known: {}, or a number)",
            known.join(", ")
        )
    })
}

fn version(v: &str, item: &str) -> Result<u32> {
    match v.trim().parse() {
        Ok(0) | Err(_) => bail!("--protocols: `{item}`: version `{v}` is not a number from 1"),
        Ok(n) => Ok(n),
    }
}

/// A one-line description for `configure`'s listing.
pub fn describe(c: &ChannelConfig) -> String {
    let protocols: Vec<String> = c
        .protocols()
        .iter()
        .map(|p| {
            let name = PROTOCOL_NAMES
                .iter()
                .find(|(_, id)| *id == p.id)
                .map_or_else(|| p.id.to_string(), |(n, _)| (*n).to_string());
            if p.min_version == p.max_version {
                format!("{name}={}", p.min_version)
            } else {
                format!("{name}={}-{}", p.min_version, p.max_version)
            }
        })
        .collect();
    format!(
        "protocols {}, guest VMPL {}, features {:#x}, PVALIDATE budget {}",
        protocols.join(","),
        c.guest_vmpl(),
        c.features(),
        c.pvalidate_budget()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_lists() {
        assert_eq!(
            parse_protocols("core=1,attest=1-2,7=3").unwrap(),
            vec![
                ProtocolEntry::new(0, 1, 1),
                ProtocolEntry::new(1, 1, 2),
                ProtocolEntry::new(7, 3, 3)
            ]
        );
        for bad in ["core", "nope=1", "core=0", "core=x", "core=1-", ""] {
            assert!(parse_protocols(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolve_keeps_what_is_not_given() {
        let base = ChannelConfig::default();
        let a = ChannelArgs {
            guest_vmpl: Some(2),
            ..Default::default()
        };
        let c = a.resolve(&base).unwrap();
        assert_eq!((c.guest_vmpl(), c.protocols()), (2, base.protocols()));
        let a = ChannelArgs {
            protocols: Some("attest=1".into()),
            ..Default::default()
        };
        assert!(
            a.resolve(&base)
                .unwrap_err()
                .to_string()
                .contains("core protocol")
        );
        let a = ChannelArgs {
            guest_vmpl: Some(0),
            ..Default::default()
        };
        assert!(a.resolve(&base).unwrap_err().to_string().contains("VMPL 0"));
        assert_eq!(
            describe(&base),
            "protocols core=1, guest VMPL 1, features 0x0, PVALIDATE budget 0"
        );
    }
}
