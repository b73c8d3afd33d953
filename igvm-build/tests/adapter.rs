//! End-to-end tests of the QEMU adapter: tiny IGVM files are built here with
//! the `igvm` crate (page tables, a payload assembled with iced, a parameter
//! area with memory map and command line, a native VP context) and booted on
//! the installed QEMU with `-accel tcg`.

use iced_x86::code_asm::*;
use igvm::{IgvmDirectiveHeader, IgvmFile, IgvmPlatformHeader, IgvmRevision};
use igvm_build::qemu::{self, BootOptions, BootOutcome, Mode};
use igvm_defs::{
    IGVM_VHS_PARAMETER, IGVM_VHS_PARAMETER_INSERT, IGVM_VHS_SUPPORTED_PLATFORM,
    IgvmNativeVpContextX64, IgvmPageDataFlags, IgvmPageDataType, IgvmPlatformType,
};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use svsm_bootdefs::ExitCode;
use zerocopy::FromZeros;

mod scratch;
use scratch::{Scratch, TmpFile};

const MASK: u32 = 1;
const PML4: u64 = 0x20_0000;
const PDPT: u64 = 0x20_1000;
const PD_LOW: u64 = 0x20_2000; // 0..1 GiB
const PD_TOP: u64 = 0x20_3000; // 3..4 GiB (the ROM window)
const CODE: u64 = 0x10_0000;
const GDT: u64 = 0x10_1000;
const PARAMS: u64 = 0x10_2000;
const CMDLINE_OFFSET: u32 = 0x800;
const STACK_TOP: u64 = 0x10_8000;
const MEM_MIB: u64 = 128;
const RSI_MAGIC: u64 = 0x1234_5678_9abc_def0;
const R15_MAGIC: u64 = 0x0f0e_0d0c_0b0a_0908;
const DEBUG_EXIT: u16 = 0xf4;

/// How to build the test image.
struct Image {
    /// The 64-bit payload at `CODE`.
    payload: fn(&mut CodeAssembler) -> Result<(), IcedError>,
    /// Map the ROM window (false: the hand-off check must refuse the file).
    map_rom: bool,
    /// Mark the ROM window no-execute.
    rom_nx: bool,
    /// Include the VP context directive.
    context: bool,
    /// Directives appended after the standard ones (before the VP context).
    extra: Vec<IgvmDirectiveHeader>,
    /// The platform of the single platform header.
    platform: IgvmPlatformType,
}

impl Image {
    fn new(payload: fn(&mut CodeAssembler) -> Result<(), IcedError>) -> Self {
        Self {
            payload,
            map_rom: true,
            rom_nx: false,
            context: true,
            extra: Vec::new(),
            platform: IgvmPlatformType::NATIVE,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let page = |gpa: u64, data: Vec<u8>| {
            let mut data = data;
            assert!(data.len() <= 4096);
            data.resize(4096, 0);
            IgvmDirectiveHeader::PageData {
                gpa,
                compatibility_mask: MASK,
                flags: IgvmPageDataFlags::new(),
                data_type: IgvmPageDataType::NORMAL,
                data,
            }
        };
        let qwords = |v: &[u64]| v.iter().flat_map(|q| q.to_le_bytes()).collect::<Vec<u8>>();
        // Page tables: 2 MiB identity pages for 0..1 GiB and 3..4 GiB.
        let nx = if self.rom_nx { 1u64 << 63 } else { 0 };
        let mut pdpt = vec![0u64; 512];
        pdpt[0] = PD_LOW | 3;
        if self.map_rom {
            pdpt[3] = PD_TOP | 3;
        }
        let pd_low: Vec<u64> = (0..512).map(|i| (i << 21) | 0x83).collect();
        let pd_top: Vec<u64> = (0..512)
            .map(|i| (0xC000_0000 + (i << 21)) | 0x83 | nx)
            .collect();
        // GDT: null, code64 (0x08), data (0x10), accessed bits preset.
        let gdt = [0u64, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF];

        let mut a = CodeAssembler::new(64).unwrap();
        (self.payload)(&mut a).unwrap();
        let code = a.assemble(CODE).unwrap();

        let mut ctx = IgvmNativeVpContextX64::new_box_zeroed().unwrap();
        ctx.rip = CODE;
        ctx.rsp = STACK_TOP;
        ctx.rsi = RSI_MAGIC;
        ctx.r15 = R15_MAGIC;
        ctx.rflags = 0x2;
        ctx.gdtr_base = GDT;
        ctx.gdtr_limit = (gdt.len() * 8 - 1) as u16;
        ctx.code_selector = 0x08;
        ctx.data_selector = 0x10;
        ctx.cr0 = 0x8000_0033; // PG | NE | ET | MP | PE
        ctx.cr3 = PML4;
        ctx.cr4 = 0x20; // PAE
        ctx.efer = 0x900; // NXE | LME

        let mut directives = vec![
            page(PML4, qwords(&[PDPT | 3])),
            page(PDPT, qwords(&pdpt)),
            page(PD_LOW, qwords(&pd_low)),
            page(PD_TOP, qwords(&pd_top)),
            page(CODE, code),
            page(GDT, qwords(&gdt)),
            IgvmDirectiveHeader::ParameterArea {
                number_of_bytes: 4096,
                parameter_area_index: 0,
                initial_data: vec![],
            },
            IgvmDirectiveHeader::MemoryMap(IGVM_VHS_PARAMETER {
                parameter_area_index: 0,
                byte_offset: 0,
            }),
            IgvmDirectiveHeader::CommandLine(IGVM_VHS_PARAMETER {
                parameter_area_index: 0,
                byte_offset: CMDLINE_OFFSET,
            }),
            IgvmDirectiveHeader::ParameterInsert(IGVM_VHS_PARAMETER_INSERT {
                gpa: PARAMS,
                compatibility_mask: MASK,
                parameter_area_index: 0,
            }),
        ];
        directives.extend(self.extra.iter().cloned());
        if self.context {
            directives.push(IgvmDirectiveHeader::X64NativeVpContext {
                compatibility_mask: MASK,
                vp_index: 0,
                context: ctx,
            });
        }
        let platform = IgvmPlatformHeader::SupportedPlatform(IGVM_VHS_SUPPORTED_PLATFORM {
            compatibility_mask: MASK,
            highest_vtl: 0,
            platform_type: self.platform,
            platform_version: 1,
            shared_gpa_boundary: 0,
        });
        let file = IgvmFile::new(IgvmRevision::V1, vec![platform], vec![], directives).unwrap();
        let mut out = Vec::new();
        file.serialize(&mut out).unwrap();
        out
    }

    fn write(&self, name: &str) -> TmpFile {
        TmpFile::new("igvm-build-adapter-test", name, &self.bytes())
    }
}

fn scratch() -> Scratch {
    Scratch::new("igvm-build-adapter-test")
}

fn print(a: &mut CodeAssembler, s: &str) -> Result<(), IcedError> {
    a.mov(dx, 0x3f8u32)?;
    for b in s.bytes() {
        a.mov(al, u32::from(b))?;
        a.out(dx, al)?;
    }
    Ok(())
}

fn exit(a: &mut CodeAssembler, code: ExitCode) -> Result<(), IcedError> {
    a.mov(dx, u32::from(DEBUG_EXIT))?;
    a.mov(eax, code as u32)?;
    a.out(dx, eax)?;
    let mut spin = a.create_label();
    a.set_label(&mut spin)?;
    a.hlt()?;
    a.jmp(spin)
}

/// Prints "hello" and exits with success.
fn hello(a: &mut CodeAssembler) -> Result<(), IcedError> {
    print(a, "hello\n")?;
    exit(a, ExitCode::Success)
}

/// Checks the registers from the VP context, the memory map and the command
/// line (`test=adapter`) the adapter filled in; prints what failed.
fn checker(a: &mut CodeAssembler) -> Result<(), IcedError> {
    let mut bad_regs = a.create_label();
    let mut bad_mmap = a.create_label();
    let mut bad_cmdline = a.create_label();
    print(a, "hello\n")?;
    // Registers (checked before anything clobbers them, except rdx/rax by print).
    a.mov(rcx, RSI_MAGIC)?;
    a.cmp(rsi, rcx)?;
    a.jne(bad_regs)?;
    a.mov(rcx, R15_MAGIC)?;
    a.cmp(r15, rcx)?;
    a.jne(bad_regs)?;
    a.mov(rcx, STACK_TOP)?;
    a.cmp(rsp, rcx)?;
    a.jne(bad_regs)?;
    a.mov(cx, ss)?;
    a.cmp(cx, 0x10)?;
    a.jne(bad_regs)?;
    // Memory map: one RAM range 0..MEM_MIB, type MEMORY, then a zero entry.
    a.mov(rbx, PARAMS)?;
    a.cmp(qword_ptr(rbx), 0)?;
    a.jne(bad_mmap)?;
    a.mov(rcx, (MEM_MIB << 20) / 4096)?;
    a.cmp(qword_ptr(rbx + 8), rcx)?;
    a.jne(bad_mmap)?;
    a.cmp(dword_ptr(rbx + 16), 0)?;
    a.jne(bad_mmap)?;
    a.cmp(qword_ptr(rbx + 24 + 8), 0)?;
    a.jne(bad_mmap)?;
    // Command line.
    for (i, b) in b"test=adapter\0".iter().enumerate() {
        a.cmp(
            byte_ptr(rbx + CMDLINE_OFFSET as i32 + i as i32),
            u32::from(*b),
        )?;
        a.jne(bad_cmdline)?;
    }
    print(a, "checks ok\n")?;
    exit(a, ExitCode::Success)?;
    for (label, what) in [
        (&mut bad_regs, "FAIL regs\n"),
        (&mut bad_mmap, "FAIL mmap\n"),
        (&mut bad_cmdline, "FAIL cmdline\n"),
    ] {
        a.set_label(label)?;
        print(a, what)?;
        exit(a, ExitCode::TestFailure)?;
    }
    Ok(())
}

/// Executes an invalid opcode with no IDT: a triple fault.
fn triple_fault(a: &mut CodeAssembler) -> Result<(), IcedError> {
    print(a, "dying\n")?;
    a.ud2()
}

/// Spins forever.
fn spin(a: &mut CodeAssembler) -> Result<(), IcedError> {
    print(a, "spinning\n")?;
    let mut l = a.create_label();
    a.set_label(&mut l)?;
    a.jmp(l)
}

fn boot(path: &Path, cmdline: &str) -> BootOutcome {
    let opts = BootOptions::new(path)
        .cmdline(cmdline)
        .memory_mib(MEM_MIB)
        .mode(Mode::Adapter)
        .timeout(Duration::from_secs(60));
    qemu::boot(&opts).unwrap()
}

#[test]
fn hello_boots_and_exits_success() {
    let p = Image::new(hello).write("hello.igvm");
    let out = boot(&p, "");
    assert_eq!(out.serial, "hello\n", "{out:?}");
    assert_eq!(out.exit, Some(ExitCode::Success), "{}", out.describe());
    assert_eq!(out.qemu_status, 33);
    assert!(out.success());
    assert!(!out.timed_out);
    assert_eq!(out.mode, Mode::Adapter);
}

#[test]
fn parameters_and_context_reach_the_guest() {
    let p = Image::new(checker).write("checker.igvm");
    let out = boot(&p, "test=adapter");
    assert_eq!(out.serial, "hello\nchecks ok\n", "{}", out.describe());
    assert_eq!(out.exit, Some(ExitCode::Success));
    // The payload really compares: another command line fails.
    let out = boot(&p, "test=other");
    assert_eq!(out.serial, "hello\nFAIL cmdline\n");
    assert_eq!(out.exit, Some(ExitCode::TestFailure));
    assert_eq!(out.qemu_status, 35);
    assert!(!out.success());
    // ... and so does another memory size.
    let opts = BootOptions::new(&p)
        .cmdline("test=adapter")
        .memory_mib(MEM_MIB * 2)
        .mode(Mode::Adapter);
    let out = qemu::boot(&opts).unwrap();
    assert_eq!(out.serial, "hello\nFAIL mmap\n");
    assert_eq!(out.exit, Some(ExitCode::TestFailure));
}

#[test]
fn triple_fault_is_not_success() {
    let p = Image::new(triple_fault).write("triple.igvm");
    let out = boot(&p, "");
    assert_eq!(out.serial, "dying\n");
    assert_eq!(out.qemu_status, 0);
    assert_eq!(out.exit, None);
    assert!(!out.success());
    assert_eq!(out.describe(), "guest exited: triple fault (status 0)");
}

#[test]
fn unmapped_or_nx_rom_is_refused_before_booting() {
    let mut img = Image::new(hello);
    img.map_rom = false;
    let p = img.write("no-rom.igvm");
    let e = format!(
        "{:#}",
        qemu::boot(&BootOptions::new(&p).mode(Mode::Adapter)).unwrap_err()
    );
    assert!(e.contains("is not present"), "{e}");
    assert!(e.contains("identity-map the reset ROM"), "{e}");
    let mut img = Image::new(hello);
    img.rom_nx = true;
    let p = img.write("nx-rom.igvm");
    let e = format!(
        "{:#}",
        qemu::boot(&BootOptions::new(&p).mode(Mode::Adapter)).unwrap_err()
    );
    assert!(e.contains("not executable"), "{e}");
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_igvm-build"))
}

#[test]
fn run_subcommand_exit_codes_and_serial_log() {
    let p = Image::new(hello).write("run-hello.igvm");
    let dir = scratch();
    let log = dir.join("serial.log");
    let out = bin()
        .args(["run", "--mode", "adapter", "--serial-log"])
        .arg(&log)
        .arg(&p)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "hello\n");
    assert!(
        stderr.contains("igvm-build: guest exited: success (qemu status 33)"),
        "{stderr}"
    );

    let p = Image::new(triple_fault).write("run-triple.igvm");
    let out = bin()
        .args(["run", "--mode", "adapter"])
        .arg(&p)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("triple fault (status 0)"), "{stderr}");
}

#[test]
fn timeout_kills_qemu_and_fails() {
    let p = Image::new(spin).write("spin.igvm");
    let out = bin()
        .args(["run", "--mode", "adapter", "--timeout", "2"])
        .arg(&p)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("timeout"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "spinning\n");
}

fn assert_bad_input(path: &Path, expect: &str) {
    let out = bin()
        .args(["run", "--mode", "adapter"])
        .arg(path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("igvm-build: error:"), "{stderr}");
    assert!(stderr.contains(expect), "expected {expect:?} in {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_input_exits_2_with_a_reason() {
    let dir = scratch();
    assert_bad_input(&dir.join("does-not-exist.igvm"), "cannot read IGVM file");
    let good = Image::new(hello).bytes();
    let truncated = dir.join("truncated.igvm");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    assert_bad_input(&truncated, "truncated");
    // Deterministic pseudo-random bytes (xorshift).
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let random = dir.join("random.igvm");
    std::fs::write(&random, &noise).unwrap();
    assert_bad_input(&random, "not an IGVM file");
    // A valid header with a corrupted directive section fails the checksum.
    let mut corrupt = good.clone();
    corrupt[40] ^= 0xff;
    let c = dir.join("corrupt.igvm");
    std::fs::write(&c, &corrupt).unwrap();
    assert_bad_input(&c, "invalid IGVM file");
}

/// Prints the kernel's ready marker, then exits with success.
fn ready(a: &mut CodeAssembler) -> Result<(), IcedError> {
    print(a, "boot\n")?;
    print(a, svsm_bootdefs::READY_MARKER)?;
    print(a, "\n")?;
    exit(a, ExitCode::Success)
}

#[test]
fn ready_marker_is_timed_and_benchmarked() {
    let p = Image::new(ready).write("ready.igvm");
    let out = boot(&p, "");
    assert!(out.success(), "{}", out.describe());
    assert!(out.has_line(svsm_bootdefs::READY_MARKER));
    let t = out.ready_after.expect("ready marker seen");
    assert!(t <= out.elapsed, "{t:?} > {:?}", out.elapsed);
    // No marker, no time.
    let p2 = Image::new(hello).write("no-ready.igvm");
    assert_eq!(boot(&p2, "").ready_after, None);

    let out = bin()
        .args(["bench-boot", "--runs", "3", "--mode", "adapter"])
        .arg(&p)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(stdout.matches("ready after").count(), 3, "{stdout}");
    assert!(stdout.contains("median time to ready"), "{stdout}");
    let out = bin()
        .args(["bench-boot", "--runs", "1", "--mode", "adapter"])
        .arg(&p2)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("no boot reached the ready marker"),
        "{stdout}"
    );
}

fn page_at(gpa: u64) -> IgvmDirectiveHeader {
    IgvmDirectiveHeader::PageData {
        gpa,
        compatibility_mask: MASK,
        flags: IgvmPageDataFlags::new(),
        data_type: IgvmPageDataType::NORMAL,
        data: vec![0xaa; 4096],
    }
}

fn plan_error(img: Image, cmdline: &str) -> String {
    let bytes = img.bytes();
    match qemu::plan::plan(&bytes, cmdline, MEM_MIB << 20) {
        Ok(_) => panic!("plan accepted a bad file"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn plan_translates_the_good_file() {
    let p = qemu::plan::plan(&Image::new(checker).bytes(), "test=adapter", MEM_MIB << 20).unwrap();
    assert_eq!(p.ram, vec![(0, MEM_MIB << 20)]);
    assert!(p.has_command_line);
    assert_eq!(p.rom.len(), 64 * 1024);
    // Contiguous pages are coalesced: code+GDT+params (0x100000..0x103000)
    // and the four page-table pages (0x200000..0x204000).
    let blobs: Vec<(u64, usize)> = p.blobs.iter().map(|b| (b.gpa, b.data.len())).collect();
    assert_eq!(blobs, vec![(CODE, 0x3000), (PML4, 0x4000)]);
    let params = &p.blobs[0].data[0x2000..];
    assert_eq!(&params[CMDLINE_OFFSET as usize..][..13], b"test=adapter\0");
    assert_eq!(
        u64::from_le_bytes(params[8..16].try_into().unwrap()),
        (MEM_MIB << 20) / 4096
    );
}

#[test]
fn plan_refuses_inconsistent_files() {
    let with = |extra: Vec<IgvmDirectiveHeader>| {
        let mut img = Image::new(hello);
        img.extra = extra;
        img
    };
    let e = plan_error(with(vec![page_at(MEM_MIB << 20)]), "");
    assert!(e.contains("outside the 128 MiB of guest RAM"), "{e}");
    let e = plan_error(with(vec![page_at(0xB_8000)]), "");
    assert!(e.contains("legacy hole"), "{e}");
    let e = plan_error(with(vec![page_at(CODE)]), "");
    assert!(e.contains("overlaps"), "{e}");
    let e = plan_error(with(vec![]), &"x".repeat(4096));
    assert!(e.contains("does not fit parameter area 0"), "{e}");
    let e = plan_error(
        with(vec![
            IgvmDirectiveHeader::ParameterArea {
                number_of_bytes: 4096,
                parameter_area_index: 1,
                initial_data: vec![],
            },
            IgvmDirectiveHeader::Madt(IGVM_VHS_PARAMETER {
                parameter_area_index: 1,
                byte_offset: 0,
            }),
        ]),
        "",
    );
    assert!(
        e.contains("not supported by the QEMU adapter") && e.contains("Madt"),
        "{e}"
    );
    let mut img = Image::new(hello);
    img.context = false;
    let e = plan_error(img, "");
    assert!(e.contains("no native VP context"), "{e}");
    let mut img = Image::new(hello);
    img.platform = IgvmPlatformType::SEV_SNP;
    img.context = false;
    // igvm 0.5 wants SNP platform version 1 too; the file is valid but not native.
    let e = plan_error(img, "");
    assert!(e.contains("no NATIVE platform header"), "{e}");
}

#[test]
fn timeout_zero_means_no_limit_and_zero_runs_are_refused() {
    let p = Image::new(hello).write("timeout0-hello.igvm");
    let out = bin()
        .args(["run", "--mode", "adapter", "--timeout", "0"])
        .arg(&p)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    let out = bin()
        .args(["bench-boot", "--runs", "0", "--mode", "adapter"])
        .arg(&p)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--runs"), "{stderr}");
}

/// These test files carry a COMMAND_LINE parameter: the adapter fills it,
/// upstream QEMU's loader would refuse the file, and the loader check says so.
#[test]
fn command_line_directive_is_adapter_only() {
    let bytes = Image::new(hello).bytes();
    assert_eq!(
        qemu::loaders::upstream_refusals(&bytes).unwrap(),
        vec!["IGVM_VHT_COMMAND_LINE (0x30e)".to_string()]
    );
    let qemu = std::path::Path::new("qemu-system-x86_64");
    let info = qemu::loaders::probe(qemu).unwrap();
    let (mode, why) = qemu::loaders::choose(Mode::Auto, qemu, &bytes).unwrap();
    assert_eq!(mode, Mode::Adapter, "{why}");
    if info.igvm_cfg {
        assert!(why.contains("COMMAND_LINE"), "{why}");
    } else {
        assert!(why.contains("no IGVM loader"), "{why}");
    }
    let e = qemu::loaders::choose(Mode::IgvmCfg, qemu, &bytes).unwrap_err();
    assert!(
        format!("{e:#}").starts_with("cannot use --mode igvm-cfg: "),
        "{e:#}"
    );
}
