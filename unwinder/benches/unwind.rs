//! `make bench-unwinder`: ns per frame against libgcc's
//! `_Unwind_Backtrace`, unwinding the same host stack to its end, and the
//! stack a walk uses. Three ways of walking: gimli only; the compact table
//! with gimli as the fallback; the compact table only (what the kernel's
//! fault path runs). Prints medians; asserts nothing about speed.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{ThreadStack, host_modules, host_modules_with_tables, host_tables, libgcc_backtrace};
use std::hint::black_box;
use std::time::Instant;
use svsm_unwinder::capture_regs;
use svsm_unwinder::{Regs, StopReason, UnwindState, Walk};

const SAMPLES: usize = 41;
const WALKS_PER_SAMPLE: usize = 200;
const DEPTH: u32 = 30;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    Gimli,
    TableAndGimli,
    TableOnly,
}

impl Way {
    const ALL: [Way; 3] = [Way::Gimli, Way::TableAndGimli, Way::TableOnly];

    fn name(self) -> &'static str {
        match self {
            Way::Gimli => "ours, gimli only      ",
            Way::TableAndGimli => "ours, table + gimli   ",
            Way::TableOnly => "ours, table only      ",
        }
    }
}

/// One whole walk; returns (frames, stop reason). Each way is its own
/// out-of-line function, so the stack measurement of one way does not
/// include the others' locals.
fn walk_once(
    way: Way,
    mem: &ThreadStack,
    state: &mut UnwindState,
    regs: Regs,
) -> (usize, StopReason) {
    match way {
        Way::Gimli => walk_gimli(mem, state, regs),
        Way::TableAndGimli => walk_table_and_gimli(mem, state, regs),
        Way::TableOnly => walk_table_only(mem, regs),
    }
}

#[inline(never)]
fn walk_gimli(mem: &ThreadStack, state: &mut UnwindState, regs: Regs) -> (usize, StopReason) {
    let (mut n, mut sum) = (0usize, 0u64);
    let stop = Walk::new(host_modules(), mem, state, regs)
        .with_limit(1024)
        .run(|f| {
            n += 1;
            sum = sum.wrapping_add(f.pc)
        });
    black_box(sum);
    (n, stop)
}

#[inline(never)]
fn walk_table_and_gimli(
    mem: &ThreadStack,
    state: &mut UnwindState,
    regs: Regs,
) -> (usize, StopReason) {
    let (mut n, mut sum) = (0usize, 0u64);
    let stop = Walk::new(host_modules_with_tables(), mem, state, regs)
        .with_limit(1024)
        .run(|f| {
            n += 1;
            sum = sum.wrapping_add(f.pc)
        });
    black_box(sum);
    (n, stop)
}

#[inline(never)]
fn walk_table_only(mem: &ThreadStack, regs: Regs) -> (usize, StopReason) {
    let (mut n, mut sum) = (0usize, 0u64);
    let stop = Walk::from_tables(host_tables(), mem, regs)
        .with_limit(1024)
        .run(|f| {
            n += 1;
            sum = sum.wrapping_add(f.pc)
        });
    black_box(sum);
    (n, stop)
}

#[inline(never)]
fn measure() {
    let regs = capture_regs!();
    let mem = ThreadStack::current();
    let mut state = Box::new(UnwindState::new());

    let mut theirs = Vec::with_capacity(1024);
    libgcc_backtrace(&mut theirs);
    // libgcc reports a final pseudo-frame with pc 0.
    let theirs_frames = theirs.iter().filter(|f| f.0 != 0).count();
    let mut ns = vec![Vec::new(); Way::ALL.len()];
    let mut frames = [0usize; 3];
    for (i, way) in Way::ALL.into_iter().enumerate() {
        let (n, stop) = walk_once(way, &mem, &mut state, regs);
        frames[i] = n;
        assert_eq!(stop, StopReason::EndOfStack, "{way:?}");
    }
    let mut theirs_ns = Vec::new();
    for _ in 0..SAMPLES {
        for (i, way) in Way::ALL.into_iter().enumerate() {
            let t = Instant::now();
            for _ in 0..WALKS_PER_SAMPLE {
                black_box(walk_once(way, &mem, &mut state, black_box(regs)));
            }
            ns[i].push(t.elapsed().as_nanos() as f64 / (WALKS_PER_SAMPLE * frames[i]) as f64);
        }
        let t = Instant::now();
        for _ in 0..WALKS_PER_SAMPLE {
            theirs.clear();
            black_box(libgcc_backtrace(&mut theirs));
        }
        theirs_ns.push(t.elapsed().as_nanos() as f64 / (WALKS_PER_SAMPLE * theirs_frames) as f64);
    }
    let libgcc = median(theirs_ns);
    for (i, way) in Way::ALL.into_iter().enumerate() {
        let m = median(std::mem::take(&mut ns[i]));
        println!(
            "unwind: {} {m:7.1} ns/frame = {:.2}x libgcc (median of {SAMPLES} x {WALKS_PER_SAMPLE} walks, {} frames)",
            way.name(),
            m / libgcc,
            frames[i]
        );
    }
    println!(
        "unwind: libgcc                 {libgcc:7.1} ns/frame (median of {SAMPLES} x {WALKS_PER_SAMPLE} walks, {theirs_frames} frames)"
    );
}

#[inline(never)]
fn recurse(n: u32) {
    if n == 0 {
        measure();
    } else {
        recurse(black_box(n - 1));
    }
    black_box(n);
}

/// Stack bytes a full walk uses below its caller (host build, release):
/// paints the stack below rsp, walks, and finds the lowest changed byte.
fn stack_use(way: Way) -> usize {
    const PAINT: usize = 256 * 1024;
    std::thread::Builder::new()
        .stack_size(4 * PAINT)
        .spawn(move || {
            let mem = ThreadStack::current();
            let mut state = Box::new(UnwindState::new());
            // Build the tables before painting.
            black_box((host_tables(), host_modules_with_tables()));
            let rsp: u64;
            // SAFETY: reads rsp only.
            unsafe { std::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack)) };
            // Paint from just below the red zone (128 bytes the closure may
            // use below rsp): everything lower is the walk's.
            let base = (rsp - 256 - PAINT as u64) as *mut u8;
            for i in 0..PAINT {
                // SAFETY: [base, base+PAINT) lies in this thread's 1 MiB
                // stack below every live frame.
                unsafe { base.add(i).write_volatile(0xa5) };
            }
            paint_walk(way, &mem, &mut state);
            (0..PAINT)
                // SAFETY: as above.
                .find(|&i| unsafe { base.add(i).read_volatile() } != 0xa5)
                .map_or(0, |i| (rsp - (base as u64 + i as u64)) as usize)
        })
        .unwrap()
        .join()
        .unwrap()
}

#[inline(never)]
fn paint_walk(way: Way, mem: &ThreadStack, state: &mut UnwindState) {
    let regs = capture_regs!();
    black_box(match way {
        Way::Gimli => walk_gimli(mem, state, regs),
        Way::TableAndGimli => walk_table_and_gimli(mem, state, regs),
        Way::TableOnly => walk_table_only(mem, regs),
    });
}

fn main() {
    // cargo bench passes --bench; any other argument is ignored.
    recurse(DEPTH);
    for way in Way::ALL {
        println!(
            "unwind: stack used by a walk, {} {} bytes (host release build; gimli's UnwindState of {} bytes on the heap)",
            way.name(),
            stack_use(way),
            UnwindState::SIZE,
        );
    }
}
