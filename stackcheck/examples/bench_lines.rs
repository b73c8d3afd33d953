//! Benchmark (not a test): file:line with inline chains for every function
//! of an ELF (start and middle), as the report does for large moves and
//! worst paths: stackcheck's lookup (the `addr2line` crate) against GNU
//! binutils' `addr2line -i` on the same addresses. Medians of RUNS runs.
//! Run by `make bench-stackcheck`:
//!
//! bench_lines <elf>

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stackcheck::dwarf::LineIndex;

const RUNS: usize = 5;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: bench_lines <elf>");
        std::process::exit(2);
    };
    let data = std::fs::read(&path).expect("read the ELF");
    let img = stackcheck::elf::Image::parse(&data).expect("parse the ELF");
    let addrs: Vec<u64> = img
        .functions
        .iter()
        .flat_map(|f| [f.addr, f.addr + (f.end() - f.addr) / 2])
        .collect();
    let mut ours = Vec::new();
    let mut found = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        let idx = LineIndex::new(&data);
        found = addrs
            .iter()
            .filter(|&&a| idx.user_location(a).is_some())
            .count();
        ours.push(t.elapsed());
    }
    let input: String = addrs.iter().map(|a| format!("{a:#x}\n")).collect();
    let mut gnu = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let mut c = Command::new("addr2line")
            .args(["-i", "-e", &path])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("binutils addr2line");
        c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        c.wait().unwrap();
        gnu.push(t.elapsed());
    }
    println!(
        "{path}: {} addresses ({found} with a location): stackcheck (addr2line crate) median {:.1} ms, binutils addr2line -i median {:.1} ms",
        addrs.len(),
        ms(svsm_testkit::median(&mut ours).unwrap_or_default()),
        ms(svsm_testkit::median(&mut gnu).unwrap_or_default())
    );
}
