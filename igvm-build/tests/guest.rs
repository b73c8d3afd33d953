//! In-QEMU tests of the hosted guest (docs/guest-host.md): the test image
//! carries the test guest, which the SVSM runs with AMD-V; `guest=<word>`
//! on the SVSM command line picks the guest's scenario. Each test asserts
//! on the serial log and the exit code. `make test-qemu` runs them with
//! SVSM_IGVM set (plain `cargo test` skips them: ignored).

use igvm_build::qemu::{BootOptions, BootOutcome, boot};
use std::time::Duration;
use svsm_bootdefs::ExitCode;

fn image() -> String {
    std::env::var("SVSM_IGVM")
        .expect("SVSM_IGVM must name the built test IGVM file (run `make test-qemu`)")
}

fn boot_with(opts: BootOptions) -> BootOutcome {
    let out = boot(&opts.timeout(Duration::from_secs(60)).echo(false))
        .expect("QEMU could not be started");
    assert!(!out.timed_out, "timed out; serial:\n{}", out.serial);
    out
}

fn boot_guest(scenario: &str) -> BootOutcome {
    boot_with(BootOptions::new(image()).cmdline(format!("guest={scenario}")))
}

fn lines<'a>(out: &'a BootOutcome, prefix: &str) -> Vec<&'a str> {
    out.serial
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| l.starts_with(prefix))
        .collect()
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

/// The one GUEST-STOP report of a stopped guest.
fn stop_report(out: &BootOutcome) -> String {
    let stops = lines(out, "GUEST-STOP");
    assert_eq!(stops.len(), 1, "serial:\n{}", out.serial);
    stops[0].to_string()
}

#[test]
#[ignore = "needs the test image: make test-qemu"]
fn guest_finds_the_svsm_through_its_secrets_page() {
    let out = boot_guest("conformance");
    let found = lines(&out, "guest: test guest: SVSM at");
    assert_eq!(
        found,
        [
            "guest: test guest: SVSM at 0x1000000+0x4000000, CAA 0x5004000, max version 1, VMPL 1, scenario \"conformance\""
        ],
        "serial:\n{}",
        out.serial
    );
}

#[test]
#[ignore = "needs the test image: make test-qemu"]
fn guest_write_into_svsm_memory_is_stopped_with_a_report() {
    let out = boot_guest("write-svsm");
    expect_exit(&out, ExitCode::GuestStopped);
    let r = stop_report(&out);
    assert!(r.contains("exit=0x400 (NPF)"), "{r}");
    assert!(
        r.contains("exitinfo2=0x1000000"),
        "the faulting GPA is svsm_base: {r}"
    );
    assert!(r.ends_with("write into SVSM memory"), "{r}");
    assert!(
        !out.serial.contains("went through"),
        "serial:\n{}",
        out.serial
    );
    // The SVSM itself shut down cleanly: its stacks' high-water marks follow.
    assert!(out.serial.contains("STACK-HWM kind=task name=vcpu-loop"));
}

#[test]
#[ignore = "needs the test image: make test-qemu"]
fn unhandled_guest_exit_is_reported() {
    let out = boot_guest("unhandled");
    expect_exit(&out, ExitCode::GuestStopped);
    let r = stop_report(&out);
    assert!(
        r.contains("exit=0x7c (MSR) exitinfo1=0x0"),
        "an RDMSR exit: {r}"
    );
    assert!(r.contains("MSR access the SVSM does not emulate"), "{r}");
    assert!(
        !out.serial.contains("RDMSR returned"),
        "serial:\n{}",
        out.serial
    );
}

#[test]
#[ignore = "needs the test image: make test-qemu"]
fn unknown_guest_scenario_fails_the_boot() {
    let out = boot_guest("no-such-scenario");
    expect_exit(&out, ExitCode::TestFailure);
    assert!(
        out.serial.contains("GUEST-EXIT code=1"),
        "serial:\n{}",
        out.serial
    );
}

#[test]
#[ignore = "needs the test image: make test-qemu"]
fn without_svm_the_svsm_boots_as_before() {
    // A later -cpu replaces the adapter's: a CPU without SVM.
    let out = boot_with(
        BootOptions::new(image())
            .cmdline("guest=conformance")
            .extra_arg("-cpu")
            .extra_arg("qemu64,-svm"),
    );
    expect_exit(&out, ExitCode::Success);
    assert!(
        out.serial
            .contains("guest: cannot host a guest: the CPU has no SVM"),
        "serial:\n{}",
        out.serial
    );
    assert!(!out.serial.contains("GUEST-EXIT"));
}
