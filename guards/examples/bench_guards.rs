//! Prints medians (no assertions): classification against a full kernel
//! registry, and the high-water scan of a 64 KiB stack.
//! Run: cargo run --release -p svsm-guards --example bench_guards
use std::hint::black_box;
use svsm_guards::*;
use svsm_testkit::median_ns;

fn main() {
    let mut reg: Box<StackRegistry> = Box::new(StackRegistry::new());
    reg.register_boot_stack().unwrap();
    while reg.len() < MAX_STACKS {
        reg.allocate(StackKind::Task, Owner::cpu(0), "t").unwrap();
    }
    let last = reg.iter().last().unwrap().1.range;
    let hit = last.bottom - 8;
    println!(
        "classify, {} stacks, last entry: median {:.1} ns",
        reg.len(),
        median_ns(21, 10_000, || {
            black_box(reg.classify(black_box(hit)));
        })
    );
    println!(
        "classify, {} stacks, unrelated: median {:.1} ns",
        reg.len(),
        median_ns(21, 10_000, || {
            black_box(reg.classify(black_box(0x1000)));
        })
    );
    let mut stack = vec![0u8; 64 * 1024];
    paint(&mut stack);
    stack[60 * 1024] = 1;
    println!(
        "high_water, 64 KiB stack, 4 KiB used: median {:.1} us",
        median_ns(21, 200, || {
            black_box(high_water(black_box(&stack)));
        }) / 1000.0
    );
    println!(
        "paint, 64 KiB stack: median {:.1} us",
        median_ns(21, 200, || paint(black_box(&mut stack))) / 1000.0
    );
}
