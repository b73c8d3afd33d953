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
    let out = boot_guest("unknown-scenario");
    let found = lines(&out, "guest: test guest: SVSM at");
    assert_eq!(
        found,
        [
            "guest: test guest: SVSM at 0x1000000+0x4000000, CAA 0x5004000, max version 1, VMPL 1, scenario \"unknown-scenario\""
        ],
        "serial:\n{}",
        out.serial
    );
}

#[test]
#[ignore = "needs the test image: make test-qemu"]
fn guest_runs_the_conformance_suite_and_every_case_passes() {
    let out = boot_guest("conformance");
    expect_exit(&out, ExitCode::Success);
    let cases = lines(&out, "guest: CASE ");
    let summary = lines(&out, "guest: CONFORMANCE: ");
    assert_eq!(summary.len(), 1, "serial:\n{}", out.serial);
    let n: usize = summary[0]
        .strip_prefix("guest: CONFORMANCE: ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|w| w.parse().ok())
        .expect("case count");
    assert!(n >= 50, "only {n} cases");
    assert_eq!(
        summary[0],
        format!("guest: CONFORMANCE: {n} cases, {n} passed, 0 failed")
    );
    assert_eq!(cases.len(), n, "one line per case; serial:\n{}", out.serial);
    let failed: Vec<_> = cases.iter().filter(|l| !l.contains(" PASS ")).collect();
    assert!(failed.is_empty(), "failed cases: {failed:#?}");
    // Every core call is exercised, and the created vCPU really ran.
    for call in [
        "REMAP_CA",
        "PVALIDATE",
        "CREATE_VCPU",
        "DELETE_VCPU",
        "DEPOSIT_MEM",
        "WITHDRAW_MEM",
        "QUERY_PROTOCOL",
        "CONFIGURE_VTOM",
    ] {
        assert!(
            cases.iter().any(|l| l.contains(&format!(" call={call} "))),
            "no case for {call}"
        );
    }
    assert!(
        out.serial
            .contains("guest: vCPU 1 (APIC ID 1) starts at rip")
    );
    assert!(out.serial.contains("guest: vCPU 1 halted at rip"));
    assert!(lines(&out, "GUEST-EXIT code=0 ").len() == 1);
}

#[test]
#[ignore = "needs the test image: make test-qemu"]
fn the_suite_passes_through_a_ghcb_page_too() {
    let out = boot_guest("conformance-ghcb");
    expect_exit(&out, ExitCode::Success);
    let summary = lines(&out, "guest: CONFORMANCE: ");
    assert_eq!(summary.len(), 1, "serial:\n{}", out.serial);
    assert!(summary[0].ends_with(" passed, 0 failed"), "{}", summary[0]);
    assert!(
        lines(&out, "guest: CASE ")
            .iter()
            .all(|l| l.contains(" PASS "))
    );
}

#[test]
#[ignore = "needs the test image: make test-qemu"]
fn a_ghcb_request_the_svsm_does_not_serve_stops_the_guest() {
    let out = boot_guest("ghcb-unknown-request");
    expect_exit(&out, ExitCode::GuestStopped);
    let r = stop_report(&out);
    assert!(r.contains("exit=0x81 (VMMCALL)"), "{r}");
    assert!(
        r.ends_with("VMGEXIT with a GHCB request the SVSM does not handle"),
        "{r}"
    );
    assert!(!out.serial.contains("the SVSM returned"));
}

#[test]
#[ignore = "needs the test image: make test-qemu"]
fn a_wrong_expectation_fails_the_suite() {
    let out = boot_guest("wrong-expectation");
    expect_exit(&out, ExitCode::TestFailure);
    let cases = lines(&out, "guest: CASE deliberately_wrong_expectation ");
    assert_eq!(
        cases,
        [
            "guest: CASE deliberately_wrong_expectation call=QUERY_PROTOCOL FAIL step=0 rcx=0x100000001 expected 0x0"
        ],
        "serial:\n{}",
        out.serial
    );
}

#[test]
#[ignore = "needs the test image: make test-qemu"]
fn vcpus_are_created_and_deleted_many_times_over() {
    let out = boot_guest("vcpu-churn");
    expect_exit(&out, ExitCode::Success);
    assert!(
        out.serial
            .contains("guest: test guest: 64 vCPUs created and deleted")
    );
    // Each one ran (and halted) on a reused slot: vCPU 1 at most.
    assert!(lines(&out, "[INFO ] guest: vCPU 1 (APIC ID ").len() >= 60);
    assert!(!out.serial.contains("guest: vCPU 2 "), "slots are reused");
}

#[test]
#[ignore = "needs the test image: make test-qemu"]
fn guest_write_into_its_vmsa_page_is_stopped() {
    let out = boot_guest("write-vmsa");
    expect_exit(&out, ExitCode::GuestStopped);
    assert!(
        out.serial.contains("CREATE_VCPU rax=0x0;"),
        "serial:\n{}",
        out.serial
    );
    let r = stop_report(&out);
    assert!(r.contains("exit=0x400 (NPF)"), "{r}");
    assert!(
        r.contains("exitinfo2=0x5803178"),
        "the VMSA's RIP field: {r}"
    );
    assert!(r.ends_with("write into a VMSA page"), "{r}");
    assert!(!out.serial.contains("went through"));
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
fn an_unvalidated_page_is_out_of_the_guest_s_reach() {
    let out = boot_guest("touch-unvalidated");
    expect_exit(&out, ExitCode::GuestStopped);
    // Validated: zeroed and usable; rescinded: gone.
    assert!(
        out.serial.contains(
            "guest: test guest: PVALIDATE 0x6100000 rax=Ok(0): read 0x0, wrote and read 0x12345678"
        ),
        "serial:\n{}",
        out.serial
    );
    assert!(
        out.serial
            .contains("guest: test guest: rescinded rax=Ok(0); touching the page again")
    );
    let r = stop_report(&out);
    assert!(
        r.contains("exit=0x400 (NPF)") && r.contains("exitinfo2=0x6100000"),
        "{r}"
    );
    assert!(r.ends_with("access to unvalidated guest memory"), "{r}");
    assert!(!out.serial.contains("from an unvalidated page"));
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
fn an_exception_in_the_guest_stops_it_with_a_report() {
    let out = boot_guest("ud2");
    expect_exit(&out, ExitCode::GuestStopped);
    let r = stop_report(&out);
    assert!(r.contains("exit=0x46 (exception)"), "#UD is vector 6: {r}");
    assert!(r.ends_with("unhandled exception in the guest"), "{r}");
    assert!(!out.serial.contains("UD2 returned"));
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

#[test]
#[ignore = "needs the test image: make test-qemu"]
fn the_production_image_hosts_no_guest() {
    let prod = std::env::var("SVSM_PROD_IGVM")
        .expect("SVSM_PROD_IGVM must name the production IGVM file (run `make test-qemu`)");
    let out = boot_with(BootOptions::new(prod).cmdline("guest=conformance"));
    expect_exit(&out, ExitCode::Success);
    assert!(
        out.serial.contains("guest: none packaged in this image"),
        "serial:\n{}",
        out.serial
    );
    assert!(!out.serial.contains("GUEST-"));
}

#[test]
#[ignore = "needs the test image: make test-qemu"]
fn a_boot_vmsa_at_another_vmpl_than_the_channel_is_refused() {
    use igvm_build::channel::ChannelArgs;
    use igvm_build::configpage::{ConfigureArgs, configure};
    let dir = std::env::temp_dir().join(format!("svsm-guest-vmpl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("vmpl2.igvm");
    let code = configure(&ConfigureArgs {
        igvm: image().into(),
        output: Some(copy.clone()),
        cmdline: "guest=conformance".into(),
        channel: ChannelArgs {
            protocols: None,
            guest_vmpl: Some(2),
            pvalidate_budget: None,
        },
    })
    .expect("configure");
    assert_eq!(code, 0);
    let out = boot_with(BootOptions::new(&copy));
    let _ = std::fs::remove_dir_all(&dir);
    expect_exit(&out, ExitCode::GuestStopped);
    assert!(
        out.serial.contains("channel: guest VMPL 2,"),
        "serial:\n{}",
        out.serial
    );
    assert_eq!(
        lines(&out, "GUEST-STOP"),
        ["GUEST-STOP: bad boot VMSA: VMPL 1 (the channel configuration says 2)"]
    );
}

#[test]
#[ignore = "needs the test image and upstream QEMU: make test-qemu"]
fn the_guest_runs_on_upstream_qemu_s_own_loader_too() {
    use igvm_build::qemu::Mode;
    let qemu = std::env::var_os("SVSM_UPSTREAM_QEMU")
        .filter(|v| !v.is_empty())
        .expect("SVSM_UPSTREAM_QEMU must name a QEMU with IGVM support (run `make test-qemu`)");
    for machine in ["pc", "q35"] {
        let out = boot_with(
            BootOptions::new(image())
                .qemu(&qemu)
                .mode(Mode::IgvmCfg)
                .machine(machine)
                .cmdline("guest=conformance"),
        );
        assert_eq!(out.mode, Mode::IgvmCfg);
        expect_exit(&out, ExitCode::Success);
        let summary = lines(&out, "guest: CONFORMANCE: ");
        assert_eq!(summary.len(), 1, "{machine}: serial:\n{}", out.serial);
        assert!(
            summary[0].ends_with(" passed, 0 failed"),
            "{machine}: {}",
            summary[0]
        );
    }
}

#[test]
#[ignore = "needs the test image: make test-qemu"]
fn nmis_reach_the_svsm_after_it_hosted_a_guest() {
    // The in-kernel case runs the guest, then sends the CPU a hardware NMI
    // through its local APIC: it only arrives if GIF was set again after
    // the guest's last #VMEXIT.
    let out = boot_with(BootOptions::new(image()).cmdline("test=guest-then-nmi"));
    expect_exit(&out, ExitCode::Success);
    assert!(
        out.serial.contains("GUEST-EXIT code=0 "),
        "serial:\n{}",
        out.serial
    );
    assert!(out.serial.contains("TEST guest-then-nmi: PASS"));
}
