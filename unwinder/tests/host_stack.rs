//! Unwinds this test binary's own stack and compares it frame for frame
//! with libgcc's `_Unwind_Backtrace` for the same call chain.

mod common;

use common::{ThreadStack, URC_END_OF_STACK, host_modules, libgcc_backtrace};
use std::hint::black_box;
use svsm_unwinder::capture_regs;
use svsm_unwinder::{StopReason, UnwindState, Walk};

#[derive(Default)]
struct Out {
    frames: Vec<(u64, u64)>,
    stop: Option<StopReason>,
    rc: i32,
}

type Probe = fn(&mut Out);

#[inline(never)]
fn ours(out: &mut Out) {
    let regs = capture_regs!();
    let mem = ThreadStack::current();
    let mut state = Box::new(UnwindState::new());
    let walk = Walk::new(host_modules(), &mem, &mut state, regs).with_limit(512);
    let stop = walk.run(|f| out.frames.push((f.pc, f.sp)));
    out.stop = Some(stop);
}

#[inline(never)]
fn theirs(out: &mut Out) {
    out.rc = libgcc_backtrace(&mut out.frames);
    black_box(&out);
}

#[inline(never)]
fn chain5(p: Probe, out: &mut Out) {
    p(out);
    black_box(out.frames.len());
}
#[inline(never)]
fn chain4(p: Probe, out: &mut Out) {
    chain5(p, out);
    black_box(out.frames.len());
}
#[inline(never)]
fn chain3(p: Probe, out: &mut Out) {
    // Reach chain4 through a closure driven by a core iterator.
    (0..black_box(1)).for_each(|_| chain4(p, out));
    black_box(out.frames.len());
}
#[inline(never)]
fn chain2(p: Probe, out: &mut Out) {
    chain3(p, out);
    black_box(out.frames.len());
}
#[inline(never)]
fn chain1(p: Probe, out: &mut Out) {
    chain2(p, out);
    black_box(out.frames.len());
}

fn addr(f: Probe2) -> u64 {
    f as *const () as u64
}
type Probe2 = fn(Probe, &mut Out);

fn fde_start(pc: u64) -> Option<u64> {
    host_modules()
        .iter()
        .find_map(|m| m.fde_range(pc - 1))
        .map(|r| r.0)
}

fn run_both() -> (Out, Out) {
    let mut outs = [Out::default(), Out::default()];
    let probes: [Probe; 2] = black_box([ours, theirs]);
    // One call site for both probes (an opaque trip count keeps the loop
    // from being unrolled), so every return address above the probe is the
    // same in both backtraces.
    for i in 0..black_box(2usize) {
        chain1(probes[i], &mut outs[i]);
    }
    let [a, b] = outs;
    (a, b)
}

#[test]
fn matches_libgcc_frame_for_frame() {
    assert!(!host_modules().is_empty(), "no PT_GNU_EH_FRAME found");
    let (ours, theirs) = run_both();
    assert_eq!(
        ours.stop,
        Some(StopReason::EndOfStack),
        "ours: {:x?}",
        ours.frames
    );
    assert_eq!(theirs.rc, URC_END_OF_STACK);

    // Frame #01 of ours is the return address into chain5; libgcc starts
    // with its own entry frames, which we skip.
    let first = ours.frames[1].0;
    let skip = theirs
        .frames
        .iter()
        .position(|f| f.0 == first)
        .unwrap_or_else(|| panic!("libgcc never reached {first:#x}: {:x?}", theirs.frames));
    assert!(skip <= 3, "libgcc has {skip} frames before the chain");
    let ours_tail = &ours.frames[1..];
    let mut theirs_tail = &theirs.frames[skip..];
    // libgcc turns an undefined return address into ra = 0 and reports one
    // more pseudo-frame with pc 0 before END_OF_STACK; we end at the
    // outermost real frame instead.
    if let Some((&(0, _), rest)) = theirs_tail.split_last() {
        theirs_tail = rest;
    }
    assert_eq!(
        ours_tail.iter().map(|f| f.0).collect::<Vec<_>>(),
        theirs_tail.iter().map(|f| f.0).collect::<Vec<_>>(),
        "pc lists differ"
    );
    // libgcc's CFA for a frame is that frame's stack pointer.
    assert_eq!(ours_tail, theirs_tail, "sp lists differ");
    assert!(
        ours_tail.len() >= 7,
        "suspiciously short: {:x?}",
        ours.frames
    );

    // The chain appears in order (chain3 may show an extra closure/iterator
    // frame between chain4 and chain3 depending on inlining).
    let starts: Vec<u64> = ours.frames[1..]
        .iter()
        .filter_map(|f| fde_start(f.0))
        .collect();
    let want = [
        addr(chain5),
        addr(chain4),
        addr(chain3),
        addr(chain2),
        addr(chain1),
    ];
    let mut pos = 0;
    for w in want {
        let i = starts[pos..]
            .iter()
            .position(|&s| s == w)
            .unwrap_or_else(|| panic!("chain function {w:#x} missing from {starts:x?}"));
        pos += i + 1;
    }
    assert_eq!(starts[0], addr(chain5));
    assert_eq!(starts[1], addr(chain4));
}

#[test]
fn frame_zero_is_exact_and_in_probe() {
    let (ours_out, _) = run_both();
    assert_eq!(
        fde_start(ours_out.frames[0].0 + 1),
        Some(ours as *const () as u64)
    );
}

#[test]
fn frame_limit_stops_walk() {
    let regs = capture_regs!();
    let mem = ThreadStack::current();
    let mut state = Box::new(UnwindState::new());
    let mut walk = Walk::new(host_modules(), &mem, &mut state, regs).with_limit(2);
    assert!(walk.next().is_some());
    assert!(walk.next().is_some());
    assert!(walk.next().is_none());
    assert_eq!(walk.stop_reason(), Some(StopReason::FrameLimit));
}
