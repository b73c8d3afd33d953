//! The compact unwind table against gimli (differential tests).
//!
//! - On the kernel ELF (`KERNEL_ELF`, as `make test` exports it): the table
//!   row at every instruction boundary (and at the last byte of every
//!   instruction, which ordinary frames look up as pc - 1) equals gimli's
//!   own evaluation of the CFI there, and one unwinding step from a
//!   synthetic context gives the same frame, caller registers and stop
//!   reason through the table as through gimli. The kernel walks tables
//!   only, so it must have no row that falls back to gimli.
//! - On the host's loaded images: the same row check at every row boundary.

mod common;

use common::host_modules;
use iced_x86::{Decoder, DecoderOptions};
use object::{Object, ObjectSection};
use std::path::PathBuf;
use svsm_unwinder::compile::{Verdict, check_row, compile};
use svsm_unwinder::{
    CfiSections, Frame, Memory, Module, Regs, StopReason, UnwindState, UnwindTable, Walk,
};

/// Memory that answers every aligned read with a value derived from the
/// address (a stand-in stack: the walks compare, they need not make sense).
struct Synthetic;

impl Memory for Synthetic {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        addr.is_multiple_of(8)
            .then(|| addr.rotate_left(17) ^ 0x5bd1_e995_0000_0000)
    }
}

/// The kernels make exports (the production and the test kernel), paths
/// relative to the workspace root.
fn kernel_elfs() -> Vec<PathBuf> {
    ["KERNEL_ELF", "KERNEL_TEST_ELF"]
        .into_iter()
        .filter_map(std::env::var_os)
        .map(|p| {
            let p = PathBuf::from(p);
            if p.is_relative() {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
            } else {
                p
            }
        })
        .collect()
}

fn section<'a>(obj: &object::File<'a>, name: &str) -> (&'a [u8], u64) {
    let s = obj
        .section_by_name(name)
        .unwrap_or_else(|| panic!("kernel ELF has no {name}"));
    (s.data().unwrap(), s.address())
}

/// One step (frames #00 and #01 and the stop reason) from `regs`.
fn two_frames<W: Iterator<Item = Frame>>(
    mut w: W,
    stop: impl Fn(&W) -> Option<StopReason>,
) -> (Vec<Frame>, Option<StopReason>) {
    let frames: Vec<Frame> = w.by_ref().take(2).collect();
    (frames, stop(&w))
}

#[test]
fn kernel_table_matches_gimli_at_every_instruction() {
    let elfs = kernel_elfs();
    if elfs.is_empty() {
        eprintln!("KERNEL_ELF not set: run through make (test-host) or set it");
    }
    for path in elfs {
        check_kernel(&path);
    }
}

fn check_kernel(path: &std::path::Path) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let obj = object::File::parse(&*data).expect("kernel ELF");
    let (hdr, hdr_addr) = section(&obj, ".eh_frame_hdr");
    let (eh, eh_addr) = section(&obj, ".eh_frame");
    let module = Module::new(CfiSections {
        eh_frame_hdr: hdr,
        eh_frame_hdr_addr: hdr_addr,
        eh_frame: eh,
        eh_frame_addr: eh_addr,
    })
    .expect("kernel CFI");
    let compiled = compile(&module).expect("compile");
    let table = UnwindTable::parse(&compiled.bytes).expect("parse");
    assert_eq!(table.pc_range(), module.pc_range());
    let tables = [table];
    let gimli_only = [Module::new(CfiSections {
        eh_frame_hdr: hdr,
        eh_frame_hdr_addr: hdr_addr,
        eh_frame: eh,
        eh_frame_addr: eh_addr,
    })
    .unwrap()];
    let mut state = Box::new(UnwindState::new());

    let mut fdes = Vec::new();
    module.for_each_fde(|s, e| fdes.push((s, e))).unwrap();
    let code: Vec<_> = obj
        .sections()
        .filter(|s| s.kind() == object::SectionKind::Text)
        .map(|s| (s.address(), s.data().unwrap()))
        .collect();
    let (mut boundaries, mut same, mut fallback, mut steps) = (0usize, 0usize, 0usize, 0usize);
    let mut mismatches = Vec::new();
    for &(start, end) in &fdes {
        let Some(&(base, bytes)) = code
            .iter()
            .find(|(a, d)| start >= *a && end <= *a + d.len() as u64)
        else {
            panic!("FDE {start:#x}..{end:#x} outside the code sections");
        };
        let body = &bytes[(start - base) as usize..(end - base) as usize];
        let mut dec = Decoder::with_ip(64, body, start, DecoderOptions::NONE);
        while dec.can_decode() {
            let insn = dec.decode();
            let ip = insn.ip();
            boundaries += 1;
            for pc in [ip, ip + insn.len() as u64 - 1] {
                match check_row(&module, &table, pc) {
                    Ok(Verdict::Same) => same += 1,
                    Ok(Verdict::Fallback) => fallback += 1,
                    Ok(Verdict::NoFde) => mismatches.push(format!("{pc:#x}: no FDE inside an FDE")),
                    Err(e) => mismatches.push(e),
                }
            }
            // One unwinding step both ways, from a context in which every
            // register is known and from one with the callee-saved ones
            // only (what a walk starting at capture_regs! trusts).
            let regs = Regs {
                rip: ip,
                rsp: 0x7000_0000_0000 + (ip & 0xfff) * 8,
                rbp: 0x7000_0001_0000,
                rbx: 1,
                r11: 0x7000_0002_0000,
                ..Default::default()
            };
            for all in [true, false] {
                let a = Walk::new(&gimli_only, &Synthetic, &mut state, regs);
                let b = Walk::from_tables(&tables, &Synthetic, regs);
                let (a, b) = if all {
                    (a.with_all_registers_valid(), b.with_all_registers_valid())
                } else {
                    (a, b)
                };
                let ours = two_frames(b, |w| w.stop_reason());
                let theirs = two_frames(a, |w| w.stop_reason());
                if ours != theirs {
                    mismatches.push(format!(
                        "step at {ip:#x}: table {ours:x?} gimli {theirs:x?}"
                    ));
                }
                steps += 1;
            }
        }
    }
    println!(
        "kernel table {}: {} rows, {} descriptors, {} bytes; {boundaries} instructions, \
         {same} lookups equal to gimli, {fallback} falling back to gimli, {steps} steps compared",
        path.display(),
        compiled.rows,
        compiled.descriptors,
        compiled.bytes.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(10)]
    );
    assert!(
        boundaries > 1000,
        "suspiciously little code: {boundaries} instructions"
    );
    assert_eq!(
        fallback, 0,
        "the kernel walks tables only: no row may need gimli"
    );
    assert_eq!(compiled.fallback_rows, 0);
}

#[test]
fn host_tables_match_gimli_at_every_row() {
    let mut checked = 0usize;
    let mut fallback = 0usize;
    for m in host_modules() {
        let compiled = compile(m).expect("compile host CFI");
        let table = UnwindTable::parse(&compiled.bytes).expect("parse");
        assert_eq!(table.pc_range(), m.pc_range());
        for i in 0..table.rows() {
            let (start, _) = table.row(i).unwrap();
            for pc in [start.wrapping_sub(1), start, start + 1] {
                match check_row(m, &table, pc) {
                    Ok(Verdict::Fallback) => fallback += 1,
                    Ok(_) => {}
                    Err(e) => panic!("{e}"),
                }
                checked += 1;
            }
        }
    }
    println!("host tables: {checked} addresses checked, {fallback} falling back to gimli");
    assert!(checked > 1000);
}

#[test]
fn corrupt_tables_never_panic() {
    let m = &host_modules()[0];
    let good = compile(m).unwrap().bytes;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (lo, hi) = m.pc_range();
    let mut parsed = 0;
    for i in 0..3000 {
        let mut b = good.clone();
        match i % 3 {
            0 => {
                let n = (next() % b.len() as u64) as usize;
                b.truncate(n);
            }
            _ => {
                for _ in 0..1 + next() % 4 {
                    let at = (next() % b.len() as u64) as usize;
                    b[at] ^= 1 << (next() % 8);
                }
            }
        }
        let Ok(t) = UnwindTable::parse(&b) else {
            continue;
        };
        parsed += 1;
        let tables = [t];
        for _ in 0..20 {
            let pc = lo + next() % (hi - lo + 1);
            let regs = Regs {
                rip: pc,
                rsp: 0x1000,
                ..Default::default()
            };
            let n = Walk::from_tables(&tables, &Synthetic, regs)
                .with_limit(8)
                .count();
            assert!(n <= 8);
        }
    }
    assert!(parsed > 0, "no mutation left a parsable table");
}

#[test]
fn check_row_catches_a_wrong_descriptor() {
    let m = &host_modules()[0];
    let mut bytes = compile(m).unwrap().bytes;
    let t = UnwindTable::parse(&bytes).unwrap();
    let (start, _) = (0..t.rows())
        .map(|i| t.row(i).unwrap())
        .find(|(_, r)| matches!(r, svsm_unwinder::table::Row::Rules(_)))
        .expect("a row with rules");
    assert_eq!(check_row(m, &t, start), Ok(Verdict::Same));
    // Every descriptor's CFA offset + 8: the same lookups now disagree.
    let rows = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let descs = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
    let at = (32 + rows * 6).next_multiple_of(4);
    for d in 0..descs {
        let o = at + d * 44 + 4;
        let v = i32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) + 8;
        bytes[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    let t = UnwindTable::parse(&bytes).unwrap();
    let e = check_row(m, &t, start).unwrap_err();
    assert!(e.contains("CFA"), "{e}");
}
