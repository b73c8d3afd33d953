//! Differential test against iced-x86: every supported form with every
//! prefix combination of interest and every ModRM byte, then random and
//! mutated byte strings, in 64-, 32- and 16-bit mode. Where iced decodes
//! one of the supported forms, ours must agree on length, operation, width,
//! port, REP, address size, segment, memory operand (registers and the
//! effective address it yields), register operand and immediate; anything
//! else (invalid, another instruction, a register operand) ours must refuse.

mod common;

use common::{Norm, iced, ours};
use svsm_insn::{MAX_INSN_LEN, Mode};
use svsm_testkit::Rng;

const MODES: [Mode; 3] = [Mode::Long64, Mode::Protected32, Mode::Protected16];

const OPCODES: &[&[u8]] = &[
    &[0xE4],
    &[0xE5],
    &[0xE6],
    &[0xE7],
    &[0xEC],
    &[0xED],
    &[0xEE],
    &[0xEF],
    &[0x6C],
    &[0x6D],
    &[0x6E],
    &[0x6F],
    &[0x88],
    &[0x89],
    &[0x8A],
    &[0x8B],
    &[0xC6],
    &[0xC7],
    &[0x0F, 0xB6],
    &[0x0F, 0xB7],
    &[0x0F, 0xBE],
    &[0x0F, 0xBF],
    &[0x0F, 0xA2],
    &[0x0F, 0x32],
    &[0x0F, 0x30],
    &[0x0F, 0x01],
];

const PREFIXES: &[&[u8]] = &[
    &[],
    &[0x66],
    &[0x67],
    &[0x66, 0x67],
    &[0xF3],
    &[0xF2],
    &[0xF0],
    &[0xF3, 0xF2],
    &[0x26],
    &[0x2E],
    &[0x36],
    &[0x3E],
    &[0x64],
    &[0x65],
    &[0x64, 0x3E],
    &[0x3E, 0x64],
    &[0x26, 0x65, 0x36],
    &[0xF3, 0x66],
    &[0x66, 0xF3],
    &[0xF2, 0x67, 0x2E],
    &[0x40],
    &[0x41],
    &[0x42],
    &[0x44],
    &[0x48],
    &[0x4C],
    &[0x4F],
    &[0x45],
    &[0x66, 0x48],
    &[0x48, 0x66],
    &[0x67, 0x41],
    &[0xF3, 0x48],
    &[0x48, 0x4D],
    &[0x44, 0x64],
    &[0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66],
    &[
        0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
    ],
    &[
        0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF3, 0x48, 0x66, 0x67, 0x4F, 0x4F,
    ],
];

const SIBS: &[u8] = &[0x00, 0x24, 0x25, 0x65, 0xE5, 0x9C, 0x61, 0xA7];

/// One comparison; `Some(description)` on a disagreement.
fn compare(bytes: &[u8], mode: Mode) -> Option<String> {
    let theirs: Option<Norm> = iced(bytes, mode);
    let mine = ours(bytes, mode);
    match (&theirs, &mine) {
        (Some(t), Ok(m)) if t == m => None,
        (None, Err(_)) => None,
        _ => Some(format!(
            "{mode:?} {:02x?}\n  iced: {theirs:?}\n  ours: {mine:?}",
            &bytes[..bytes.len().min(MAX_INSN_LEN)]
        )),
    }
}

#[derive(Default)]
struct Tally {
    cases: u64,
    supported: u64,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, bytes: &[u8], mode: Mode) {
        self.cases += 1;
        if iced(bytes, mode).is_some() {
            self.supported += 1;
        }
        if let Some(f) = compare(bytes, mode)
            && self.failures.len() < 25
        {
            self.failures.push(f);
        }
    }

    fn finish(self, what: &str) {
        eprintln!(
            "iced differential ({what}): {} cases, {} of them supported forms, {} mismatches",
            self.cases,
            self.supported,
            self.failures.len()
        );
        assert!(
            self.failures.is_empty(),
            "mismatches:\n{}",
            self.failures.join("\n")
        );
    }
}

/// Exactly 15 bytes: a prefix set, an opcode, then `tail`.
fn assemble(prefix: &[u8], opcode: &[u8], tail: &[u8]) -> [u8; MAX_INSN_LEN] {
    let mut b = [0u8; MAX_INSN_LEN];
    let all = prefix.iter().chain(opcode).chain(tail);
    for (d, s) in b.iter_mut().zip(all) {
        *d = *s;
    }
    b
}

#[test]
fn every_supported_form() {
    let mut t = Tally::default();
    let mut rng = Rng::new(0x1e5);
    for mode in MODES {
        for prefix in PREFIXES {
            for opcode in OPCODES {
                for modrm in 0..=255u8 {
                    let mut tail = [0u8; 12];
                    tail.iter_mut().for_each(|b| *b = rng.next_u64() as u8);
                    tail[0] = modrm;
                    let sibs: &[u8] = if modrm & 7 == 4 && modrm >> 6 != 3 {
                        SIBS
                    } else {
                        &[0]
                    };
                    for &sib in sibs {
                        tail[1] = if sibs.len() > 1 { sib } else { tail[1] };
                        t.check(&assemble(prefix, opcode, &tail), mode);
                    }
                }
            }
        }
    }
    t.finish("every form x prefixes x ModRM");
}

/// A byte string weighted towards the supported opcodes and prefixes.
fn random_insn(rng: &mut Rng) -> [u8; MAX_INSN_LEN] {
    const POOL: &[u8] = &[
        0x66, 0x67, 0xF0, 0xF2, 0xF3, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x40, 0x41, 0x44, 0x48,
        0x4F,
    ];
    let mut b = [0u8; MAX_INSN_LEN];
    b.iter_mut().for_each(|x| *x = rng.next_u64() as u8);
    let np = rng.index(5);
    for x in b.iter_mut().take(np) {
        *x = POOL[rng.index(POOL.len())];
    }
    if rng.below(10) < 8 {
        let op = OPCODES[rng.index(OPCODES.len())];
        for (i, o) in op.iter().enumerate() {
            if let Some(x) = b.get_mut(np + i) {
                *x = *o;
            }
        }
    }
    b
}

#[test]
fn random_byte_strings() {
    let mut t = Tally::default();
    let mut rng = Rng::new(0xdec0de);
    for _ in 0..200_000 {
        let b = random_insn(&mut rng);
        t.check(&b, MODES[rng.index(3)]);
    }
    t.finish("random");
}

#[test]
fn mutated_byte_strings() {
    let mut t = Tally::default();
    let mut rng = Rng::new(0x5eed);
    for _ in 0..200_000 {
        let mode = MODES[rng.index(3)];
        let mut b = random_insn(&mut rng);
        // Start from a supported instruction where one was drawn.
        for _ in 0..rng.below(4) + 1 {
            let i = rng.index(MAX_INSN_LEN);
            match rng.below(4) {
                0 => b[i] ^= 1 << rng.below(8),
                1 => b[i] = rng.next_u64() as u8,
                2 => {
                    b.copy_within(i..MAX_INSN_LEN - 1, i + 1);
                    b[i] = [0x66, 0x67, 0xF3, 0x48, 0x64][rng.index(5)];
                }
                _ => {
                    b.copy_within(i + 1.., i);
                }
            }
        }
        t.check(&b, mode);
    }
    t.finish("mutated");
}
