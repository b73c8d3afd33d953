//! In-QEMU tests of the real SVSM image: one boot per scenario, asserting on
//! the serial log and the exit code. `make test-qemu` builds the images and
//! runs these with SVSM_IGVM (the test image, with the in-kernel test
//! cases), SVSM_PROD_IGVM (the production image) and SVSM_KERNEL_ELF (the
//! test image's kernel) set; plain `cargo test` skips them (ignored),
//! because they need the target build.

use igvm_build::qemu::{BootOptions, BootOutcome, boot};
use std::time::Duration;
use svsm_bootdefs::{ExitCode, READY_MARKER};
use svsm_guards::HwmRecord;
use svsm_unwinder::BacktraceLine;

mod scratch;
use scratch::Scratch;

fn image() -> String {
    std::env::var("SVSM_IGVM")
        .expect("SVSM_IGVM must name the built IGVM file (run `make test-qemu`)")
}

fn prod_image() -> String {
    std::env::var("SVSM_PROD_IGVM")
        .expect("SVSM_PROD_IGVM must name the production IGVM file (run `make test-qemu`)")
}

fn boot_case(cmdline: &str) -> BootOutcome {
    boot_image(&image(), cmdline)
}

fn boot_image(image: &str, cmdline: &str) -> BootOutcome {
    let opts = BootOptions::new(image)
        .cmdline(cmdline)
        .timeout(Duration::from_secs(60))
        .echo(false);
    let out = boot(&opts).expect("QEMU could not be started");
    assert!(
        !out.timed_out,
        "boot `{cmdline}` timed out; serial:\n{}",
        out.serial
    );
    assert_ne!(
        out.qemu_status, 0,
        "boot `{cmdline}` triple-faulted (QEMU status 0); serial:\n{}",
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

/// Names of the frames of the (first) backtrace block, in order (read with
/// the unwinder's parser of the format it writes).
fn backtrace_names(out: &BootOutcome) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for l in out.serial.lines() {
        match BacktraceLine::parse(l) {
            Ok(Some(BacktraceLine::Begin { .. })) => inside = true,
            Ok(Some(BacktraceLine::End { .. })) if inside => break,
            Ok(Some(BacktraceLine::Frame(f))) if inside => {
                names.push(f.symbol().map_or(f.text, |(n, _)| n).to_string())
            }
            Err(e) if inside => panic!("{e}: {l}"),
            _ => {}
        }
    }
    names
}

fn backtrace_end(out: &BootOutcome) -> String {
    lines(out, "BACKTRACE END")
        .first()
        .map(|s| s.to_string())
        .unwrap_or_default()
}

fn hwm(out: &BootOutcome) -> Vec<(String, u64, u64)> {
    lines(out, "STACK-HWM")
        .into_iter()
        .map(|l| {
            let r =
                HwmRecord::parse(l).unwrap_or_else(|e| panic!("bad STACK-HWM line {l:?}: {e:?}"));
            (format!("{}:{}", r.kind, r.name), r.size, r.used)
        })
        .collect()
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn normal_boot_reaches_ready_with_sane_high_water_marks() {
    let out = boot_image(&prod_image(), "");
    expect_exit(&out, ExitCode::Success);
    assert!(
        out.serial.contains("stage2: kernel entry 0xffffffff8"),
        "{}",
        out.serial
    );
    assert!(lines(&out, READY_MARKER).len() == 1, "{}", out.serial);
    assert!(
        !out.serial.contains("EXCEPTION") && !out.serial.contains("PANIC"),
        "{}",
        out.serial
    );
    let marks = hwm(&out);
    let kinds: Vec<&str> = marks
        .iter()
        .map(|(n, _, _)| n.split(':').next().unwrap())
        .collect();
    for k in [
        "boot", "stage2", "ist-df", "ist-pf", "ist-nmi", "ist-mc", "ist-vc", "percpu", "task",
    ] {
        assert!(kinds.contains(&k), "no high-water mark for {k}: {marks:?}");
    }
    for (name, size, used) in &marks {
        assert!(*used > 0 && used < size, "{name}: used {used} of {size}");
    }
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn smoke_case_passes() {
    let out = boot_case("test=smoke");
    expect_exit(&out, ExitCode::Success);
    assert!(out.serial.contains("TEST smoke: PASS"), "{}", out.serial);
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn page_permissions_are_enforced() {
    let out = boot_case("test=paging");
    expect_exit(&out, ExitCode::Success);
    assert!(out.serial.contains("TEST paging: PASS"), "{}", out.serial);
    let out = boot_case("test=write-rodata");
    expect_exit(&out, ExitCode::Exception);
    assert!(
        out.serial
            .contains("EXCEPTION: vector=14 (#PF page fault) error=0x3"),
        "{}",
        out.serial
    );
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn heap_allocates_and_frees() {
    let out = boot_case("test=heap");
    expect_exit(&out, ExitCode::Success);
    assert!(out.serial.contains("TEST heap: PASS"), "{}", out.serial);
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn unknown_case_fails() {
    let out = boot_case("test=no-such-case");
    expect_exit(&out, ExitCode::TestFailure);
    assert!(
        out.serial
            .contains("TEST no-such-case: FAIL unknown test case"),
        "{}",
        out.serial
    );
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn panic_is_reported_with_backtrace() {
    let out = boot_case("test=panic");
    expect_exit(&out, ExitCode::Panic);
    assert!(
        out.serial
            .contains("PANIC: panicked at kernel/src/testcases.rs"),
        "{}",
        out.serial
    );
    assert!(
        backtrace_names(&out)
            .iter()
            .any(|n| n == "svsm_kernel::testcases::panic_case"),
        "{}",
        out.serial
    );
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn unexpected_exception_is_reported() {
    let out = boot_case("test=invalid-opcode");
    expect_exit(&out, ExitCode::Exception);
    let l = lines(
        &out,
        "EXCEPTION: vector=6 (#UD invalid opcode) error=0x0 rip=0xffffffff8",
    );
    assert_eq!(l.len(), 1, "{}", out.serial);
    assert!(
        l[0].contains(" rsp=0x") && l[0].contains(" cr2=0x"),
        "{}",
        l[0]
    );
    // The backtrace crosses the exception entry into the interrupted code.
    assert!(
        out.serial
            .contains("[exception vector=6] svsm_kernel::testcases::invalid_opcode+"),
        "{}",
        out.serial
    );
}

/// The backtrace of a panic in a known chain, one frame reached through core::fmt.
#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn backtrace_names_the_chain_in_order() {
    let out = boot_case("test=backtrace-panic");
    expect_exit(&out, ExitCode::Panic);
    let names = backtrace_names(&out);
    let expected = [
        "svsm_kernel::testcases::chain_e",
        "svsm_kernel::testcases::chain_d",
        "<svsm_kernel::testcases::ThroughCore as core::fmt::Display>::fmt",
        "core::fmt::write",
        "svsm_kernel::testcases::chain_c",
        "svsm_kernel::testcases::chain_b",
        "svsm_kernel::testcases::chain_a",
        "svsm_kernel::testcases::backtrace_panic",
    ];
    let start = names
        .iter()
        .position(|n| n == expected[0])
        .unwrap_or_else(|| panic!("no chain_e in {names:?}"));
    assert_eq!(
        &names[start..start + expected.len()],
        &expected,
        "serial:\n{}",
        out.serial
    );
}

fn expect_guard_report(cmdline: &str, direction: &str, stack: &str, task: &str) -> BootOutcome {
    let out = boot_case(cmdline);
    expect_exit(&out, ExitCode::StackOverflow);
    let reports = lines(&out, "STACK ");
    assert_eq!(
        reports.len(),
        1,
        "expected exactly one report; serial:\n{}",
        out.serial
    );
    let r = reports[0];
    let prefix = format!("STACK {direction}: stack={stack} cpu=0 task={task} rip=0x");
    assert!(
        r.starts_with(&prefix),
        "report {r:?} does not start with {prefix:?}"
    );
    let past: u64 = r
        .split(" past-limit=")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no past-limit in {r:?}"));
    assert!(
        past > 0 && past <= svsm_guards::GUARD_SIZE,
        "past-limit {past} in {r:?}"
    );
    assert!(!out.serial.contains("triple"), "{}", out.serial);
    out
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn overflow_on_boot_stack() {
    let out = expect_guard_report("test=overflow-boot", "OVERFLOW", "boot:boot", "-");
    let names = backtrace_names(&out);
    assert!(
        names
            .iter()
            .filter(|n| *n == "svsm_kernel::testcases::recurse")
            .count()
            >= 10,
        "{names:?}"
    );
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn overflow_on_task_stack() {
    let out = expect_guard_report("test=overflow-task", "OVERFLOW", "task:init", "1");
    let names = backtrace_names(&out);
    // The chain down to the overflowing function, through the exception entry.
    let i = names
        .iter()
        .position(|n| n == "svsm_exc_common")
        .expect("exception entry frame");
    assert_eq!(names[i + 1], "svsm_kernel::testcases::recurse", "{names:?}");
    assert!(
        names.contains(&"svsm_kernel::testcases::overflow_recursion".to_string()),
        "{names:?}"
    );
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn overflow_on_ist_stack() {
    let out = expect_guard_report("test=overflow-ist", "OVERFLOW", "ist-nmi:cpu0-nmi", "-");
    assert!(
        out.serial
            .contains("[exception vector=2] svsm_kernel::testcases::overflow_ist+"),
        "{}",
        out.serial
    );
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn overflow_inside_page_fault_handler() {
    let out = expect_guard_report(
        "test=overflow-pf-handler",
        "OVERFLOW",
        "ist-pf:cpu0-pf",
        "-",
    );
    assert!(
        out.serial.contains("while handling a page fault"),
        "{}",
        out.serial
    );
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn big_frame_cannot_jump_the_guard() {
    let out = expect_guard_report("test=big-frame", "OVERFLOW", "task:init", "1");
    assert!(
        out.serial.contains("svsm_kernel::testcases::big_frame_fn+"),
        "{}",
        out.serial
    );
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn underflow_is_reported() {
    let out = expect_guard_report("test=underflow", "UNDERFLOW", "task:init", "1");
    assert!(out.serial.contains("past-limit=17 bytes"), "{}", out.serial);
    assert!(!backtrace_end(&out).is_empty());
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn in_kernel_backtrace_timing_is_reported() {
    let out = boot_case("test=backtrace-bench");
    expect_exit(&out, ExitCode::Success);
    let l = lines(&out, "backtrace-bench: ");
    assert_eq!(l.len(), 1, "{}", out.serial);
    println!("{}", l[0]);
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn fault_during_page_fault_delivery_is_reported_through_double_fault() {
    let out = expect_guard_report("test=double-fault", "OVERFLOW", "ist-pf:cpu0-pf", "-");
    assert!(out.serial.contains("past-limit=8 bytes"), "{}", out.serial);
    assert!(
        out.serial
            .contains("detected by vector=8 (#DF double fault)"),
        "{}",
        out.serial
    );
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn memory_map_without_the_kernel_region_is_refused() {
    // 64 MiB of RAM: the image loads, but the kernel region (16..80 MiB) is
    // not all RAM according to the loader's memory map. The production image:
    // the test image carries a guest above the kernel region, which 64 MiB
    // cannot hold (the loader refuses that file before QEMU starts).
    let opts = BootOptions::new(prod_image())
        .memory_mib(64)
        .timeout(Duration::from_secs(60))
        .echo(false);
    let out = boot(&opts).expect("QEMU could not be started");
    expect_exit(&out, ExitCode::BootError);
    assert!(
        out.serial.contains("SVSM: boot failed: memory map: kernel region 0x1000000..0x5000000 is not inside normal memory"),
        "{}",
        out.serial
    );
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn nmi_is_handled_and_returns() {
    let out = boot_case("test=nmi");
    expect_exit(&out, ExitCode::Success);
    assert!(out.serial.contains("TEST nmi: PASS"), "{}", out.serial);
}

fn stackcheck_symbolize(log: &str) -> std::process::Output {
    let bin = std::env::var("STACKCHECK_BIN").expect("STACKCHECK_BIN (run `make test-qemu`)");
    let elf = std::env::var("SVSM_KERNEL_ELF").expect("SVSM_KERNEL_ELF (run `make test-qemu`)");
    let dir = Scratch::new("svsm-symbolize");
    let path = dir.join(format!("serial-{}.log", log.len()));
    std::fs::write(&path, log).unwrap();
    std::process::Command::new(bin)
        .arg("symbolize")
        .arg("--elf")
        .arg(elf)
        .arg(&path)
        .output()
        .unwrap()
}

/// The host symbolizes the kernel's backtrace to file:line, inlined frames included.
#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn host_symbolizes_a_kernel_backtrace() {
    let out = boot_case("test=backtrace-panic");
    expect_exit(&out, ExitCode::Panic);
    let sym = stackcheck_symbolize(&out.serial);
    let text = String::from_utf8_lossy(&sym.stdout);
    assert_eq!(
        sym.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&sym.stderr)
    );
    for f in [
        "chain_a",
        "chain_b",
        "chain_c",
        "chain_d",
        "chain_e",
        "backtrace_panic",
    ] {
        let needle = format!("svsm_kernel::testcases::{f} at ");
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(&needle))
            .unwrap_or_else(|| panic!("no {needle}: {text}"));
        assert!(line.contains("kernel/src/testcases.rs:"), "{line}");
    }
    assert!(text.contains("(inlined) "), "no inlined frame: {text}");
    // A log from another build is refused.
    let id_start = out.serial.find("build-id=").unwrap() + "build-id=".len();
    let mut other = out.serial.clone();
    other.replace_range(
        id_start..id_start + 4,
        if &out.serial[id_start..id_start + 4] == "0000" {
            "1111"
        } else {
            "0000"
        },
    );
    let sym = stackcheck_symbolize(&other);
    assert_eq!(sym.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&sym.stderr).contains("build"),
        "{}",
        String::from_utf8_lossy(&sym.stderr)
    );
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn nested_panic_takes_the_minimal_path() {
    let out = boot_case("test=nested-panic");
    expect_exit(&out, ExitCode::Panic);
    assert!(
        out.serial
            .contains("PANIC: nested panic while reporting a panic"),
        "{}",
        out.serial
    );
    assert_eq!(lines(&out, "BACKTRACE BEGIN").len(), 0, "{}", out.serial);
}

#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn production_image_refuses_test_cases() {
    let out = boot_image(&prod_image(), "quiet test=smoke");
    expect_exit(&out, ExitCode::BootError);
    assert!(
        out.serial.contains(
            "SVSM: boot failed: command line: `test=smoke` refused: this image has no test cases"
        ),
        "{}",
        out.serial
    );
    assert!(!out.serial.contains("TEST smoke"), "{}", out.serial);
    assert!(lines(&out, READY_MARKER).is_empty(), "{}", out.serial);
}

/// The native part of the image with a boot info that names the SNP
/// platform: stage2 sees that the boot info is not for the platform whose
/// VP context started it and refuses, so nothing runs SNP code as native
/// (or native code on SNP). (Behind it, the kernel's SNP platform would
/// find no SEV-ES in SEV_STATUS and refuse too: `NotPresent`.)
#[test]
#[ignore = "boots the real image: run `make test-qemu`"]
fn snp_boot_info_without_snp_hardware_is_refused() {
    use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmRevision};
    use svsm_bootdefs::{BootInfo, PlatformKind, layout::BOOT_INFO_GPA};
    let bytes = std::fs::read(prod_image()).unwrap();
    let file = IgvmFile::new_from_binary(&bytes, None).unwrap();
    let offset = std::mem::offset_of!(BootInfo, platform);
    let mut patched = 0;
    let directives: Vec<IgvmDirectiveHeader> = file
        .directives()
        .iter()
        .cloned()
        .map(|mut d| {
            if let IgvmDirectiveHeader::PageData {
                gpa,
                data,
                compatibility_mask,
                ..
            } = &mut d
                && *gpa == BOOT_INFO_GPA
                && *compatibility_mask & 1 != 0
            {
                data[offset..offset + 4].copy_from_slice(&(PlatformKind::Snp as u32).to_le_bytes());
                patched += 1;
            }
            d
        })
        .collect();
    assert_eq!(patched, 1, "no boot-info page in the image");
    let snp = IgvmFile::new(
        IgvmRevision::V1,
        file.platforms().to_vec(),
        file.initializations().to_vec(),
        directives,
    )
    .unwrap();
    let mut out_bytes = Vec::new();
    snp.serialize(&mut out_bytes).unwrap();
    let path = std::env::temp_dir().join(format!("svsm-snp-bootinfo-{}.igvm", std::process::id()));
    std::fs::write(&path, &out_bytes).unwrap();
    let out = boot_image(path.to_str().unwrap(), "");
    let _ = std::fs::remove_file(&path);
    expect_exit(&out, ExitCode::BootError);
    assert!(
        out.serial
            .contains("stage2: boot info is for another platform"),
        "{}",
        out.serial
    );
    assert!(!out.serial.contains("SVSM kernel"), "{}", out.serial);
    assert!(!out.serial.contains("on native platform"), "{}", out.serial);
}
