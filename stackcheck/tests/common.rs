//! Shared helpers for the integration tests: build fixtures into
//! CARGO_TARGET_TMPDIR.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn tmp(sub: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(sub);
    std::fs::create_dir_all(&p).expect("create tmp dir");
    p
}

pub fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Assemble/compile and link a freestanding fixture with gcc.
pub fn gcc_link(srcs: &[PathBuf], out: &Path, extra: &[&str]) {
    let mut c = Command::new("gcc");
    c.args([
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--no-relax",
        "-Wl,-e,0",
        "-g",
    ]);
    c.args(extra).args(srcs).arg("-o").arg(out);
    run(&mut c);
}

/// Build one of the hand-written call-graph fixtures (a fresh file per call:
/// tests run in parallel).
pub fn graph_fixture(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let k = N.fetch_add(1, Ordering::Relaxed);
    let out = tmp("graphs").join(format!("{name}-{}-{k}", std::process::id()));
    gcc_link(
        &[fixtures().join("graphs").join(format!("{name}.S"))],
        &out,
        &[],
    );
    out
}
