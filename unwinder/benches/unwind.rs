//! `make bench-unwinder`: ns per frame, ours against libgcc's
//! `_Unwind_Backtrace`, unwinding the same host stack to its end. Prints
//! medians; asserts nothing about speed.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{ThreadStack, host_modules, libgcc_backtrace};
use std::hint::black_box;
use std::time::Instant;
use svsm_unwinder::capture_regs;
use svsm_unwinder::{Module, StopReason, UnwindState, Walk};

const SAMPLES: usize = 41;
const WALKS_PER_SAMPLE: usize = 200;
const DEPTH: u32 = 30;

#[inline(never)]
fn measure() {
    let regs = capture_regs!();
    let mem = ThreadStack::current();
    let modules = host_modules();
    let mut state = Box::new(UnwindState::new());

    // One walk each to learn the frame counts.
    let mut ours_frames = 0usize;
    let stop = Walk::new(modules, &mem, &mut state, regs)
        .with_limit(1024)
        .run(|_| ours_frames += 1);
    assert_eq!(stop, StopReason::EndOfStack);
    let mut theirs = Vec::with_capacity(1024);
    libgcc_backtrace(&mut theirs);
    // libgcc reports a final pseudo-frame with pc 0.
    let theirs_frames = theirs.iter().filter(|f| f.0 != 0).count();

    let mut ours_ns = Vec::new();
    let mut theirs_ns = Vec::new();
    for _ in 0..SAMPLES {
        let t = Instant::now();
        for _ in 0..WALKS_PER_SAMPLE {
            let mut n = 0u64;
            let walk = Walk::new(modules, &mem, &mut state, black_box(regs)).with_limit(1024);
            black_box(walk.run(|f| n = n.wrapping_add(f.pc)));
            black_box(n);
        }
        ours_ns.push(t.elapsed().as_nanos() as f64 / (WALKS_PER_SAMPLE * ours_frames) as f64);

        let t = Instant::now();
        for _ in 0..WALKS_PER_SAMPLE {
            theirs.clear();
            black_box(libgcc_backtrace(&mut theirs));
        }
        theirs_ns.push(t.elapsed().as_nanos() as f64 / (WALKS_PER_SAMPLE * theirs_frames) as f64);
    }
    println!(
        "unwind: ours   {:7.1} ns/frame (median of {SAMPLES} x {WALKS_PER_SAMPLE} walks, {ours_frames} frames)",
        svsm_testkit::median(&mut ours_ns).unwrap_or(0.0)
    );
    println!(
        "unwind: libgcc {:7.1} ns/frame (median of {SAMPLES} x {WALKS_PER_SAMPLE} walks, {theirs_frames} frames)",
        svsm_testkit::median(&mut theirs_ns).unwrap_or(0.0)
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
fn stack_use() -> usize {
    const PAINT: usize = 256 * 1024;
    std::thread::Builder::new()
        .stack_size(4 * PAINT)
        .spawn(|| {
            let mem = ThreadStack::current();
            let mut state = Box::new(UnwindState::new());
            let modules = host_modules();
            let rsp: u64;
            // SAFETY: reads rsp only.
            unsafe { std::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack)) };
            // Leave 4 KiB for the frames of this closure and of `paint_walk`.
            let base = (rsp - 4096 - PAINT as u64) as *mut u8;
            for i in 0..PAINT {
                // SAFETY: [base, base+PAINT) lies in this thread's 1 MiB
                // stack below every live frame.
                unsafe { base.add(i).write_volatile(0xa5) };
            }
            paint_walk(modules, &mem, &mut state);
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
fn paint_walk(modules: &[Module<'_>], mem: &ThreadStack, state: &mut UnwindState) {
    let regs = capture_regs!();
    let walk = Walk::new(modules, mem, state, regs).with_limit(1024);
    black_box(walk.run(|f| {
        black_box(f);
    }));
}

fn main() {
    // cargo bench passes --bench; any other argument is ignored.
    recurse(DEPTH);
    println!(
        "unwind: stack used by a walk (host release build, UnwindState of {} bytes on the heap): {} bytes",
        UnwindState::SIZE,
        stack_use()
    );
}
