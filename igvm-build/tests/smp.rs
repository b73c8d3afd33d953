//! In-QEMU tests of the SVSM on several CPUs (QEMU `-smp 4`): one boot per
//! scenario of the test image's `smp-*` cases, asserting on the serial log
//! and the exit code. `make test-qemu` runs them (SVSM_IGVM names the test
//! image); plain `cargo test` skips them (ignored).

use igvm_build::qemu::{BootOptions, BootOutcome, Mode, boot};
use std::time::Duration;
use svsm_bootdefs::ExitCode;
use svsm_guards::{Direction, HwmRecord, ParsedReport, StackKind};

const CPUS: u32 = 4;

fn options(case: &str) -> BootOptions {
    let image = std::env::var("SVSM_IGVM")
        .expect("SVSM_IGVM must name the built test image (run `make test-qemu`)");
    BootOptions::new(image)
        .cmdline(format!("test={case}"))
        .cpus(CPUS)
        .timeout(Duration::from_secs(90))
}

/// Boots on Debian's QEMU 7.2 (the adapter): its TCG has no x2APIC, so the
/// kernel uses the xAPIC registers.
fn boot_smp(case: &str) -> BootOutcome {
    boot_with(options(case))
}

fn boot_with(opts: BootOptions) -> BootOutcome {
    let case = opts.cmdline.clone();
    let out = boot(&opts).expect("QEMU could not be started");
    assert!(!out.timed_out, "{case} timed out; serial:\n{}", out.serial);
    assert!(
        out.serial
            .contains("SMP: 4 of 4 CPUs online, 3 answered their mailbox"),
        "not every CPU came up; serial:\n{}",
        out.serial
    );
    out
}

fn expect_exit(out: &BootOutcome, code: ExitCode) {
    assert_eq!(
        out.exit,
        Some(code),
        "unexpected exit (QEMU status {}); serial:\n{}",
        out.qemu_status,
        out.serial
    );
}

fn lines<'a>(out: &'a BootOutcome, prefix: &str) -> Vec<&'a str> {
    out.serial
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.starts_with(prefix))
        .collect()
}

/// Index of the first line starting with `prefix`.
fn line_index(out: &BootOutcome, prefix: &str) -> usize {
    out.serial
        .lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?}; serial:\n{}", out.serial))
}

/// Every CPU but `reporter` printed its state (and a backtrace) before the
/// line starting with `report`.
fn others_stopped_before(out: &BootOutcome, reporter: u32, report: &str) {
    let at = line_index(out, report);
    for cpu in (0..CPUS).filter(|&c| c != reporter) {
        let stop = line_index(out, &format!("CPU {cpu} stopped: rip=0x"));
        assert!(
            stop < at,
            "cpu {cpu} stopped after the report; serial:\n{}",
            out.serial
        );
        let next = out.serial.lines().nth(stop + 1).unwrap_or("");
        assert!(next.starts_with("BACKTRACE BEGIN"), "cpu {cpu}: {next:?}");
    }
    assert!(
        lines(out, &format!("CPU {reporter} stopped")).is_empty(),
        "{}",
        out.serial
    );
}

fn guard_report(out: &BootOutcome) -> ParsedReport<'_> {
    let reports = lines(out, "STACK ");
    assert_eq!(reports.len(), 1, "serial:\n{}", out.serial);
    ParsedReport::parse(reports[0]).unwrap_or_else(|e| panic!("{:?}: {e}", reports[0]))
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn every_cpu_comes_up_on_its_own_guarded_stacks() {
    let out = boot_smp("smp-up");
    expect_exit(&out, ExitCode::Success);
    assert!(
        out.serial
            .contains("smp-up: 4 CPUs online, work ran on mask 0xf"),
        "{}",
        out.serial
    );
    let marks: Vec<HwmRecord> = lines(&out, "STACK-HWM")
        .into_iter()
        .map(|l| HwmRecord::parse(l).unwrap_or_else(|e| panic!("{l:?}: {e:?}")))
        .collect();
    for cpu in 0..CPUS {
        for kind in [
            "percpu", "ist-df", "ist-pf", "ist-nmi", "ist-mc", "ist-vc", "task",
        ] {
            let m = marks
                .iter()
                .find(|m| m.cpu == cpu && m.kind.name() == kind)
                .unwrap_or_else(|| panic!("no {kind} high-water mark on cpu {cpu}: {marks:?}"));
            assert!(m.used > 0 && m.used < m.size, "{m:?}");
        }
    }
    // Each AP reports its start-up time (INIT to its first kernel line).
    for cpu in 1..CPUS {
        let l = lines(&out, &format!("smp-up: cpu {cpu} start-up "));
        assert_eq!(l.len(), 1, "{}", out.serial);
    }
    // Every CPU's measured high-water marks stay within stackcheck's static
    // bounds (ap-start, the IST entries) for their stacks.
    let hwm = stackcheck_hwm(&out.serial);
    assert!(
        hwm.status.success(),
        "stackcheck hwm:\n{}{}",
        String::from_utf8_lossy(&hwm.stdout),
        String::from_utf8_lossy(&hwm.stderr)
    );
    let report = String::from_utf8_lossy(&hwm.stdout);
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("percpu") && l.contains("cpu3")),
        "{report}"
    );
}

/// `stackcheck hwm` on a serial log, against the test image's kernel.
fn stackcheck_hwm(log: &str) -> std::process::Output {
    let bin = std::env::var("STACKCHECK_BIN").expect("STACKCHECK_BIN (run `make test-qemu`)");
    let elf = std::env::var("SVSM_KERNEL_ELF").expect("SVSM_KERNEL_ELF (run `make test-qemu`)");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../stackcheck.toml");
    let path = std::env::temp_dir().join(format!("svsm-smp-hwm-{}.log", std::process::id()));
    std::fs::write(&path, log).unwrap();
    let out = std::process::Command::new(bin)
        .args(["hwm", "--config", config, "--only", "kernel", "--image"])
        .arg(format!("kernel={elf}"))
        .arg("--log")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    out
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn overflow_on_an_ap_task_stack_names_the_cpu() {
    let out = boot_smp("smp-overflow-task");
    expect_exit(&out, ExitCode::StackOverflow);
    let r = guard_report(&out);
    assert_eq!(r.direction, Direction::Overflow);
    assert_eq!((r.kind, r.name, r.cpu), (StackKind::Task, "ap-overflow", 2));
    assert!(r.task.is_some(), "{r:?}");
    others_stopped_before(&out, 2, "STACK OVERFLOW");
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn overflow_on_an_ap_ist_stack_names_the_cpu() {
    let out = boot_smp("smp-overflow-ist");
    expect_exit(&out, ExitCode::StackOverflow);
    let r = guard_report(&out);
    assert_eq!(
        (r.kind, r.name, r.cpu, r.task),
        (
            StackKind::Ist(svsm_guards::IstKind::Nmi),
            "cpu3-nmi",
            3,
            None
        )
    );
    others_stopped_before(&out, 3, "STACK OVERFLOW");
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn panic_on_an_ap_stops_the_others_first() {
    let out = boot_smp("smp-panic");
    expect_exit(&out, ExitCode::Panic);
    assert!(
        out.serial.contains("deliberate panic on cpu 1"),
        "{}",
        out.serial
    );
    assert_eq!(lines(&out, "PANIC on cpu 1").len(), 1, "{}", out.serial);
    others_stopped_before(&out, 1, "PANIC: ");
    // CPU 0 was waiting for the AP's work item inside the test case.
    let cpu0 = lines(&out, "CPU 0 stopped:")[0];
    assert!(cpu0.contains("stack=task:init task=1"), "{cpu0}");
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn allocators_and_registry_hold_under_every_cpu_at_once() {
    let out = boot_smp("smp-stress");
    expect_exit(&out, ExitCode::Success);
    let l = lines(&out, "smp-stress: ");
    assert_eq!(l.len(), 1, "{}", out.serial);
    assert!(
        l[0].contains("4 CPUs") && l[0].contains(", 0 errors;"),
        "{}",
        l[0]
    );
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn tlb_shootdown_reaches_the_cpu_with_a_stale_mapping() {
    let out = boot_smp("smp-tlb");
    expect_exit(&out, ExitCode::Exception);
    // Without a shootdown, CPU 1 keeps reading the old frame...
    assert!(
        out.serial
            .contains("remapped without a shootdown: cpu 1 read 0x1111 (stale)"),
        "{}",
        out.serial
    );
    // ...with one, its next read faults.
    let e = lines(&out, "EXCEPTION: vector=14 (#PF page fault)");
    assert_eq!(e.len(), 1, "{}", out.serial);
    assert!(e[0].ends_with("cr2=0xffffc00000000000 cpu=1"), "{}", e[0]);
    assert!(
        !out.serial.contains("after the shootdown"),
        "{}",
        out.serial
    );
    others_stopped_before(&out, 1, "EXCEPTION: ");
}

/// The same shootdown on upstream QEMU's own IGVM loader with an x2APIC
/// CPU: start-up, shootdown and stop IPIs through the x2APIC MSRs.
#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn x2apic_start_up_and_shootdown_on_upstream_qemu() {
    let qemu = std::env::var_os("SVSM_UPSTREAM_QEMU")
        .expect("SVSM_UPSTREAM_QEMU must name a QEMU with IGVM support (run `make test-qemu`)");
    let out = boot_with(
        options("smp-tlb")
            .qemu(qemu)
            .mode(Mode::IgvmCfg)
            .extra_arg("-cpu")
            .extra_arg("qemu64,+x2apic"),
    );
    assert!(
        out.serial.contains("(APIC in x2APIC mode)"),
        "{}",
        out.serial
    );
    expect_exit(&out, ExitCode::Exception);
    assert!(out.serial.contains("(stale)"), "{}", out.serial);
    let e = lines(&out, "EXCEPTION: vector=14 (#PF page fault)");
    assert!(e.len() == 1 && e[0].ends_with("cpu=1"), "{}", out.serial);
    others_stopped_before(&out, 1, "EXCEPTION: ");
}
