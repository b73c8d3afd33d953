//! Benchmark (not a test): median wall time of `stackcheck check` against
//! `objdump -d` on the same ELF. Run by `make bench-stackcheck`:
//!
//! bench <stackcheck-binary> <config> <kernel-elf> [third-party-elf ...]
//!
//! The kernel is checked with the real config (`--only kernel`); other ELFs
//! with `--all-functions` (every function sized and bounded).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 7;

fn time(cmd: &mut Command) -> Result<Duration, String> {
    let start = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let t = start.elapsed();
    // stackcheck exits 1 on budget violations; only 2 (bad input) is an error here.
    match status.code() {
        Some(0) | Some(1) => Ok(t),
        other => Err(format!("{cmd:?} exited with {other:?}")),
    }
}

fn bench(label: &str, elf: &Path, mut check: impl FnMut() -> Command) -> Result<(), String> {
    let size = std::fs::metadata(elf)
        .map_err(|e| format!("{}: {e}", elf.display()))?
        .len();
    // Warm the page cache once for both tools.
    time(&mut check())?;
    time(Command::new("objdump").arg("-d").arg(elf))?;
    let mut sc = Vec::new();
    let mut od = Vec::new();
    for _ in 0..RUNS {
        sc.push(time(&mut check())?);
        od.push(time(Command::new("objdump").arg("-d").arg(elf))?);
    }
    let (s, o) = (
        svsm_testkit::median(&mut sc).unwrap_or_default(),
        svsm_testkit::median(&mut od).unwrap_or_default(),
    );
    println!(
        "{label:<14} {:>9.1} MiB  stackcheck check {:>9.1} ms   objdump -d {:>9.1} ms   ratio {:.3}  (median of {RUNS})",
        size as f64 / (1024.0 * 1024.0),
        s.as_secs_f64() * 1e3,
        o.as_secs_f64() * 1e3,
        s.as_secs_f64() / o.as_secs_f64()
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: bench <stackcheck> <config> <kernel-elf> [other-elf ...]");
        std::process::exit(2);
    }
    let (bin, config, kernel) = (&args[0], &args[1], Path::new(&args[2]));
    let mut failed = false;
    if kernel.exists() {
        let r = bench("kernel", kernel, || {
            let mut c = Command::new(bin);
            c.args(["check", "--config", config, "--only", "kernel", "--image"])
                .arg(format!("kernel={}", kernel.display()));
            c
        });
        if let Err(e) = r {
            eprintln!("kernel: {e}");
            failed = true;
        }
    } else {
        println!("kernel         {} not built: skipped", kernel.display());
    }
    for other in &args[3..] {
        let p = Path::new(other);
        let label = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let r = bench(&label, p, || {
            let mut c = Command::new(bin);
            c.args(["check", "--all-functions", "--elf"]).arg(p);
            c
        });
        if let Err(e) = r {
            eprintln!("{label}: {e}");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
