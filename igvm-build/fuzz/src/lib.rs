//! The bodies of igvm-build's fuzz targets, shared by the libFuzzer binaries
//! (fuzz_targets/, `make fuzz`) and the corpus replay test that runs in
//! `make test` on stable (igvm-build/tests/fuzz_corpus.rs). Each takes any
//! bytes and must return (Ok or an error), never panic.

use igvm_build::build::{assemble, to_igvm};
use igvm_build::elf::{ElfImage, Perms, Segment};
use svsm_bootdefs::layout::{KERNEL_VIRT_BASE, STAGE2_BASE};

/// Recomputes the fixed header's CRC32 (over the fixed header, checksum
/// field as zero, and the variable-header section) so that a mutation is not
/// stopped by the checksum before it reaches the parser.
pub fn fix_checksum(f: &mut [u8]) {
    if f.len() < 24 {
        return;
    }
    let rd = |o: usize| u32::from_le_bytes([f[o], f[o + 1], f[o + 2], f[o + 3]]) as usize;
    let (vh_off, vh_size) = (rd(8), rd(12));
    let end = vh_off.saturating_add(vh_size).min(f.len());
    f[20..24].fill(0);
    let mut h = crc32fast::Hasher::new();
    h.update(&f[..24]);
    if vh_off < end {
        h.update(&f[vh_off..end]);
    }
    let sum = h.finalize();
    f[20..24].copy_from_slice(&sum.to_le_bytes());
}

/// Any bytes as an IGVM file, checksum made valid: what `igvm-build run`
/// does with it before starting QEMU.
pub fn igvm(data: &[u8]) {
    let mut f = data.to_vec();
    fix_checksum(&mut f);
    let _ = igvm_build::qemu::plan::plan(&f, "test=fuzz", 512 << 20);
}

fn image(entry: u64, segments: &[(u64, u64, bool)]) -> ElfImage {
    ElfImage {
        entry,
        segments: segments
            .iter()
            .map(|&(vaddr, len, write)| Segment {
                vaddr,
                memsz: len,
                data: vec![0x90; len as usize],
                perms: Perms {
                    read: true,
                    write,
                    exec: !write,
                },
            })
            .collect(),
        functions: Vec::new(),
        build_id: None,
        cfi: None,
    }
}

/// Any bytes as an ELF, as stage2 and as the kernel: what `igvm-build build`
/// and `info` do with it.
pub fn elf(data: &[u8]) {
    let Ok(img) = igvm_build::elf::parse(data) else {
        return;
    };
    let _ = img.flat_size();
    let stage2 = image(STAGE2_BASE, &[(STAGE2_BASE, 0x1000, false)]);
    let kernel = image(
        KERNEL_VIRT_BASE,
        &[
            (KERNEL_VIRT_BASE, 0x2000, false),
            (KERNEL_VIRT_BASE + 0x2000, 0x1000, true),
        ],
    );
    for (s2, k) in [(&img, &kernel), (&stage2, &img)] {
        if let Ok(built) = assemble(s2, k, "") {
            let _ = to_igvm(&built);
        }
    }
}
