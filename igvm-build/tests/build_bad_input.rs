//! `igvm-build build` and `info` on bad input: a clear message naming the
//! problem, exit code 2, never a panic.

use std::path::Path;
use std::process::Command;

mod scratch;
use scratch::TmpFile;

fn tmp(name: &str, bytes: &[u8]) -> TmpFile {
    TmpFile::new("igvm-build-bad-input", name, bytes)
}

fn run(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_igvm-build"))
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "igvm-build panicked: {stderr}"
    );
    (out.status.code().unwrap_or(-1), stderr)
}

fn build_with_kernel(kernel: &Path) -> (i32, String) {
    // stage2 is checked first: give the same bad file for both so that the
    // message is about whichever is read first, and check the kernel alone
    // through `info` with a good-looking stage2 path that is also bad.
    let out = tmp("out.igvm", b"");
    run(&[
        "build".as_ref(),
        "--stage2".as_ref(),
        kernel.as_os_str(),
        "--kernel".as_ref(),
        kernel.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
}

fn host_elf() -> Vec<u8> {
    std::fs::read(std::env::current_exe().unwrap()).unwrap()
}

#[test]
fn missing_file() {
    let (code, err) = build_with_kernel(Path::new("/nonexistent/svsm-kernel"));
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot read stage2 ELF /nonexistent/svsm-kernel"),
        "{err}"
    );
}

#[test]
fn empty_and_random_files_are_not_elf() {
    for (name, bytes) in [
        ("empty", Vec::new()),
        (
            "random",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
    ] {
        let p = tmp(name, &bytes);
        let (code, err) = build_with_kernel(&p);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains("not an ELF file"), "{name}: {err}");
    }
}

#[test]
fn thirty_two_bit_elf() {
    let mut e = b"\x7fELF\x01\x01\x01".to_vec();
    e.resize(52, 0);
    let (code, err) = build_with_kernel(&tmp("elf32", &e));
    assert_eq!(code, 2);
    assert!(err.contains("not a 64-bit ELF"), "{err}");
}

#[test]
fn wrong_architecture() {
    let mut e = host_elf();
    e[18] = 183; // EM_AARCH64
    e[19] = 0;
    let (code, err) = build_with_kernel(&tmp("aarch64", &e));
    assert_eq!(code, 2);
    assert!(err.contains("wrong architecture"), "{err}");
}

#[test]
fn not_a_static_executable() {
    // The test binary itself is an x86_64 PIE (ET_DYN).
    let (code, err) = build_with_kernel(&tmp("pie", &host_elf()));
    assert_eq!(code, 2);
    assert!(err.contains("not a static executable"), "{err}");
}

#[test]
fn truncated_files() {
    let e = host_elf();
    for cut in [5usize, 20, 63, 64, 200, 4096] {
        let (code, err) = build_with_kernel(&tmp(&format!("cut{cut}"), &e[..cut]));
        assert_eq!(code, 2, "cut at {cut}: {err}");
        assert!(err.contains("igvm-build: error:"), "cut at {cut}: {err}");
    }
}

#[test]
fn info_reports_bad_input_too() {
    let p = tmp("info-random", b"definitely not an ELF");
    let (code, err) = run(&[
        "info".as_ref(),
        "--stage2".as_ref(),
        p.as_os_str(),
        "--kernel".as_ref(),
        p.as_os_str(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("not an ELF file"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let (code, _) = run(&["build".as_ref()]);
    assert_eq!(code, 2);
    let (code, _) = run(&["no-such-subcommand".as_ref()]);
    assert_eq!(code, 2);
}

/// A static x86_64 executable with one executable PT_LOAD segment.
fn one_segment_elf(vaddr: u64, memsz: u64) -> Vec<u8> {
    let mut e = vec![0u8; 64 + 56 + 16];
    e[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    e[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    e[20..24].copy_from_slice(&1u32.to_le_bytes());
    e[24..32].copy_from_slice(&vaddr.to_le_bytes()); // e_entry
    e[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    e[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    e[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    e[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let ph = &mut e[64..120];
    ph[0..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    ph[4..8].copy_from_slice(&5u32.to_le_bytes()); // R+X
    ph[8..16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
    ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
    ph[24..32].copy_from_slice(&vaddr.to_le_bytes());
    ph[32..40].copy_from_slice(&16u64.to_le_bytes()); // p_filesz
    ph[40..48].copy_from_slice(&memsz.to_le_bytes());
    ph[48..56].copy_from_slice(&4096u64.to_le_bytes());
    e
}

/// `vaddr + p_memsz` past 2^64 used to overflow in the overlap check, the
/// entry-point check and the image span.
#[test]
fn segment_ending_beyond_the_address_space() {
    for (vaddr, memsz) in [
        (0x1000u64, u64::MAX),
        (0xffff_ffff_ffff_f000, 0x1001),
        (0xffff_ffff_8000_0000, 0x7fff_ffff), // page-aligned end is 2^64
    ] {
        let p = tmp(&format!("memsz-{vaddr:x}"), &one_segment_elf(vaddr, memsz));
        let (code, err) = build_with_kernel(&p);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("ends beyond the 64-bit address space"),
            "{err}"
        );
        let (code, err) = run(&[
            "info".as_ref(),
            "--stage2".as_ref(),
            p.as_os_str(),
            "--kernel".as_ref(),
            p.as_os_str(),
        ]);
        assert_eq!(code, 2, "{err}");
    }
    // A segment ending exactly at the last page still parses.
    assert!(igvm_build::elf::parse(&one_segment_elf(0xffff_ffff_ffff_e000, 0x1000)).is_ok());
}

/// Every option of every subcommand has a help text, and every `--help`
/// lists the exit codes.
#[test]
fn help_texts_and_exit_codes() {
    for sub in ["", "build", "info", "run", "bench-boot", "debug"] {
        let mut args: Vec<&std::ffi::OsStr> = Vec::new();
        if !sub.is_empty() {
            args.push(sub.as_ref());
        }
        args.push("--help".as_ref());
        let out = Command::new(env!("CARGO_BIN_EXE_igvm-build"))
            .args(&args)
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{sub}: {help}");
        assert!(
            help.contains("Exit codes:") && help.contains("2  bad input"),
            "{sub}: {help}"
        );
        let options = help
            .split("Options:")
            .nth(1)
            .unwrap_or("")
            .split("Exit codes:")
            .next()
            .unwrap();
        let lines: Vec<&str> = options.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            // `--long`, `-s, --long`; not `- value: ...` of a value list.
            if !(t.starts_with("--")
                || t.starts_with('-') && t.as_bytes().get(1).is_some_and(u8::is_ascii_alphabetic))
            {
                continue;
            }
            // The text follows on the same line, or (long help) below it.
            let same_line = line
                .trim()
                .split("  ")
                .filter(|s| !s.trim().is_empty())
                .count()
                >= 2;
            let below = lines.get(i + 1).is_some_and(|n| {
                let n = n.trim();
                !n.is_empty() && !n.starts_with("--")
            });
            let described = same_line || below;
            assert!(described, "{sub}: option without help: {line}");
        }
    }
}

/// `igvm-build measure` on files it cannot measure: exit 2, the problem
/// named, never a panic.
#[test]
fn measure_refuses_bad_files_with_exit_2() {
    use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmPlatformHeader, IgvmRevision};
    use igvm_defs::{
        IGVM_VHS_SUPPORTED_PLATFORM, IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType,
    };
    let file = |platform_type, directives| {
        let f = IgvmFile::new(
            IgvmRevision::V1,
            vec![IgvmPlatformHeader::SupportedPlatform(
                IGVM_VHS_SUPPORTED_PLATFORM {
                    compatibility_mask: 1,
                    highest_vtl: 0,
                    platform_type,
                    platform_version: 1,
                    shared_gpa_boundary: 0,
                },
            )],
            vec![],
            directives,
        )
        .unwrap();
        let mut out = Vec::new();
        f.serialize(&mut out).unwrap();
        out
    };
    let page = IgvmDirectiveHeader::PageData {
        gpa: 0x1000,
        compatibility_mask: 1,
        flags: IgvmPageDataFlags::new(),
        data_type: IgvmPageDataType::NORMAL,
        data: vec![1; 4096],
    };
    let native = tmp("native.igvm", &file(IgvmPlatformType::NATIVE, vec![page]));
    let measure = |p: &Path| {
        run(&[
            "measure".as_ref(),
            "--platform".as_ref(),
            "snp".as_ref(),
            p.as_os_str(),
        ])
    };
    let (code, err) = measure(&native);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no SEV_SNP platform header"), "{err}");
    let (code, err) = measure(&tmp("garbage.igvm", b"IGVM and then nothing"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid IGVM file"), "{err}");
    let (code, err) = measure(Path::new("/nonexistent/file.igvm"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read"), "{err}");
    let (code, err) = run(&[
        "measure".as_ref(),
        "--platform".as_ref(),
        "tdx".as_ref(),
        native.as_os_str(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid value 'tdx'"), "{err}");
}
