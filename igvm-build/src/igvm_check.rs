//! Checks on the raw bytes of an IGVM file for inputs that the `igvm` crate
//! (0.5) panics on instead of returning an error. They run before the file
//! reaches `IgvmFile::new_from_binary`, so a crafted file is refused with a
//! message (exit 2) rather than aborting the process:
//!
//! - a VP_CONTEXT whose file offset is 0 (the crate subtracts the start of
//!   the file-data section from it without a check);
//! - a VP_CONTEXT of a VSM_ISOLATION platform whose registers name more than
//!   one VTL, or whose vp_index is not 0 (the crate asserts both).
//!
//! The general structure (fixed header, section bounds, file offsets inside
//! the data section) is checked by `qemu::plan`'s pre-check.

use anyhow::{Result, anyhow, ensure};
use igvm_defs::{
    IGVM_FIXED_HEADER, IGVM_VHS_SUPPORTED_PLATFORM, IGVM_VHS_VARIABLE_HEADER, IGVM_VHS_VP_CONTEXT,
    IgvmPlatformType, IgvmVariableHeaderType, VbsVpContextHeader, VbsVpContextRegister,
};
use zerocopy::FromBytes;

/// One variable header: its type (the "ignore if unsupported" bit cleared)
/// and its body (exactly `length` bytes).
fn headers(bytes: &[u8]) -> Result<Vec<(IgvmVariableHeaderType, &[u8])>> {
    let (fixed, _) = IGVM_FIXED_HEADER::read_from_prefix(bytes)
        .map_err(|_| anyhow!("file too short for the IGVM fixed header"))?;
    let start = fixed.variable_header_offset as usize;
    let section = start
        .checked_add(fixed.variable_header_size as usize)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| anyhow!("IGVM variable header section lies outside the file"))?;
    let mut out = Vec::new();
    let mut rest = section;
    while !rest.is_empty() {
        let (h, body) = IGVM_VHS_VARIABLE_HEADER::read_from_prefix(rest)
            .map_err(|_| anyhow!("truncated IGVM variable header"))?;
        let len = h.length as usize;
        let this = body
            .get(..len)
            .ok_or_else(|| anyhow!("IGVM variable header {:#x} overruns its section", h.typ.0))?;
        out.push((IgvmVariableHeaderType(h.typ.0 & 0x7fff_ffff), this));
        rest = body.get(len.div_ceil(8) * 8..).unwrap_or(&[]);
    }
    Ok(out)
}

/// Refuses the inputs listed in the module documentation.
pub fn check_vp_contexts(bytes: &[u8]) -> Result<()> {
    let hs = headers(bytes)?;
    let vsm_masks: Vec<u32> = hs
        .iter()
        .filter(|(t, _)| *t == IgvmVariableHeaderType::IGVM_VHT_SUPPORTED_PLATFORM)
        .filter_map(|(_, b)| IGVM_VHS_SUPPORTED_PLATFORM::read_from_prefix(b).ok())
        .filter(|(p, _)| p.platform_type == IgvmPlatformType::VSM_ISOLATION)
        .map(|(p, _)| p.compatibility_mask)
        .collect();
    for (t, body) in &hs {
        if *t != IgvmVariableHeaderType::IGVM_VHT_VP_CONTEXT {
            continue;
        }
        let Ok((vp, _)) = IGVM_VHS_VP_CONTEXT::read_from_prefix(body) else {
            continue; // the crate rejects a short VP_CONTEXT itself
        };
        ensure!(
            vp.file_offset != 0,
            "IGVM VP_CONTEXT for vp_index {} has file offset 0 (its context data is missing)",
            vp.vp_index
        );
        if vsm_masks.contains(&vp.compatibility_mask) {
            check_vbs_context(bytes, &vp)?;
        }
    }
    Ok(())
}

/// A VSM_ISOLATION VP context: the boot processor only, and one VTL.
fn check_vbs_context(bytes: &[u8], vp: &IGVM_VHS_VP_CONTEXT) -> Result<()> {
    ensure!(
        vp.vp_index == 0,
        "IGVM VSM_ISOLATION VP context for vp_index {}: only the boot processor (0) is supported",
        vp.vp_index
    );
    let data = bytes.get(vp.file_offset as usize..).ok_or_else(|| {
        anyhow!(
            "IGVM VP context file offset {:#x} is outside the file",
            vp.file_offset
        )
    })?;
    let Ok((hdr, mut rest)) = VbsVpContextHeader::read_from_prefix(data) else {
        return Ok(()); // the crate reports the short data itself
    };
    let mut vtl = None;
    for _ in 0..hdr.register_count {
        let Ok((reg, next)) = VbsVpContextRegister::read_from_prefix(rest) else {
            break;
        };
        rest = next;
        match vtl {
            None => vtl = Some(reg.vtl),
            Some(v) => ensure!(
                v == reg.vtl,
                "IGVM VSM_ISOLATION VP context mixes registers of VTL {v} and VTL {}",
                reg.vtl
            ),
        }
    }
    Ok(())
}
