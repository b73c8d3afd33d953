//! Unwinds this test binary's own stack and compares it frame for frame
//! with libgcc's `_Unwind_Backtrace` for the same call chain.

mod common;

use common::{
    ThreadStack, URC_END_OF_STACK, host_modules, host_modules_with_tables, host_tables,
    libgcc_backtrace,
};
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

/// The same walk through the compact tables, gimli as the fallback.
#[inline(never)]
fn ours_tabled(out: &mut Out) {
    let regs = capture_regs!();
    let mem = ThreadStack::current();
    let mut state = Box::new(UnwindState::new());
    let walk = Walk::new(host_modules_with_tables(), &mem, &mut state, regs).with_limit(512);
    out.stop = Some(walk.run(|f| out.frames.push((f.pc, f.sp))));
}

/// The same walk through the compact tables only (the kernel's way).
#[inline(never)]
fn ours_tables_only(out: &mut Out) {
    let regs = capture_regs!();
    let mem = ThreadStack::current();
    let walk = Walk::from_tables(host_tables(), &mem, regs).with_limit(512);
    out.stop = Some(walk.run(|f| out.frames.push((f.pc, f.sp))));
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

/// `UnwindState::new_unprepared` is a `const fn`: a state built at compile
/// time in a static and prepared once walks like a fresh one, and again when
/// reused; an unprepared one stops at once.
#[test]
fn static_state_walks_like_a_fresh_one() {
    static STATE: std::sync::Mutex<UnwindState> =
        std::sync::Mutex::new(UnwindState::new_unprepared());
    {
        let mut unprepared = UnwindState::new_unprepared();
        let regs = capture_regs!();
        let mem = ThreadStack::current();
        let mut n = 0;
        let stop = Walk::new(host_modules(), &mem, &mut unprepared, regs).run(|_| n += 1);
        assert_eq!((n, stop), (1, StopReason::BadCfi));
        STATE.lock().unwrap().prepare();
    }
    #[inline(never)]
    fn walk_with(state: &mut UnwindState) -> (Vec<(u64, u64)>, StopReason) {
        let regs = capture_regs!();
        let mem = ThreadStack::current();
        let mut frames = Vec::new();
        let stop = Walk::new(host_modules(), &mem, state, regs)
            .with_limit(512)
            .run(|f| frames.push((f.pc, f.sp)));
        (frames, stop)
    }
    let mut fresh = Box::new(UnwindState::new());
    // Same call site for all three walks, so the stacks match.
    let mut out = Vec::new();
    for i in 0..black_box(3) {
        let mut guard;
        let state: &mut UnwindState = if i == 0 {
            &mut fresh
        } else {
            guard = STATE.lock().unwrap();
            &mut guard
        };
        out.push(walk_with(state));
    }
    assert_eq!(out[0].1, StopReason::EndOfStack);
    assert!(out[0].0.len() >= 5, "{:x?}", out[0].0);
    // The compiler may duplicate the call site, so frame #01's return
    // address may differ; compare the functions it returns into.
    let norm = |(frames, stop): &(Vec<(u64, u64)>, StopReason)| {
        let f: Vec<_> = frames
            .iter()
            .enumerate()
            .map(|(i, &(pc, sp))| (if i == 1 { fde_start(pc) } else { Some(pc) }, sp))
            .collect();
        (f, *stop)
    };
    assert_eq!(norm(&out[1]), norm(&out[0]));
    assert_eq!(norm(&out[2]), norm(&out[0]));
}

/// FDE lookups through the search table (searched in place for the usual
/// encoding) agree with the table as gimli iterates it, for every FDE of
/// every loaded image.
#[test]
fn fde_lookup_agrees_with_table_iteration() {
    let mut checked = 0;
    for m in host_modules() {
        let mut fdes = Vec::new();
        m.for_each_fde(|s, e| fdes.push((s, e))).unwrap();
        assert_eq!(fdes.len(), m.fde_count());
        for (i, &(start, end)) in fdes.iter().enumerate() {
            let next = fdes.get(i + 1).map_or(u64::MAX, |n| n.0);
            if end <= start || next <= start || (i > 0 && fdes[i - 1].1 > start) {
                continue; // empty, duplicate or overlapping: ambiguous
            }
            assert_eq!(m.fde_range(start), Some((start, end)), "{start:#x}");
            assert_eq!(m.fde_range(end - 1), Some((start, end)), "{end:#x}");
            if next > end && next != u64::MAX {
                assert_eq!(m.fde_range(end), None, "gap at {end:#x}");
            }
            checked += 1;
        }
        let (lo, _) = m.pc_range();
        assert_eq!(m.fde_range(lo.wrapping_sub(1)), None);
    }
    assert!(checked > 100, "only {checked} FDEs checked");
}

#[test]
fn table_walks_match_gimli_and_libgcc_frame_for_frame() {
    let mut outs: [Out; 4] = Default::default();
    let probes: [Probe; 4] = black_box([ours, ours_tabled, ours_tables_only, theirs]);
    for i in 0..black_box(4usize) {
        chain1(probes[i], &mut outs[i]);
    }
    let [gimli, tabled, tables_only, libgcc] = outs;
    assert_eq!(gimli.stop, Some(StopReason::EndOfStack));
    // Frame #00 is each probe itself; from #01 on the chains are the same.
    for (name, o) in [("table + gimli", &tabled), ("table only", &tables_only)] {
        assert_eq!(o.stop, gimli.stop, "{name}: {:x?}", o.frames);
        assert_eq!(o.frames[1..], gimli.frames[1..], "{name}");
    }
    // And against libgcc directly (its extra pc-0 pseudo-frame dropped).
    let skip = libgcc
        .frames
        .iter()
        .position(|f| f.0 == tables_only.frames[1].0)
        .expect("libgcc reaches the chain");
    let theirs: Vec<_> = libgcc.frames[skip..].iter().filter(|f| f.0 != 0).collect();
    let ours: Vec<_> = tables_only.frames[1..].iter().collect();
    assert_eq!(ours, theirs);
}
