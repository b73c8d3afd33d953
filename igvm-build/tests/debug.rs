//! `igvm-build debug` (behind `make debug`) on the real image: the gdb
//! command it prints attaches to QEMU's gdbstub, loads the kernel's symbols
//! and stops at the kernel's entry point. Needs the built image, like the
//! boot tests: SVSM_IGVM and SVSM_KERNEL_ELF (`make test-qemu` sets them).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Splits a line printed for a POSIX shell (words, '...' quoting).
fn shell_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            _ => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

#[test]
#[ignore = "needs the built image (make test-qemu)"]
fn printed_gdb_command_attaches_and_stops_at_the_kernel_entry() {
    let igvm = std::env::var("SVSM_IGVM").expect("SVSM_IGVM");
    let kernel = std::env::var("SVSM_KERNEL_ELF").expect("SVSM_KERNEL_ELF");
    let entry = igvm_build::elf::load(kernel.as_ref(), "kernel")
        .unwrap()
        .entry;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let work = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("debug-work");
    let mut dbg = Command::new(env!("CARGO_BIN_EXE_igvm-build"))
        .args([
            "debug",
            &igvm,
            "--kernel",
            &kernel,
            "--port",
            &port.to_string(),
        ])
        .arg("--work-dir")
        .arg(&work)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(dbg.stderr.take().unwrap());
    let mut gdb_line = None;
    let mut line = String::new();
    // The gdb command, then the QEMU command line (QEMU starts next).
    while stderr.read_line(&mut line).unwrap() > 0 {
        if line.trim_start().starts_with("gdb ") {
            gdb_line = Some(line.trim().to_string());
        }
        if line.contains("qemu-system") && gdb_line.is_some() {
            break;
        }
        line.clear();
    }
    let gdb_line = gdb_line.expect("igvm-build debug printed a gdb command");
    let words = shell_words(&gdb_line);
    let start = Instant::now();
    let out = loop {
        let out = Command::new(&words[0])
            .args(&words[1..])
            .args(["-batch", "-ex", "p/x $pc", "-ex", "kill"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if !text.contains("Connection refused") || start.elapsed() > Duration::from_secs(30) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = dbg.kill();
    let _ = dbg.wait();
    assert!(out.contains(&format!("= {entry:#x}")), "{gdb_line}\n{out}");
    assert!(out.contains("Breakpoint 1"), "{out}");
    assert!(work.join("reset-rom.bin").exists(), "work directory kept");
}

#[test]
fn shell_words_undo_the_quoting() {
    assert_eq!(
        shell_words("gdb -q k -ex 'target remote 127.0.0.1:1' -ex continue"),
        [
            "gdb",
            "-q",
            "k",
            "-ex",
            "target remote 127.0.0.1:1",
            "-ex",
            "continue"
        ]
    );
}
