//! Robustness: random stack contents and malformed CFI, in a deterministic
//! PRNG loop. The unwinder must terminate within the frame limit, never
//! panic, make no read after a refused one, and keep the stack pointer
//! growing between ordinary frames.

mod common;

use common::host_modules;
use common::synth::{FakeMem, Func, build};
use gimli::X86_64;
use gimli::write::CallFrameInstruction as I;
use std::cell::RefCell;
use svsm_testkit::Rng;
use svsm_unwinder::{CfiSections, Frame, Memory, Module, Regs, StopReason, UnwindState, Walk};

/// Memory whose contents are a deterministic function of the address,
/// biased towards plausible code and stack addresses; reads allowed only
/// in [lo, hi).
struct RandMem {
    lo: u64,
    hi: u64,
    seed: u64,
    code: Vec<(u64, u64)>,
    reads: RefCell<Vec<(u64, bool)>>,
}

impl Memory for RandMem {
    fn read_u64(&self, addr: u64) -> Option<u64> {
        let ok = addr >= self.lo && addr.checked_add(8).is_some_and(|e| e <= self.hi);
        self.reads.borrow_mut().push((addr, ok));
        if !ok {
            return None;
        }
        let mut r = Rng::new(self.seed ^ addr.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        r.next_u64();
        Some(match r.below(4) {
            0 | 1 => {
                let (s, e) = self.code[r.below(self.code.len() as u64) as usize];
                s + r.below(e - s + 1)
            }
            2 => self.lo + r.below(self.hi - self.lo + 64),
            _ => r.next_u64(),
        })
    }
}

fn check_walk<M: Memory>(
    modules: &[Module<'_>],
    mem: &M,
    reads: impl Fn() -> Vec<(u64, bool)>,
    regs: Regs,
    limit: usize,
    from_exception: bool,
) -> StopReason {
    let mut state = Box::new(UnwindState::new());
    let mut walk = Walk::new(modules, mem, &mut state, regs).with_limit(limit);
    if from_exception {
        walk = walk.from_exception(svsm_unwinder::ExceptionEntry {
            stub_pc: 0,
            stub_cfa: 0,
        });
    }
    let frames: Vec<Frame> = walk.by_ref().collect();
    let stop = walk
        .stop_reason()
        .expect("a finished walk has a stop reason");
    assert!(frames.len() <= limit);
    assert!(!frames.is_empty() || limit == 0);
    if stop == StopReason::FrameLimit {
        assert_eq!(frames.len(), limit);
    }
    for w in frames.windows(2) {
        if w[1].exception.is_none() {
            assert!(w[1].sp > w[0].sp, "sp did not grow: {w:x?}");
        }
    }
    let reads = reads();
    if let Some(i) = reads.iter().position(|r| !r.1) {
        assert_eq!(i, reads.len() - 1, "read after a refused read");
        assert_eq!(stop, StopReason::BadMemory);
    } else {
        assert_ne!(stop, StopReason::BadMemory);
    }
    assert!(reads.len() <= frames.len() * (8 + 256));
    stop
}

fn synth_funcs() -> Vec<Func> {
    vec![
        Func {
            start: 0x1000,
            len: 0x100,
            signal: false,
            insns: vec![(0, I::Undefined(X86_64::RA))],
        },
        Func {
            start: 0x2000,
            len: 0x100,
            signal: false,
            insns: vec![
                (1, I::CfaOffset(16)),
                (1, I::Offset(X86_64::RBP, -16)),
                (4, I::CfaRegister(X86_64::RBP)),
                (0x80, I::RememberState),
                (0x81, I::Cfa(X86_64::RSP, 8)),
                (0x90, I::RestoreState),
            ],
        },
        Func {
            start: 0x3000,
            len: 0x100,
            signal: true,
            insns: vec![
                (0, I::Cfa(X86_64::RSP, 48)),
                (0, I::Offset(X86_64::RA, -40)),
                (0, I::Offset(X86_64::RSP, -16)),
            ],
        },
        Func {
            start: 0x4000,
            len: 0x100,
            signal: false,
            insns: vec![
                (1, I::CfaOffset(16)),
                (1, I::Offset(X86_64::RBX, -16)),
                (2, I::Offset(X86_64::R12, -24)),
                (3, I::Register(X86_64::R13, X86_64::R14)),
            ],
        },
    ]
}

#[test]
fn random_stacks_with_synthetic_cfi() {
    let blob = build(&synth_funcs());
    let modules = [Module::new(blob.sections()).unwrap()];
    let code = vec![
        (0x1000, 0x1100),
        (0x2000, 0x2100),
        (0x3000, 0x3100),
        (0x4000, 0x4100),
    ];
    let mut rng = Rng::new(0x1234_5678_9abc_def1);
    let mut stops = std::collections::HashMap::new();
    for _ in 0..20_000 {
        let mem = RandMem {
            lo: 0x8000,
            hi: 0x8000 + 8 * (1 + rng.below(64)),
            seed: rng.next_u64(),
            code: code.clone(),
            reads: RefCell::default(),
        };
        let (s, e) = code[rng.below(4) as usize];
        let regs = Regs {
            rip: s + rng.below(e - s),
            rsp: mem.lo + 8 * rng.below(16),
            rbp: mem.lo + 8 * rng.below(16),
            ..Regs::default()
        };
        let limit = 1 + rng.below(32) as usize;
        let stop = check_walk(
            &modules,
            &mem,
            || mem.reads.borrow().clone(),
            regs,
            limit,
            rng.below(2) == 0,
        );
        *stops.entry(stop).or_insert(0u32) += 1;
    }
    // The generator reaches every way of stopping except malformed CFI.
    for r in [
        StopReason::EndOfStack,
        StopReason::NoFde,
        StopReason::CfaNotAdvancing,
        StopReason::FrameLimit,
        StopReason::BadMemory,
        StopReason::Loop,
    ] {
        assert!(stops.contains_key(&r), "{r} never happened: {stops:?}");
    }
}

#[test]
fn random_stacks_with_host_cfi() {
    let modules = host_modules();
    let code: Vec<(u64, u64)> = modules.iter().map(|m| m.pc_range()).collect();
    let mut rng = Rng::new(0xfeed_beef_0bad_cafe);
    for _ in 0..3_000 {
        let mem = RandMem {
            lo: 0x7f00_0000_0000,
            hi: 0x7f00_0000_0000 + 8 * (1 + rng.below(512)),
            seed: rng.next_u64(),
            code: code.clone(),
            reads: RefCell::default(),
        };
        let (s, e) = code[rng.below(code.len() as u64) as usize];
        let regs = Regs {
            rip: s + rng.below(e - s),
            rsp: mem.lo + 8 * rng.below(64),
            rbp: mem.lo + 8 * rng.below(64),
            rbx: rng.next_u64(),
            ..Regs::default()
        };
        check_walk(
            modules,
            &mem,
            || mem.reads.borrow().clone(),
            regs,
            48,
            false,
        );
    }
}

/// Flips, overwrites or truncates bytes.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(8) {
        if data.is_empty() {
            return;
        }
        let i = rng.below(data.len() as u64) as usize;
        match rng.below(4) {
            0 => data[i] ^= 1 << rng.below(8),
            1 => data[i] = rng.next_u64() as u8,
            2 => data[i] = [0, 0xff, 0x7f, 0x80][rng.below(4) as usize],
            _ => data.truncate(i),
        }
    }
}

fn fuzz_sections(
    base: &CfiSections<'_>,
    iterations: u32,
    seed: u64,
    pcs: (u64, u64),
) -> std::collections::HashSet<StopReason> {
    let mut stops = std::collections::HashSet::new();
    let mut rng = Rng::new(seed);
    let mut built = 0;
    for _ in 0..iterations {
        let mut hdr = base.eh_frame_hdr.to_vec();
        let mut eh = base.eh_frame.to_vec();
        match rng.below(3) {
            0 => mutate(&mut rng, &mut hdr),
            1 => mutate(&mut rng, &mut eh),
            _ => {
                mutate(&mut rng, &mut hdr);
                mutate(&mut rng, &mut eh);
            }
        }
        let sections = CfiSections {
            eh_frame_hdr: &hdr,
            eh_frame: &eh,
            ..*base
        };
        let Ok(module) = Module::new(sections) else {
            continue;
        };
        built += 1;
        let modules = [module];
        let _ = svsm_unwinder::coverage(&modules[0], pcs.0, pcs.1, None, |_, _, _| {});
        let mut mem = FakeMem {
            ranges: vec![(0x8000, 0x8400)],
            ..FakeMem::default()
        };
        for a in (0x8000..0x8400).step_by(8) {
            mem.set(a, pcs.0 + rng.below(pcs.1 - pcs.0));
        }
        for _ in 0..4 {
            let regs = Regs {
                rip: pcs.0 + rng.below(pcs.1 - pcs.0),
                rsp: 0x8000 + 8 * rng.below(64),
                rbp: 0x8000 + 8 * rng.below(64),
                ..Regs::default()
            };
            mem.reads.borrow_mut().clear();
            stops.insert(check_walk(
                &modules,
                &mem,
                || mem.reads.borrow().clone(),
                regs,
                32,
                false,
            ));
        }
    }
    eprintln!("{built}/{iterations} mutants parsed");
    assert!(built > iterations / 10, "too few mutants parsed: {built}");
    stops
}

#[test]
fn malformed_synthetic_cfi() {
    let blob = build(&synth_funcs());
    let stops = fuzz_sections(&blob.sections(), 20_000, 0x0dd_ba11, (0x1000, 0x4100));
    assert!(stops.contains(&StopReason::BadCfi), "{stops:?}");
}

#[test]
fn malformed_host_cfi() {
    // The test binary's own (large, compiler-generated) CFI, mutated.
    let m = &host_modules()[0];
    let exe = std::fs::read("/proc/self/exe").unwrap();
    let obj = object::File::parse(&*exe).unwrap();
    use object::{Object, ObjectSection};
    let sec = |n: &str| obj.section_by_name(n).expect(n);
    let hdr = sec(".eh_frame_hdr");
    let eh = sec(".eh_frame");
    let base = CfiSections {
        eh_frame_hdr: hdr.data().unwrap(),
        eh_frame_hdr_addr: hdr.address(),
        eh_frame: eh.data().unwrap(),
        eh_frame_addr: eh.address(),
    };
    let pristine = Module::new(base).expect("pristine host CFI");
    // The load bias moves the runtime module, not the file.
    assert_eq!(pristine.fde_count(), m.fde_count());
    let stops = fuzz_sections(&base, 3000, 0x5eed, pristine.pc_range());
    assert!(stops.contains(&StopReason::BadCfi), "{stops:?}");
}

/// Writes seed inputs for the cargo-fuzz target (see unwinder/fuzz):
/// `SVSM_FUZZ_SEEDS=<dir> cargo test -p svsm-unwinder --test robustness -- --ignored`.
#[test]
#[ignore = "tool: writes cargo-fuzz seed inputs"]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("SVSM_FUZZ_SEEDS") else {
        return;
    };
    let blob = build(&synth_funcs());
    let mut rng = Rng::new(42);
    for n in 0..16 {
        let mut d = Vec::new();
        d.extend_from_slice(&(blob.eh_frame_hdr.len() as u16).to_le_bytes());
        d.extend_from_slice(&(blob.eh_frame.len() as u16).to_le_bytes());
        let regs = [0x4020, 0x8000 + 8 * rng.below(16), 0x8100, 1, 2, 3, 4, 5];
        for r in regs {
            d.extend_from_slice(&u64::to_le_bytes(r));
        }
        d.extend_from_slice(&blob.eh_frame_hdr);
        d.extend_from_slice(&blob.eh_frame);
        for _ in 0..32 {
            let v =
                [0x1050, 0x2010, 0x3010, 0x4010, 0x8000 + 8 * rng.below(32)][rng.below(5) as usize];
            d.extend_from_slice(&u64::to_le_bytes(v));
        }
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("seed{n}")), d).unwrap();
    }
}
