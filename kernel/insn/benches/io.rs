//! `make bench-insn`: decode + emulate cost per trapping instruction on the
//! host (ns, medians), next to iced-x86's decode alone of the same bytes as
//! the reference. Prints; asserts nothing about speed.

#[path = "../tests/machine/mod.rs"]
mod machine;

use iced_x86::{Decoder, DecoderOptions};
use machine::{Dev, Guest};
use std::hint::black_box;
use svsm_insn::{Mode, SliceFetch, decode, emulate};
use svsm_testkit::median_ns;

const RIP: u64 = 0x40_1000;
const RUNS: usize = 31;
const ITERS: u32 = 20_000;

fn main() {
    let cases: [(&str, &[u8]); 6] = [
        ("in al, dx", &[0xEC]),
        ("out 0x80, al", &[0xE6, 0x80]),
        ("66 out dx, ax", &[0x66, 0xEF]),
        ("rep outsb (1 element)", &[0xF3, 0x6E]),
        ("mov [rbx+0xb0], eax (MMIO)", &[0x89, 0x83, 0xB0, 0, 0, 0]),
        ("movzx ecx, word fs:[rax] (MMIO)", &[0x64, 0x0F, 0xB7, 0x08]),
    ];
    println!(
        "{:<34} {:>14} {:>16} {:>14}",
        "instruction", "decode (ns)", "decode+emulate", "iced decode"
    );
    for (name, bytes) in cases {
        let mut g = Guest::default();
        g.map(0, 64);
        let mut d = Dev::default();
        let dec = median_ns(RUNS, ITERS, || {
            let mut f = SliceFetch {
                base: RIP,
                bytes: black_box(bytes),
            };
            black_box(decode(&mut f, RIP, Mode::Long64).ok());
        });
        let both = median_ns(RUNS, ITERS, || {
            let mut f = SliceFetch {
                base: RIP,
                bytes: black_box(bytes),
            };
            let insn = decode(&mut f, RIP, Mode::Long64).expect("decodes");
            g.rip = RIP;
            g.gpr[1] = 1; // one REP iteration
            g.gpr[6] = 0;
            let _ = black_box(emulate(&insn, &mut g, &mut d, 1));
            d.log.clear();
        });
        let iced = median_ns(RUNS, ITERS, || {
            let mut dec = Decoder::with_ip(64, black_box(bytes), RIP, DecoderOptions::NONE);
            black_box(dec.decode());
        });
        println!("{name:<34} {dec:>14.1} {both:>16.1} {iced:>14.1}");
    }
}
