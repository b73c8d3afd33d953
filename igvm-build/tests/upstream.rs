//! Boots of the real SVSM image through upstream QEMU's own IGVM loader
//! (`-object igvm-cfg`), on the `pc` and `q35` machines, plus the loader
//! choice and the multi-platform file. `make test-qemu` runs these with
//! SVSM_IGVM (the image) and SVSM_UPSTREAM_QEMU (a QEMU >= 10.2 with IGVM
//! support, built by `make upstream-qemu`) set; plain `cargo test` skips them.

use igvm::snp_defs::SevVmsa;
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmInitializationHeader, IgvmPlatformHeader};
use igvm_build::configpage;
use igvm_build::qemu::{self, BootOptions, BootOutcome, Mode, loaders};
use igvm_defs::{
    IGVM_VHS_PARAMETER, IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SUPPORTED_PLATFORM, IgvmPageDataFlags,
    IgvmPageDataType, IgvmPlatformType,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use svsm_bootdefs::layout::{BOOT_INFO_GPA, CONFIG_PAGE_GPA};
use svsm_bootdefs::{ExitCode, READY_MARKER};
use zerocopy::FromZeros;

mod scratch;
use scratch::Scratch;

const SNP_MASK: u32 = 2;
const SNP_VMSA_GPA: u64 = 0xffff_ffff_f000;

fn image() -> PathBuf {
    std::env::var_os("SVSM_IGVM")
        .expect("SVSM_IGVM must name the built IGVM file (run `make test-qemu`)")
        .into()
}

fn upstream_qemu() -> PathBuf {
    std::env::var_os("SVSM_UPSTREAM_QEMU")
        .filter(|v| !v.is_empty())
        .expect("SVSM_UPSTREAM_QEMU must name a QEMU with IGVM support (run `make test-qemu`)")
        .into()
}

fn scratch() -> Scratch {
    Scratch::new("igvm-build-upstream")
}

fn boot_upstream(igvm: &Path, machine: &str, cmdline: &str) -> BootOutcome {
    let opts = BootOptions::new(igvm)
        .qemu(upstream_qemu())
        .mode(Mode::IgvmCfg)
        .machine(machine)
        .cmdline(cmdline)
        .timeout(Duration::from_secs(60));
    let out = qemu::boot(&opts).expect("igvm-cfg boot refused or QEMU could not be started");
    assert_eq!(out.mode, Mode::IgvmCfg);
    assert!(
        !out.timed_out && out.qemu_status != 0,
        "boot `{cmdline}` on {machine}: {}; stderr:\n{}\nserial:\n{}",
        out.describe(),
        out.qemu_stderr,
        out.serial
    );
    out
}

fn expect(out: &BootOutcome, code: ExitCode, needles: &[&str]) {
    assert_eq!(
        out.exit,
        Some(code),
        "{}; stderr:\n{}\nserial:\n{}",
        out.describe(),
        out.qemu_stderr,
        out.serial
    );
    for n in needles {
        assert!(
            out.serial.contains(n),
            "no {n:?} in serial:\n{}",
            out.serial
        );
    }
}

fn normal_boot(machine: &str) {
    let out = boot_upstream(&image(), machine, "");
    expect(
        &out,
        ExitCode::Success,
        &[
            "stage2: kernel entry 0xffffffff8",
            "STACK-HWM kind=task",
            // QEMU's e820 table: RAM and the reserved range high above it.
            "memory map: 2 entries, 512 MiB of RAM, up to 0x20000000",
        ],
    );
    assert_eq!(
        out.serial_lines().filter(|l| *l == READY_MARKER).count(),
        1,
        "{}",
        out.serial
    );
    assert!(
        !out.serial.contains("EXCEPTION") && !out.serial.contains("PANIC"),
        "{}",
        out.serial
    );
    println!("{machine}: {} ({:?})", out.describe(), out.elapsed);
}

#[test]
#[ignore = "needs the image and upstream QEMU: run `make test-qemu`"]
fn boots_through_the_qemu_loader_on_pc() {
    normal_boot("pc");
}

#[test]
#[ignore = "needs the image and upstream QEMU: run `make test-qemu`"]
fn boots_through_the_qemu_loader_on_q35() {
    normal_boot("q35");
}

/// In-kernel scenarios, each selected by a command line written into a copy
/// of the file's configuration page.
#[test]
#[ignore = "needs the image and upstream QEMU: run `make test-qemu`"]
fn in_kernel_scenarios_through_the_qemu_loader() {
    let img = image();
    let out = boot_upstream(&img, "q35", "test=smoke");
    expect(&out, ExitCode::Success, &["TEST smoke: PASS"]);
    let out = boot_upstream(&img, "pc", "test=no-such-case");
    expect(
        &out,
        ExitCode::TestFailure,
        &["TEST no-such-case: FAIL unknown test case"],
    );
    let out = boot_upstream(&img, "pc", "test=panic");
    expect(
        &out,
        ExitCode::Panic,
        &[
            "PANIC: panicked at kernel/src/testcases.rs",
            "BACKTRACE END",
        ],
    );
    let out = boot_upstream(&img, "q35", "test=overflow-task");
    expect(
        &out,
        ExitCode::StackOverflow,
        &["STACK OVERFLOW: stack=task:init cpu=0 task=1 rip=0x"],
    );
}

/// QEMU fills the memory map from its own table: with 64 MiB the kernel
/// region (16..80 MiB) is not all RAM, and the kernel says so.
#[test]
#[ignore = "needs the image and upstream QEMU: run `make test-qemu`"]
fn the_qemu_loader_memory_map_reaches_the_kernel() {
    let opts = BootOptions::new(image())
        .qemu(upstream_qemu())
        .mode(Mode::IgvmCfg)
        .memory_mib(64)
        .timeout(Duration::from_secs(60));
    let out = qemu::boot(&opts).unwrap();
    expect(
        &out,
        ExitCode::BootError,
        &["memory map: kernel region 0x1000000..0x5000000 is not inside normal memory"],
    );
}

#[test]
#[ignore = "needs the image and upstream QEMU: run `make test-qemu`"]
fn auto_mode_picks_the_loader_that_works() {
    let bytes = std::fs::read(image()).unwrap();
    let (mode, why) = loaders::choose(Mode::Auto, &upstream_qemu(), &bytes).unwrap();
    assert_eq!(mode, Mode::IgvmCfg, "{why}");
    assert!(why.starts_with("igvm-cfg: QEMU emulator version "), "{why}");
    // A QEMU without the loader (Debian's here) gets the adapter, with the reason.
    let debian = Path::new("qemu-system-x86_64");
    let info = loaders::probe(debian).unwrap();
    let (mode, why) = loaders::choose(Mode::Auto, debian, &bytes).unwrap();
    if info.igvm_cfg {
        assert_eq!(mode, Mode::IgvmCfg, "{why}");
    } else {
        assert_eq!(mode, Mode::Adapter);
        assert!(why.contains("has no IGVM loader"), "{why}");
        let e = loaders::choose(Mode::IgvmCfg, debian, &bytes).unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot use --mode igvm-cfg"),
            "{e:#}"
        );
    }
    // The CLI says which loader it used.
    let out = Command::new(env!("CARGO_BIN_EXE_igvm-build"))
        .arg("run")
        .arg("--qemu")
        .arg(upstream_qemu())
        .arg(image())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("igvm-build: loader: igvm-cfg: QEMU emulator version"),
        "{stderr}"
    );
}

fn with_directives(file: &IgvmFile, extra: Vec<IgvmDirectiveHeader>) -> Vec<u8> {
    let mut d = file.directives().to_vec();
    let ctx = d.pop().expect("the VP context is last");
    d.extend(extra);
    d.push(ctx);
    let f = IgvmFile::new(
        igvm::IgvmRevision::V1,
        file.platforms().to_vec(),
        file.initializations().to_vec(),
        d,
    )
    .unwrap();
    let mut out = Vec::new();
    f.serialize(&mut out).unwrap();
    out
}

/// A header type QEMU has no handler for is refused by igvm-build before
/// QEMU starts, and QEMU itself refuses the same file: our table agrees
/// with QEMU's loader.
#[test]
#[ignore = "needs the image and upstream QEMU: run `make test-qemu`"]
fn a_file_the_qemu_loader_refuses_is_refused_before_qemu_starts() {
    let file = IgvmFile::new_from_binary(&std::fs::read(image()).unwrap(), None).unwrap();
    let bad = with_directives(
        &file,
        vec![
            IgvmDirectiveHeader::ParameterArea {
                number_of_bytes: 4096,
                parameter_area_index: 7,
                initial_data: vec![],
            },
            IgvmDirectiveHeader::CommandLine(IGVM_VHS_PARAMETER {
                parameter_area_index: 7,
                byte_offset: 0,
            }),
            IgvmDirectiveHeader::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
                gpa: 0x20_0000,
                compatibility_mask: 1,
                parameter_area_index: 7,
            }),
        ],
    );
    let dir = scratch();
    let path = dir.join("command-line.igvm");
    std::fs::write(&path, &bad).unwrap();
    let e = loaders::choose(Mode::IgvmCfg, &upstream_qemu(), &bad).unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("IGVM_VHT_COMMAND_LINE (0x30e)"), "{e}");
    let (mode, why) = loaders::choose(Mode::Auto, &upstream_qemu(), &bad).unwrap();
    assert_eq!(mode, Mode::Adapter, "{why}");
    // igvm-build run --mode igvm-cfg: exit 2, QEMU never started.
    let out = Command::new(env!("CARGO_BIN_EXE_igvm-build"))
        .args(["run", "--mode", "igvm-cfg", "--qemu"])
        .arg(upstream_qemu())
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("COMMAND_LINE"), "{stderr}");
    assert!(out.stdout.is_empty(), "the guest ran");
    // QEMU, given the file directly, refuses it the same way.
    let args = qemu::igvm_cfg_args(&path, "pc", 512);
    let q = Command::new(upstream_qemu()).args(&args).output().unwrap();
    let qerr = String::from_utf8_lossy(&q.stderr);
    assert_eq!(q.status.code(), Some(1), "{qerr}");
    assert!(
        qerr.contains("Unknown header type") && qerr.contains("0x30E"),
        "{qerr}"
    );
}

/// The image plus an SNP platform whose directives (mask 2) would break a
/// native boot if a loader applied them: garbage over the boot-info page, a
/// second configuration page, secrets and CPUID pages, a memory map of its
/// own, a guest policy and an SNP VMSA at the KVM-required GPA as the last
/// directive.
fn multi_platform(file: &IgvmFile) -> Vec<u8> {
    let snp_page = |gpa, data_type, data: Vec<u8>| IgvmDirectiveHeader::PageData {
        gpa,
        compatibility_mask: SNP_MASK,
        flags: IgvmPageDataFlags::new(),
        data_type,
        data,
    };
    let mut d = file.directives().to_vec();
    d.extend([
        snp_page(BOOT_INFO_GPA, IgvmPageDataType::NORMAL, vec![0xcc; 4096]),
        snp_page(
            CONFIG_PAGE_GPA,
            IgvmPageDataType::NORMAL,
            svsm_bootdefs::config::encode("test=smoke").unwrap(),
        ),
        snp_page(0x20_0000, IgvmPageDataType::SECRETS, vec![]),
        snp_page(0x20_1000, IgvmPageDataType::CPUID_DATA, vec![]),
        // Parameter areas have no mask: QEMU fills this one on every
        // platform, and inserts it only for SNP.
        IgvmDirectiveHeader::ParameterArea {
            number_of_bytes: 4096,
            parameter_area_index: 1,
            initial_data: vec![],
        },
        IgvmDirectiveHeader::MemoryMap(IGVM_VHS_PARAMETER {
            parameter_area_index: 1,
            byte_offset: 0,
        }),
        IgvmDirectiveHeader::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
            gpa: 0x20_2000,
            compatibility_mask: SNP_MASK,
            parameter_area_index: 1,
        }),
        IgvmDirectiveHeader::SnpVpContext {
            gpa: SNP_VMSA_GPA,
            compatibility_mask: SNP_MASK,
            vp_index: 0,
            vmsa: SevVmsa::new_box_zeroed().unwrap(),
        },
    ]);
    let mut platforms = file.platforms().to_vec();
    platforms.push(IgvmPlatformHeader::SupportedPlatform(
        IGVM_VHS_SUPPORTED_PLATFORM {
            compatibility_mask: SNP_MASK,
            highest_vtl: 0,
            platform_type: IgvmPlatformType::SEV_SNP,
            platform_version: 1,
            shared_gpa_boundary: 0,
        },
    ));
    let inits = vec![IgvmInitializationHeader::GuestPolicy {
        policy: 0x3_0000,
        compatibility_mask: SNP_MASK,
    }];
    let f = IgvmFile::new(igvm::IgvmRevision::V1, platforms, inits, d)
        .unwrap_or_else(|e| panic!("multi-platform file: {e}"));
    let mut out = Vec::new();
    f.serialize(&mut out).unwrap();
    out
}

/// The native platform's part of an IGVM file, as a native-only file.
fn native_part(bytes: &[u8]) -> IgvmFile {
    let file = IgvmFile::new_from_binary(bytes, None).unwrap();
    let native = |p: &&IgvmPlatformHeader| {
        let IgvmPlatformHeader::SupportedPlatform(sp) = p;
        sp.platform_type == IgvmPlatformType::NATIVE
    };
    let platforms: Vec<_> = file.platforms().iter().filter(native).cloned().collect();
    let IgvmPlatformHeader::SupportedPlatform(sp) = &platforms[0];
    let mask = sp.compatibility_mask;
    let directives = file
        .directives()
        .iter()
        .filter(|d| d.compatibility_mask().is_none_or(|m| m & mask != 0))
        .cloned()
        .map(|mut d| {
            if let Some(m) = d.compatibility_mask_mut() {
                *m = mask;
            }
            d
        })
        .collect();
    IgvmFile::new(igvm::IgvmRevision::V1, platforms, vec![], directives).unwrap()
}

/// Native boots from a file that also carries an SNP platform: both loaders
/// take the native compatibility mask and skip the SNP directives.
#[test]
#[ignore = "needs the image and upstream QEMU: run `make test-qemu`"]
fn native_boot_of_a_multi_platform_file() {
    // The image's native part (the shipped file carries SNP too), plus the
    // SNP directives above that would break a native boot.
    let file = native_part(&std::fs::read(image()).unwrap());
    let bytes = multi_platform(&file);
    let back = IgvmFile::new_from_binary(&bytes, None).unwrap();
    assert_eq!(back.platforms().len(), 2);
    assert!(loaders::upstream_refusals(&bytes).unwrap().is_empty());
    let dir = scratch();
    let path = dir.join("multi.igvm");
    std::fs::write(&path, &bytes).unwrap();
    // Both configuration pages get a new command line; only the native one is booted.
    let pages = configpage::config_pages(&bytes).unwrap();
    assert_eq!(pages.len(), 2, "{pages:?}");
    for machine in ["pc", "q35"] {
        let out = boot_upstream(&path, machine, "");
        expect(
            &out,
            ExitCode::Success,
            &["stage2: kernel entry", READY_MARKER],
        );
        assert!(
            !out.serial.contains("TEST smoke"),
            "the SNP command line was used"
        );
    }
    let out = boot_upstream(&path, "pc", "test=heap");
    expect(&out, ExitCode::Success, &["TEST heap: PASS"]);
    let out = qemu::boot(
        &BootOptions::new(&path)
            .mode(Mode::Adapter)
            .cmdline("test=heap"),
    )
    .unwrap();
    expect(&out, ExitCode::Success, &["TEST heap: PASS"]);
}
