//! Corrupt IGVM files that still carry a valid checksum reach deep into the
//! parser and the adapter's planning: they must be refused with an error,
//! never a panic. Deterministic (seeded PRNG), so a failure reproduces.

use igvm_build::build::{assemble, to_igvm};
use igvm_build::elf::{ElfImage, Perms, Segment};
use igvm_build::qemu::plan::plan;
use svsm_bootdefs::layout::{KERNEL_VIRT_BASE, STAGE2_BASE};

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

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
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
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..20000 {
        let mut f = base.clone();
        let n = 1 + rng.next() % 4;
        for _ in 0..n {
            // Mostly the headers (where the structure is), sometimes anywhere.
            let limit = if rng.next().is_multiple_of(4) {
                f.len()
            } else {
                vh_end
            };
            let at = (rng.next() as usize) % limit;
            f[at] = match rng.next() % 3 {
                0 => rng.next() as u8,
                1 => 0xff,
                _ => 0,
            };
        }
        if rng.next().is_multiple_of(8) {
            let cut = (rng.next() as usize) % f.len();
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
