//! Shared helpers for the integration tests: build fixtures into
//! CARGO_TARGET_TMPDIR.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the stackcheck binary under test with `args`.
pub fn stackcheck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(args)
        .output()
        .expect("run stackcheck")
}

/// The exit code; a signal or abort (a panic) fails the test.
pub fn code(o: &Output) -> i32 {
    o.status
        .code()
        .expect("exited normally (no signal, no abort)")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

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

/// Parse `.stack_sizes`: (u64 address, ULEB128 size) pairs.
pub fn stack_sizes(data: &[u8]) -> BTreeMap<u64, u64> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(data).expect("parse fixture");
    let sec = file
        .section_by_name(".stack_sizes")
        .expect("fixture has .stack_sizes");
    let b = sec.data().expect("section data");
    let mut out = BTreeMap::new();
    let mut p = 0;
    while p + 8 <= b.len() {
        let addr = u64::from_le_bytes(b[p..p + 8].try_into().unwrap());
        p += 8;
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let c = b[p];
            p += 1;
            v |= u64::from(c & 0x7f) << shift;
            shift += 7;
            if c < 0x80 {
                break;
            }
        }
        out.insert(addr, v);
    }
    out
}
