//! Which loader can run a file: upstream QEMU's own IGVM loader
//! (`-object igvm-cfg`) or igvm-build's adapter, decided before QEMU starts.
//!
//! Upstream QEMU (10.2, `backends/igvm.c`) looks up a handler for every
//! header of the initialization and directive sections, whatever its
//! compatibility mask, and refuses the whole file for a type it has no
//! handler for. The lists below are those handlers; docs/qemu-adapter.md
//! compares both loaders.

use super::Mode;
use anyhow::{Context, Result, anyhow};
use igvm_defs::{IGVM_FIXED_HEADER, IGVM_VHS_VARIABLE_HEADER, IgvmVariableHeaderType as T};
use std::path::Path;
use std::process::{Command, Stdio};
use zerocopy::FromBytes;

/// Directive types upstream QEMU's loader handles.
pub const UPSTREAM_DIRECTIVES: [T; 9] = [
    T::IGVM_VHT_PAGE_DATA,
    T::IGVM_VHT_VP_CONTEXT,
    T::IGVM_VHT_PARAMETER_AREA,
    T::IGVM_VHT_PARAMETER_INSERT,
    T::IGVM_VHT_MEMORY_MAP,
    T::IGVM_VHT_VP_COUNT_PARAMETER,
    T::IGVM_VHT_ENVIRONMENT_INFO_PARAMETER,
    T::IGVM_VHT_REQUIRED_MEMORY,
    T::IGVM_VHT_SNP_ID_BLOCK,
];
/// Initialization types upstream QEMU's loader handles.
pub const UPSTREAM_INITIALIZATION: [T; 1] = [T::IGVM_VHT_GUEST_POLICY];
/// The first QEMU release whose loader applies a native (non-confidential)
/// VP context, the way our files start the boot CPU.
pub const MIN_UPSTREAM_VERSION: (u32, u32) = (10, 2);

/// Ranges of the variable-header sections (IGVM specification).
const INITIALIZATION_TYPES: std::ops::RangeInclusive<u32> = 0x101..=0x200;
const DIRECTIVE_TYPES: std::ops::RangeInclusive<u32> = 0x301..=0x400;

/// Every header type in the file's variable-header section, in order, with
/// the "may be ignored" bit cleared. The caller has run `plan::precheck`.
fn header_types(bytes: &[u8]) -> Vec<u32> {
    let Ok((fixed, _)) = IGVM_FIXED_HEADER::read_from_prefix(bytes) else {
        return Vec::new();
    };
    let start = fixed.variable_header_offset as usize;
    let end = start.saturating_add(fixed.variable_header_size as usize);
    let mut rest = bytes.get(start..end).unwrap_or(&[]);
    let mut types = Vec::new();
    while let Ok((h, body)) = IGVM_VHS_VARIABLE_HEADER::read_from_prefix(rest) {
        types.push(h.typ.0 & 0x7fff_ffff);
        let adv = (h.length as usize).div_ceil(8) * 8;
        rest = body.get(adv..).unwrap_or(&[]);
    }
    types
}

/// Why upstream QEMU's loader would refuse the file: one entry per header
/// type it has no handler for (empty: it loads the file).
pub fn upstream_refusals(bytes: &[u8]) -> Result<Vec<String>> {
    super::plan::precheck(bytes)?;
    let mut refused: Vec<String> = Vec::new();
    for t in header_types(bytes) {
        let handled = if DIRECTIVE_TYPES.contains(&t) {
            UPSTREAM_DIRECTIVES.contains(&T(t))
        } else if INITIALIZATION_TYPES.contains(&t) {
            UPSTREAM_INITIALIZATION.contains(&T(t))
        } else {
            true // platform headers: unknown ones are skipped
        };
        let name = format!("{:?} ({t:#x})", T(t));
        if !handled && !refused.contains(&name) {
            refused.push(name);
        }
    }
    Ok(refused)
}

/// What a QEMU binary offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuInfo {
    /// The first line of `--version`.
    pub version_line: String,
    /// (major, minor, micro), if the line could be parsed.
    pub version: Option<(u32, u32, u32)>,
    /// `-object help` lists `igvm-cfg`.
    pub igvm_cfg: bool,
}

/// Parses "QEMU emulator version 10.2.2 (...)".
pub fn parse_version(line: &str) -> Option<(u32, u32, u32)> {
    let v = line.split("version ").nth(1)?.split_whitespace().next()?;
    let mut it = v.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
    });
    let major = it.next()?.ok()?;
    let minor = it.next()?.ok()?;
    let micro = it.next().and_then(|r| r.ok()).unwrap_or(0);
    Some((major, minor, micro))
}

fn qemu_output(qemu: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(qemu)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", qemu.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Asks `qemu` for its version and whether it has the `igvm-cfg` object.
pub fn probe(qemu: &Path) -> Result<QemuInfo> {
    let version_line = qemu_output(qemu, &["--version"])?
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let igvm_cfg = qemu_output(qemu, &["-object", "help"])?
        .lines()
        .any(|l| l.trim() == "igvm-cfg");
    Ok(QemuInfo {
        version: parse_version(&version_line),
        version_line,
        igvm_cfg,
    })
}

/// Why this QEMU's own loader cannot run the file (None: it can).
pub fn upstream_obstacle(info: &QemuInfo, bytes: &[u8]) -> Result<Option<String>> {
    let name = if info.version_line.is_empty() {
        "this QEMU".to_string()
    } else {
        info.version_line.clone()
    };
    if !info.igvm_cfg {
        return Ok(Some(format!(
            "{name} has no IGVM loader (no igvm-cfg object)"
        )));
    }
    let (maj, min) = MIN_UPSTREAM_VERSION;
    if info.version.is_none_or(|(a, b, _)| (a, b) < (maj, min)) {
        return Ok(Some(format!(
            "{name} is older than {maj}.{min}: its IGVM loader cannot apply a native VP context"
        )));
    }
    let refused = upstream_refusals(bytes)?;
    if !refused.is_empty() {
        return Ok(Some(format!(
            "QEMU's IGVM loader refuses files with header types it has no handler for: {}",
            refused.join(", ")
        )));
    }
    Ok(None)
}

/// Resolves `mode` for `qemu` and the file `bytes`: the mode to use and a
/// sentence saying why. An explicit `igvm-cfg` the QEMU or file cannot
/// honour is an error naming the reason.
pub fn choose(mode: Mode, qemu: &Path, bytes: &[u8]) -> Result<(Mode, String)> {
    match mode {
        Mode::Adapter => Ok((Mode::Adapter, "adapter (requested)".to_string())),
        Mode::IgvmCfg => {
            let info = probe(qemu)?;
            match upstream_obstacle(&info, bytes)? {
                Some(why) => Err(anyhow!("cannot use --mode igvm-cfg: {why}")),
                None => Ok((
                    Mode::IgvmCfg,
                    format!("igvm-cfg: {} loads the file itself", info.version_line),
                )),
            }
        }
        Mode::Auto => {
            let info = probe(qemu)?;
            Ok(match upstream_obstacle(&info, bytes)? {
                Some(why) => (Mode::Adapter, format!("adapter: {why}")),
                None => (
                    Mode::IgvmCfg,
                    format!("igvm-cfg: {} loads the file itself", info.version_line),
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(
            parse_version("QEMU emulator version 10.2.2 (Debian 1:10.2.2+ds-1)"),
            Some((10, 2, 2))
        );
        assert_eq!(
            parse_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"),
            Some((7, 2, 22))
        );
        assert_eq!(
            parse_version("QEMU emulator version 10.1.0"),
            Some((10, 1, 0))
        );
        assert_eq!(
            parse_version("QEMU emulator version 11.0.50-rc1"),
            Some((11, 0, 50))
        );
        assert_eq!(parse_version("something else"), None);
    }

    fn info(v: &str, igvm_cfg: bool) -> QemuInfo {
        let version_line = format!("QEMU emulator version {v}");
        QemuInfo {
            version: parse_version(&version_line),
            version_line,
            igvm_cfg,
        }
    }

    #[test]
    fn old_or_igvm_less_qemu_is_an_obstacle() {
        // The file is never looked at for these.
        let e = upstream_obstacle(&info("7.2.22", false), b"")
            .unwrap()
            .unwrap();
        assert!(e.contains("no IGVM loader"), "{e}");
        let e = upstream_obstacle(&info("10.1.0", true), b"")
            .unwrap()
            .unwrap();
        assert!(e.contains("older than 10.2"), "{e}");
    }
}
