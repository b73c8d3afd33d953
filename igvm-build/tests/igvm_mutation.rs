//! Corrupt IGVM files that still carry a valid checksum reach deep into the
//! parser and the adapter's planning: they must be refused with an error,
//! never a panic. Deterministic (seeded PRNG), so a failure reproduces.

use igvm_build::build::{assemble, to_igvm};
use igvm_build::elf::{ElfImage, Perms, Segment};
use igvm_build::qemu::plan::plan;
use svsm_bootdefs::layout::{KERNEL_VIRT_BASE, STAGE2_BASE};
use svsm_testkit::Rng;

fn seg(vaddr: u64, len: u64, perms: Perms) -> Segment {
    Segment {
        vaddr,
        memsz: len,
        data: vec![0x90; len as usize],
        perms,
    }
}

fn valid_igvm() -> Vec<u8> {
    let rx = Perms {
        read: true,
        write: false,
        exec: true,
    };
    let rw = Perms {
        read: true,
        write: true,
        exec: false,
    };
    let stage2 = ElfImage {
        entry: STAGE2_BASE,
        segments: vec![seg(STAGE2_BASE, 0x1000, rx)],
        functions: vec![],
        build_id: None,
        cfi: None,
    };
    let kernel = ElfImage {
        entry: KERNEL_VIRT_BASE,
        segments: vec![
            seg(KERNEL_VIRT_BASE, 0x2000, rx),
            seg(KERNEL_VIRT_BASE + 0x2000, 0x1000, rw),
        ],
        functions: vec![],
        build_id: None,
        cfi: None,
    };
    let img = assemble(&stage2, &kernel, "").unwrap();
    let mut out = Vec::new();
    to_igvm(&img).unwrap().serialize(&mut out).unwrap();
    out
}

/// Recomputes the fixed header's CRC32 (over the fixed and variable headers,
/// checksum field read as zero) so that the mutation is not caught by it.
fn fix_checksum(f: &mut [u8]) {
    let rd = |o: usize| u32::from_le_bytes(f[o..o + 4].try_into().unwrap()) as usize;
    let (vh_off, vh_size) = (rd(8), rd(12));
    let end = vh_off.saturating_add(vh_size).min(f.len());
    f[20..24].fill(0);
    let mut h = crc32fast::Hasher::new();
    h.update(&f[..24.min(f.len())]);
    if vh_off < end {
        h.update(&f[vh_off..end]);
    }
    let sum = h.finalize();
    f[20..24].copy_from_slice(&sum.to_le_bytes());
}

#[test]
fn the_unmutated_file_plans() {
    let mut f = valid_igvm();
    fix_checksum(&mut f);
    plan(&f, "test=smoke", 512 << 20).expect("a valid file plans");
}

#[test]
fn mutated_files_with_valid_checksums_never_panic() {
    let base = valid_igvm();
    let vh_end = {
        let rd = |o: usize| u32::from_le_bytes(base[o..o + 4].try_into().unwrap()) as usize;
        rd(8) + rd(12)
    };
    let mut rng = Rng::new(0x5eed_1234_abcd_ef01);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..20000 {
        let mut f = base.clone();
        let n = 1 + rng.next_u64() % 4;
        for _ in 0..n {
            // Mostly the headers (where the structure is), sometimes anywhere.
            let limit = if rng.next_u64().is_multiple_of(4) {
                f.len()
            } else {
                vh_end
            };
            let at = (rng.next_u64() as usize) % limit;
            f[at] = match rng.next_u64() % 3 {
                0 => rng.next_u64() as u8,
                1 => 0xff,
                _ => 0,
            };
        }
        if rng.next_u64().is_multiple_of(8) {
            let cut = (rng.next_u64() as usize) % f.len();
            f.truncate(cut.max(24));
        }
        fix_checksum(&mut f);
        match std::panic::catch_unwind(|| plan(&f, "x", 512 << 20).map(|_| ())) {
            Ok(Ok(())) => ok += 1,
            Ok(Err(_)) => refused += 1,
            Err(_) => panic!("planning panicked on a mutated file (seeded; reproducible)"),
        }
    }
    assert!(
        refused > 0,
        "no mutation was refused: the test is not reaching the checks"
    );
    println!("mutated IGVM files: {ok} planned, {refused} refused");
}

/// Offsets of the variable headers of type `typ` (start of the body).
fn header_bodies(f: &[u8], typ: u32) -> Vec<usize> {
    let rd = |o: usize| u32::from_le_bytes(f[o..o + 4].try_into().unwrap()) as usize;
    let (mut at, end) = (rd(8), rd(8) + rd(12));
    let mut out = Vec::new();
    while at + 8 <= end {
        let (t, len) = (rd(at) as u32 & 0x7fff_ffff, rd(at + 4));
        if t == typ {
            out.push(at + 8);
        }
        at += 8 + len.div_ceil(8) * 8;
    }
    out
}

const VHT_SUPPORTED_PLATFORM: u32 = 0x1;
const VHT_VP_CONTEXT: u32 = 0x304;

/// The igvm crate subtracts the data-section start from a VP_CONTEXT's file
/// offset unchecked: offset 0 must be refused before it gets there.
#[test]
fn vp_context_at_file_offset_zero_is_refused() {
    let mut f = valid_igvm();
    let bodies = header_bodies(&f, VHT_VP_CONTEXT);
    assert_eq!(bodies.len(), 1, "the valid file has one VP context");
    f[bodies[0] + 12..bodies[0] + 16].fill(0);
    fix_checksum(&mut f);
    let e = plan(&f, "", 512 << 20).unwrap_err().to_string();
    assert!(e.contains("file offset 0"), "{e}");
}

/// A VSM_ISOLATION platform with one VP context whose data holds registers
/// of the given VTLs.
fn vsm_file(vp_index: u16, vtls: &[u8]) -> Vec<u8> {
    let mut vh = Vec::new();
    // SUPPORTED_PLATFORM: mask 1, highest VTL 2, VSM_ISOLATION (1), version 1.
    vh.extend_from_slice(&VHT_SUPPORTED_PLATFORM.to_le_bytes());
    vh.extend_from_slice(&16u32.to_le_bytes());
    vh.extend_from_slice(&1u32.to_le_bytes());
    vh.extend_from_slice(&[2, 1, 1, 0]);
    vh.extend_from_slice(&0u64.to_le_bytes());
    let data_start = 24 + vh.len() as u32 + 32;
    // VP_CONTEXT: gpa 0, mask 1, file offset, vp_index, reserved.
    vh.extend_from_slice(&VHT_VP_CONTEXT.to_le_bytes());
    vh.extend_from_slice(&20u32.to_le_bytes());
    vh.extend_from_slice(&0u64.to_le_bytes());
    vh.extend_from_slice(&1u32.to_le_bytes());
    vh.extend_from_slice(&data_start.to_le_bytes());
    vh.extend_from_slice(&vp_index.to_le_bytes());
    vh.extend_from_slice(&[0; 6]);
    let mut data = (vtls.len() as u32).to_le_bytes().to_vec();
    for &vtl in vtls {
        let mut reg = [0u8; 32];
        reg[0] = vtl;
        data.extend_from_slice(&reg);
    }
    let total = 24 + vh.len() + data.len();
    let mut f = Vec::new();
    for v in [0x4d56_4749u32, 1, 24, vh.len() as u32, total as u32, 0] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&vh);
    f.extend_from_slice(&data);
    assert_eq!(f.len() as u32 - data.len() as u32, data_start);
    fix_checksum(&mut f);
    f
}

/// The igvm crate asserts (in every profile) that a VSM_ISOLATION VP context
/// uses one VTL and is for vp_index 0: such files are refused first.
#[test]
fn vsm_isolation_contexts_the_igvm_crate_asserts_on_are_refused() {
    let e = plan(&vsm_file(0, &[0, 2]), "", 512 << 20)
        .unwrap_err()
        .to_string();
    assert!(e.contains("mixes registers of VTL 0 and VTL 2"), "{e}");
    let e = plan(&vsm_file(3, &[0]), "", 512 << 20)
        .unwrap_err()
        .to_string();
    assert!(e.contains("vp_index 3"), "{e}");
    // One VTL, boot processor: past the pre-check (refused later, as the
    // adapter runs only the native platform).
    let e = plan(&vsm_file(0, &[2, 2]), "", 512 << 20)
        .unwrap_err()
        .to_string();
    assert!(!e.contains("VSM_ISOLATION VP context"), "{e}");
}
