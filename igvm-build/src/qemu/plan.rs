//! Translation of an IGVM file (native platform) into what a stock QEMU can
//! load: raw blobs at guest-physical addresses and a reset-vector ROM.
//!
//! Everything here is pure (bytes in, [`LoadPlan`] out) so it can be unit
//! tested without QEMU.

use crate::rom;
use anyhow::{Context, Result, anyhow, bail, ensure};
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmPlatformHeader, IsolationType};
use igvm_defs::{
    IGVM_FIXED_HEADER, IGVM_MAGIC_VALUE, IGVM_VHS_MEMORY_MAP_ENTRY, IGVM_VHS_PARAMETER,
    IGVM_VHS_VARIABLE_HEADER, IgvmNativeVpContextX64, IgvmPageDataType, IgvmPlatformType,
    IgvmVariableHeaderType, MemoryMapEntryType,
};
use std::collections::BTreeMap;
use zerocopy::{FromBytes, FromZeros, IntoBytes};

const PAGE_SIZE: u64 = 4096;
const LARGE_PAGE_SIZE: u64 = 2 << 20;
/// Largest parameter area the adapter will allocate.
const MAX_PARAMETER_AREA: u64 = 16 << 20;
/// The legacy VGA / option-ROM / BIOS hole of the `pc` machine: raw loads
/// there would land in ROM or MMIO, not RAM.
const LEGACY_HOLE: (u64, u64) = (0xA_0000, 0x10_0000);
/// `pc` machine: RAM at or above this size is split at 3 GiB, the rest
/// placed above 4 GiB.
const PC_LOWMEM_SPLIT: u64 = 0xE000_0000;
const PC_LOWMEM_GIGABYTE: u64 = 0xC000_0000;

/// One raw blob QEMU loads with `-device loader,file=..,addr=..,force-raw=on`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub gpa: u64,
    pub data: Vec<u8>,
    /// What the blob came from, for messages ("page data", "parameter area 1").
    pub what: String,
}

/// Everything needed to boot the file on QEMU without IGVM support.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Coalesced, sorted, non-overlapping blobs.
    pub blobs: Vec<Blob>,
    /// The reset-vector ROM for `-bios`.
    pub rom: Vec<u8>,
    /// The boot CPU's context the ROM applies.
    pub context: Box<IgvmNativeVpContextX64>,
    /// The native platform's compatibility mask.
    pub compatibility_mask: u32,
    /// The RAM ranges (gpa, bytes) reported in the memory map.
    pub ram: Vec<(u64, u64)>,
    /// Whether the file has a COMMAND_LINE parameter.
    pub has_command_line: bool,
}

/// The guest RAM ranges of QEMU's `pc` machine for `mem` bytes of RAM.
pub fn pc_ram_ranges(mem: u64) -> Vec<(u64, u64)> {
    if mem < PC_LOWMEM_SPLIT {
        vec![(0, mem)]
    } else {
        vec![(0, PC_LOWMEM_GIGABYTE), (1 << 32, mem - PC_LOWMEM_GIGABYTE)]
    }
}

/// IGVM memory-map entries for `ram`, ended by a zero entry.
pub fn memory_map_entries(ram: &[(u64, u64)]) -> Vec<IGVM_VHS_MEMORY_MAP_ENTRY> {
    let mut v: Vec<_> = ram
        .iter()
        .map(|&(start, len)| IGVM_VHS_MEMORY_MAP_ENTRY {
            starting_gpa_page_number: start / PAGE_SIZE,
            number_of_pages: len / PAGE_SIZE,
            entry_type: MemoryMapEntryType::MEMORY,
            flags: 0,
            reserved: 0,
        })
        .collect();
    v.push(IGVM_VHS_MEMORY_MAP_ENTRY::new_zeroed());
    v
}

/// Structural checks the `igvm` crate does not do before doing arithmetic on
/// the values (it can overflow on a crafted file): the fixed header's sizes,
/// and that every file offset points into the file-data section.
pub(crate) fn precheck(bytes: &[u8]) -> Result<()> {
    let (fixed, _) = IGVM_FIXED_HEADER::read_from_prefix(bytes).map_err(|_| {
        anyhow!(
            "file too short for the IGVM fixed header ({} bytes)",
            bytes.len()
        )
    })?;
    ensure!(
        fixed.magic == IGVM_MAGIC_VALUE,
        "not an IGVM file (bad magic {:#010x})",
        fixed.magic
    );
    ensure!(
        fixed.total_file_size as usize == bytes.len(),
        "IGVM file is truncated or padded: header says {} bytes, file has {}",
        fixed.total_file_size,
        bytes.len()
    );
    let start = fixed.variable_header_offset as usize;
    let end = fixed
        .variable_header_offset
        .checked_add(fixed.variable_header_size)
        .map(|e| e as usize)
        .filter(|&e| e <= bytes.len() && start <= e)
        .ok_or_else(|| anyhow!("IGVM variable header section lies outside the file"))?;
    let data_start = end as u32;
    let mut rest = &bytes[start..end];
    while !rest.is_empty() {
        let (h, body) = IGVM_VHS_VARIABLE_HEADER::read_from_prefix(rest)
            .map_err(|_| anyhow!("truncated IGVM variable header"))?;
        let len = h.length as usize;
        ensure!(
            body.len() >= len,
            "IGVM variable header {:#x} overruns its section",
            h.typ.0
        );
        let typ = IgvmVariableHeaderType(h.typ.0 & 0x7fff_ffff);
        let with_file_offset = [
            IgvmVariableHeaderType::IGVM_VHT_PARAMETER_AREA,
            IgvmVariableHeaderType::IGVM_VHT_PAGE_DATA,
            IgvmVariableHeaderType::IGVM_VHT_VP_CONTEXT,
        ];
        // All three structures keep their u32 file_offset at byte 12.
        if with_file_offset.contains(&typ) && len >= 16 {
            let off = u32::from_le_bytes(body[12..16].try_into().expect("4 bytes"));
            ensure!(
                off == 0 || (off >= data_start && (off as usize) < bytes.len()),
                "IGVM header {:#x} has file offset {off:#x} outside the file data section",
                typ.0
            );
        }
        let adv = len.div_ceil(8) * 8;
        rest = body.get(adv..).unwrap_or(&[]);
    }
    Ok(())
}

/// Parses `bytes` and keeps the native platform. Errors name the problem.
pub fn parse_native(bytes: &[u8]) -> Result<(IgvmFile, u32)> {
    precheck(bytes)?;
    crate::igvm_check::check_vp_contexts(bytes)?;
    let file = IgvmFile::new_from_binary(bytes, Some(IsolationType::NotIsolated))
        .map_err(|e| anyhow!("invalid IGVM file: {e}"))?;
    let mut native = None;
    let mut seen = Vec::new();
    for p in file.platforms() {
        let IgvmPlatformHeader::SupportedPlatform(sp) = p;
        seen.push(format!("{:?}", sp.platform_type));
        if sp.platform_type == IgvmPlatformType::NATIVE {
            native = Some(sp.compatibility_mask);
        }
    }
    let mask = native.ok_or_else(|| {
        anyhow!(
            "the IGVM file has no NATIVE platform header (it supports: {}); \
             the QEMU adapter only runs the native platform",
            seen.join(", ")
        )
    })?;
    Ok((file, mask))
}

struct Area {
    bytes: Vec<u8>,
    inserted: bool,
}

fn write_param(
    areas: &mut BTreeMap<u32, Area>,
    p: &IGVM_VHS_PARAMETER,
    what: &str,
    data: &[u8],
) -> Result<()> {
    let area = areas.get_mut(&p.parameter_area_index).ok_or_else(|| {
        anyhow!(
            "{what} refers to undeclared parameter area {}",
            p.parameter_area_index
        )
    })?;
    ensure!(
        !area.inserted,
        "{what} targets parameter area {} after it was inserted",
        p.parameter_area_index
    );
    let off = p.byte_offset as usize;
    let end = off
        .checked_add(data.len())
        .filter(|&e| e <= area.bytes.len())
        .ok_or_else(|| {
            anyhow!(
                "{what} ({} bytes at offset {off}) does not fit parameter area {} ({} bytes)",
                data.len(),
                p.parameter_area_index,
                area.bytes.len()
            )
        })?;
    area.bytes[off..end].copy_from_slice(data);
    Ok(())
}

fn in_ram(ram: &[(u64, u64)], gpa: u64, len: u64) -> bool {
    let Some(end) = gpa.checked_add(len) else {
        return false;
    };
    ram.iter().any(|&(s, l)| gpa >= s && end <= s + l)
}

/// Builds the load plan for `bytes` with the given command line and RAM size.
pub fn plan(bytes: &[u8], cmdline: &str, mem_bytes: u64) -> Result<LoadPlan> {
    let (file, mask) = parse_native(bytes)?;
    ensure!(
        mem_bytes >= 2 << 20,
        "guest memory {mem_bytes} bytes is too small"
    );
    let ram = pc_ram_ranges(mem_bytes);
    let mut areas: BTreeMap<u32, Area> = BTreeMap::new();
    let mut raw: Vec<Blob> = Vec::new();
    // Zero pages: occupied (for overlap checks and the page walk) but need no blob.
    let mut zero: Vec<(u64, u64)> = Vec::new();
    let mut context: Option<Box<IgvmNativeVpContextX64>> = None;
    let mut has_command_line = false;

    for d in file.directives() {
        if let Some(m) = d.compatibility_mask()
            && m & mask == 0
        {
            continue;
        }
        match d {
            IgvmDirectiveHeader::PageData {
                gpa,
                flags,
                data_type,
                data,
                ..
            } => {
                ensure!(
                    *data_type == IgvmPageDataType::NORMAL,
                    "page data at {gpa:#x} has type {data_type:?}; only NORMAL pages exist on the native platform"
                );
                let size = if flags.is_2mb_page() {
                    LARGE_PAGE_SIZE
                } else {
                    PAGE_SIZE
                };
                ensure!(
                    data.len() as u64 <= size,
                    "page data at {gpa:#x} is larger than its page"
                );
                if data.is_empty() {
                    zero.push((*gpa, size));
                } else {
                    let mut page = data.clone();
                    page.resize(size as usize, 0);
                    raw.push(Blob {
                        gpa: *gpa,
                        data: page,
                        what: "page data".into(),
                    });
                }
            }
            IgvmDirectiveHeader::ParameterArea {
                number_of_bytes,
                parameter_area_index,
                initial_data,
            } => {
                ensure!(
                    *number_of_bytes <= MAX_PARAMETER_AREA,
                    "parameter area {parameter_area_index} is {number_of_bytes} bytes (limit {MAX_PARAMETER_AREA})"
                );
                let mut bytes = initial_data.clone();
                bytes.resize(*number_of_bytes as usize, 0);
                areas.insert(
                    *parameter_area_index,
                    Area {
                        bytes,
                        inserted: false,
                    },
                );
            }
            IgvmDirectiveHeader::MemoryMap(p) => {
                let entries = memory_map_entries(&ram);
                write_param(&mut areas, p, "MEMORY_MAP", entries.as_bytes())?;
            }
            IgvmDirectiveHeader::CommandLine(p) => {
                ensure!(
                    !cmdline.contains('\0'),
                    "the command line contains a NUL byte"
                );
                let mut s = cmdline.as_bytes().to_vec();
                s.push(0);
                write_param(&mut areas, p, "COMMAND_LINE", &s)?;
                has_command_line = true;
            }
            IgvmDirectiveHeader::VpCount(p) => {
                write_param(&mut areas, p, "VP_COUNT", &1u32.to_le_bytes())?;
            }
            IgvmDirectiveHeader::ParameterInsert(ins) => {
                let area = areas.get_mut(&ins.parameter_area_index).ok_or_else(|| {
                    anyhow!(
                        "PARAMETER_INSERT of undeclared parameter area {}",
                        ins.parameter_area_index
                    )
                })?;
                ensure!(
                    !area.inserted,
                    "parameter area {} inserted twice",
                    ins.parameter_area_index
                );
                area.inserted = true;
                let mut data = area.bytes.clone();
                data.resize(
                    data.len().div_ceil(PAGE_SIZE as usize) * PAGE_SIZE as usize,
                    0,
                );
                raw.push(Blob {
                    gpa: ins.gpa,
                    data,
                    what: format!("parameter area {}", ins.parameter_area_index),
                });
            }
            IgvmDirectiveHeader::X64NativeVpContext {
                vp_index,
                context: c,
                ..
            } => {
                ensure!(
                    *vp_index == 0,
                    "VP context for vp_index {vp_index}: the adapter only starts the boot CPU (0)"
                );
                ensure!(
                    context.is_none(),
                    "more than one native VP context for the boot CPU"
                );
                context = Some(c.clone());
            }
            IgvmDirectiveHeader::RequiredMemory {
                gpa,
                number_of_bytes,
                ..
            } => {
                ensure!(
                    in_ram(&ram, *gpa, u64::from(*number_of_bytes)),
                    "the file requires memory at {gpa:#x}+{number_of_bytes:#x}, outside the {} MiB of guest RAM",
                    mem_bytes >> 20
                );
            }
            other => bail!(
                "directive not supported by the QEMU adapter on the native platform: {}",
                directive_name(other)
            ),
        }
    }

    let context = context.ok_or_else(|| {
        anyhow!("the IGVM file has no native VP context (X64NativeVpContext) for the boot CPU")
    })?;
    let rom = rom::build_rom(&context).context("cannot build the reset-vector ROM")?;

    raw.sort_by_key(|b| b.gpa);
    let mut ranges: Vec<(u64, u64, String)> = raw
        .iter()
        .map(|b| (b.gpa, b.data.len() as u64, b.what.clone()))
        .chain(zero.iter().map(|&(g, l)| (g, l, "zero page".to_string())))
        .collect();
    ranges.sort_by_key(|r| r.0);
    for w in ranges.windows(2) {
        ensure!(
            w[0].0 + w[0].1 <= w[1].0,
            "{} at {:#x} overlaps {} at {:#x}",
            w[0].2,
            w[0].0,
            w[1].2,
            w[1].0
        );
    }
    for (gpa, len, what) in &ranges {
        ensure!(
            in_ram(&ram, *gpa, *len),
            "{what} at {gpa:#x} ({len:#x} bytes) is outside the {} MiB of guest RAM (use --memory)",
            mem_bytes >> 20
        );
        ensure!(
            gpa + len <= LEGACY_HOLE.0 || *gpa >= LEGACY_HOLE.1,
            "{what} at {gpa:#x} falls in the pc machine's legacy hole {:#x}..{:#x}",
            LEGACY_HOLE.0,
            LEGACY_HOLE.1
        );
    }

    // The hand-off check walks the page tables as the file loads them.
    let read_u64 = |gpa: u64| -> Option<u64> {
        let (start, len, data) = raw
            .iter()
            .map(|b| (b.gpa, b.data.len() as u64, Some(&b.data)))
            .chain(zero.iter().map(|&(g, l)| (g, l, None)))
            .find(|&(s, l, _)| gpa >= s && gpa + 8 <= s + l)?;
        let _ = len;
        Some(match data {
            Some(d) => {
                let o = (gpa - start) as usize;
                u64::from_le_bytes(d[o..o + 8].try_into().expect("8 bytes"))
            }
            None => 0,
        })
    };
    rom::check_hand_off_mapping(&context, &read_u64)
        .context("the IGVM file cannot be booted through the reset-vector ROM")?;

    Ok(LoadPlan {
        blobs: coalesce(raw),
        rom,
        context,
        compatibility_mask: mask,
        ram,
        has_command_line,
    })
}

/// Merges blobs whose GPA ranges touch (input sorted, non-overlapping).
pub fn coalesce(sorted: Vec<Blob>) -> Vec<Blob> {
    let mut out: Vec<Blob> = Vec::new();
    for b in sorted {
        if let Some(last) = out.last_mut()
            && last.gpa + last.data.len() as u64 == b.gpa
        {
            last.data.extend_from_slice(&b.data);
            if !last.what.contains(&b.what) {
                last.what = format!("{}, {}", last.what, b.what);
            }
            continue;
        }
        out.push(b);
    }
    out
}

fn directive_name(d: &IgvmDirectiveHeader) -> String {
    let s = format!("{d:?}");
    s.split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .unwrap_or("?")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_ranges_follow_the_pc_machine() {
        assert_eq!(pc_ram_ranges(512 << 20), vec![(0, 512 << 20)]);
        assert_eq!(pc_ram_ranges(3 << 30), vec![(0, 3 << 30)]);
        assert_eq!(
            pc_ram_ranges(4 << 30),
            vec![(0, 3 << 30), (4 << 30, 1 << 30)]
        );
    }

    #[test]
    fn memory_map_is_zero_terminated() {
        let e = memory_map_entries(&[(0, 512 << 20)]);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].starting_gpa_page_number, 0);
        assert_eq!(e[0].number_of_pages, (512 << 20) / 4096);
        assert_eq!(e[0].entry_type, MemoryMapEntryType::MEMORY);
        assert_eq!(e[1].number_of_pages, 0);
        assert_eq!(e.as_bytes().len(), 48);
    }

    #[test]
    fn coalesce_merges_only_contiguous() {
        let b = |gpa, n| Blob {
            gpa,
            data: vec![1; n],
            what: "page data".into(),
        };
        let out = coalesce(vec![
            b(0x1000, 0x1000),
            b(0x2000, 0x1000),
            b(0x4000, 0x1000),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].gpa, out[0].data.len()), (0x1000, 0x2000));
        assert_eq!((out[1].gpa, out[1].data.len()), (0x4000, 0x1000));
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let e = plan(b"", "", 512 << 20).unwrap_err().to_string();
        assert!(e.contains("too short"), "{e}");
        let e = plan(&[0x5a; 4096], "", 512 << 20).unwrap_err().to_string();
        assert!(e.contains("bad magic"), "{e}");
        let mut hdr = IGVM_FIXED_HEADER::new_zeroed();
        hdr.magic = IGVM_MAGIC_VALUE;
        hdr.format_version = 1;
        hdr.total_file_size = 100;
        let e = plan(hdr.as_bytes(), "", 512 << 20).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        hdr.total_file_size = 24;
        hdr.variable_header_offset = 0xffff_fff0;
        hdr.variable_header_size = 0x100;
        let e = plan(hdr.as_bytes(), "", 512 << 20).unwrap_err().to_string();
        assert!(e.contains("outside the file"), "{e}");
    }
}
