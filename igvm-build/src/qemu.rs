//! Running an IGVM file (native platform) on QEMU.
//!
//! Two ways to load the file:
//! - **adapter** (works on any QEMU, e.g. Debian's 7.2): the directives are
//!   translated by [`plan`] into `-device loader,...,force-raw=on` blobs and a
//!   reset-vector ROM (`-bios`, see [`crate::rom`]) that applies the VP context;
//! - **igvm-cfg** (QEMU with IGVM support): `-object igvm-cfg` loads the file
//!   itself, and QEMU fills the parameter areas.
//!
//! `--mode auto` picks igvm-cfg when the QEMU has a loader (10.2 or later)
//! that handles every header type in the file, else the adapter
//! ([`loaders`]). See docs/qemu-adapter.md.
//!
//! Library use (integration tests): build a [`BootOptions`], call [`boot`],
//! assert on the [`BootOutcome`].

pub mod loaders;
pub mod plan;

use anyhow::{Context, Result, anyhow, bail};
use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use svsm_bootdefs::{ExitCode, READY_MARKER, layout};

/// How the IGVM file is handed to QEMU.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `igvm-cfg` if the QEMU's loader can run the file, else the adapter.
    Auto,
    /// Always translate the directives (loader blobs + reset-vector ROM).
    Adapter,
    /// Always use `-object igvm-cfg`; refused before QEMU starts when the
    /// QEMU or the file does not allow it.
    IgvmCfg,
}

/// Arguments of `igvm-build run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The IGVM file to boot.
    pub igvm: PathBuf,
    /// Replaces the command line baked into the file (e.g. `test=<name>`):
    /// boots a copy whose configuration page holds it. Empty: as built.
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// Guest RAM in MiB.
    #[arg(long, default_value_t = layout::DEFAULT_GUEST_RAM >> 20)]
    pub memory: u64,
    /// CPUs (QEMU `-smp`); the kernel reads the count from QEMU's fw_cfg
    /// and starts the others (docs/smp.md).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=255))]
    pub smp: u32,
    /// The QEMU binary [default: $SVSM_QEMU, else qemu-system-x86_64].
    #[arg(long)]
    pub qemu: Option<PathBuf>,
    /// The QEMU machine (`pc`, or `q35` with igvm-cfg; the adapter models `pc`).
    #[arg(long, default_value = "pc")]
    pub machine: String,
    /// Also write the serial output to this file.
    #[arg(long)]
    pub serial_log: Option<PathBuf>,
    /// Kill QEMU after this many seconds (exit 1); 0 waits without a limit.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// How the file is handed to QEMU.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
    /// Print the QEMU command line (to stderr) before running it.
    #[arg(long)]
    pub print_cmd: bool,
    /// Keep the ROM and blobs in this directory instead of a temporary one.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Extra QEMU arguments (after `--`).
    #[arg(last = true)]
    pub extra: Vec<OsString>,
}

/// Arguments of `igvm-build bench-boot`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// The IGVM file to boot.
    pub igvm: PathBuf,
    /// Number of boots (at least 1).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Written to the IGVM COMMAND_LINE parameter (e.g. `test=<name>`).
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// Guest RAM in MiB.
    #[arg(long, default_value_t = layout::DEFAULT_GUEST_RAM >> 20)]
    pub memory: u64,
    /// The QEMU binary [default: $SVSM_QEMU, else qemu-system-x86_64].
    #[arg(long)]
    pub qemu: Option<PathBuf>,
    /// Per-boot timeout in seconds; 0 waits without a limit.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// How the file is handed to QEMU.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,
}

/// What to boot and how. `BootOptions::new(path)` gives the defaults of
/// `igvm-build run`, with the serial output captured but not echoed.
#[derive(Debug, Clone)]
pub struct BootOptions {
    pub igvm: PathBuf,
    pub cmdline: String,
    pub memory_mib: u64,
    /// CPUs (`-smp`; 1 passes nothing).
    pub cpus: u32,
    pub qemu: PathBuf,
    /// `-machine` type.
    pub machine: String,
    pub timeout: Duration,
    pub mode: Mode,
    /// Copy the serial output to our stdout as it arrives.
    pub echo: bool,
    /// Copy the serial output to this file as it arrives.
    pub serial_log: Option<PathBuf>,
    /// Keep the generated files here (else a temporary directory, removed after the run).
    pub work_dir: Option<PathBuf>,
    /// Print the QEMU command line to stderr.
    pub print_cmd: bool,
    pub extra_args: Vec<OsString>,
}

impl BootOptions {
    pub fn new(igvm: impl Into<PathBuf>) -> Self {
        Self {
            igvm: igvm.into(),
            cmdline: String::new(),
            memory_mib: layout::DEFAULT_GUEST_RAM >> 20,
            cpus: 1,
            qemu: default_qemu(),
            machine: "pc".to_string(),
            timeout: Duration::from_secs(60),
            mode: Mode::Auto,
            echo: false,
            serial_log: None,
            work_dir: None,
            print_cmd: false,
            extra_args: Vec::new(),
        }
    }

    /// Sets the number of CPUs (QEMU `-smp`).
    pub fn cpus(mut self, n: u32) -> Self {
        self.cpus = n;
        self
    }

    /// Sets the IGVM command line (e.g. `test=<name>`).
    pub fn cmdline(mut self, s: impl Into<String>) -> Self {
        self.cmdline = s.into();
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    pub fn mode(mut self, m: Mode) -> Self {
        self.mode = m;
        self
    }

    pub fn memory_mib(mut self, m: u64) -> Self {
        self.memory_mib = m;
        self
    }

    pub fn echo(mut self, on: bool) -> Self {
        self.echo = on;
        self
    }

    pub fn qemu(mut self, q: impl Into<PathBuf>) -> Self {
        self.qemu = q.into();
        self
    }

    pub fn machine(mut self, m: impl Into<String>) -> Self {
        self.machine = m.into();
        self
    }

    pub fn extra_arg(mut self, a: impl Into<OsString>) -> Self {
        self.extra_args.push(a.into());
        self
    }
}

/// The result of one boot.
#[derive(Debug, Clone)]
pub struct BootOutcome {
    /// The guest's isa-debug-exit code, if QEMU's status maps to one.
    pub exit: Option<ExitCode>,
    /// QEMU's exit status (0 = triple fault with -no-reboot; -1 = killed by a signal).
    pub qemu_status: i32,
    /// Everything the guest printed on COM1 (lossy UTF-8).
    pub serial: String,
    /// QEMU's own stderr.
    pub qemu_stderr: String,
    /// QEMU was killed after `BootOptions::timeout`.
    pub timed_out: bool,
    /// Time from spawning QEMU to the `READY_MARKER` line, if it appeared.
    pub ready_after: Option<Duration>,
    /// Time from spawning QEMU to its exit.
    pub elapsed: Duration,
    /// The mode actually used (`Adapter` or `IgvmCfg`).
    pub mode: Mode,
    /// Why that mode (e.g. `adapter: QEMU ... has no IGVM loader`).
    pub mode_reason: String,
}

impl BootOutcome {
    /// True only for a guest that exited through isa-debug-exit with `Success`.
    pub fn success(&self) -> bool {
        !self.timed_out && self.exit == Some(ExitCode::Success)
    }

    /// One-line description: `guest exited: success (qemu status 33)`.
    pub fn describe(&self) -> String {
        if self.timed_out {
            return "timed out: QEMU was killed".to_string();
        }
        match (self.exit, self.qemu_status) {
            (Some(c), s) => format!("guest exited: {} (qemu status {s})", c.name()),
            (None, 0) => "guest exited: triple fault (status 0)".to_string(),
            (None, -1) => "QEMU was killed by a signal".to_string(),
            (None, s) => {
                let err = self.qemu_stderr.trim();
                if err.is_empty() {
                    format!("guest exited: unknown exit code (qemu status {s})")
                } else {
                    format!("QEMU failed (status {s}): {err}")
                }
            }
        }
    }

    /// The serial lines, without trailing `\r`.
    pub fn serial_lines(&self) -> impl Iterator<Item = &str> {
        self.serial.lines().map(|l| l.trim_end_matches('\r'))
    }

    /// Whether a serial line starts with `prefix` (at column 0).
    pub fn has_line(&self, prefix: &str) -> bool {
        self.serial_lines().any(|l| l.starts_with(prefix))
    }
}

/// The QEMU binary when none is given: `$SVSM_QEMU`, else `qemu-system-x86_64`.
pub fn default_qemu() -> PathBuf {
    std::env::var_os("SVSM_QEMU")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("qemu-system-x86_64"), PathBuf::from)
}

/// A directory removed on drop (unless it was given by the user).
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl WorkDir {
    fn new(keep: Option<&Path>) -> Result<Self> {
        if let Some(p) = keep {
            fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
            return Ok(Self {
                path: p.to_path_buf(),
                remove: false,
            });
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("igvm-build-{}-{n}-{nanos:x}", std::process::id()));
        fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path, remove: true })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// The QEMU arguments shared by both modes.
fn common_args(mem_mib: u64) -> Vec<OsString> {
    [
        "-accel",
        "tcg",
        // AMD-V with nested paging: the SVSM hosts its guest with VMRUN.
        "-cpu",
        "qemu64,+svm,+npt",
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-m",
    ]
    .iter()
    .map(OsString::from)
    .chain([OsString::from(format!("{mem_mib}M"))])
    .collect()
}

/// Writes the plan's files into `dir` and returns the QEMU arguments for the adapter.
pub fn adapter_args(p: &plan::LoadPlan, dir: &Path, mem_mib: u64) -> Result<Vec<OsString>> {
    // The plan's RAM ranges and legacy hole are the pc machine's.
    let mut args: Vec<OsString> = vec!["-machine".into(), "pc".into()];
    args.extend(common_args(mem_mib));
    let rom = dir.join("reset-rom.bin");
    fs::write(&rom, &p.rom).with_context(|| format!("cannot write {}", rom.display()))?;
    args.push("-bios".into());
    args.push(rom.into_os_string());
    for b in &p.blobs {
        let f = dir.join(format!("blob-{:x}.bin", b.gpa));
        fs::write(&f, &b.data).with_context(|| format!("cannot write {}", f.display()))?;
        let mut dev = OsString::from("loader,file=");
        dev.push(f.as_os_str());
        dev.push(format!(",addr={:#x},force-raw=on", b.gpa));
        args.push("-device".into());
        args.push(dev);
    }
    Ok(args)
}

/// QEMU arguments for a QEMU that loads the IGVM file itself.
pub fn igvm_cfg_args(igvm: &Path, machine: &str, mem_mib: u64) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "-machine".into(),
        format!("{machine},igvm-cfg=igvm0").into(),
    ];
    args.extend(common_args(mem_mib));
    let mut obj = OsString::from("igvm-cfg,id=igvm0,file=");
    obj.push(igvm.as_os_str());
    args.push("-object".into());
    args.push(obj);
    args
}

fn shell_line(qemu: &Path, args: &[OsString]) -> String {
    std::iter::once(qemu.as_os_str())
        .chain(args.iter().map(|a| a.as_os_str()))
        .map(|a| {
            let s = a.to_string_lossy();
            if s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_=,./:+".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Finds the first line starting with the ready marker in complete lines of `text`.
fn scan_ready(text: &str) -> bool {
    text.split('\n').any(|l| l.starts_with(READY_MARKER))
}

/// Accumulates serial output and reports when a line starting with
/// `READY_MARKER` has been completed.
#[derive(Default)]
struct ReadyScanner {
    all: Vec<u8>,
    /// Bytes before this index belong to complete lines already scanned.
    scanned: usize,
    found: bool,
}

impl ReadyScanner {
    /// Adds a chunk; true the first time the marker line is complete.
    fn push(&mut self, chunk: &[u8]) -> bool {
        self.all.extend_from_slice(chunk);
        if self.found {
            return false;
        }
        let Some(i) = self.all[self.scanned..].iter().rposition(|&b| b == b'\n') else {
            return false;
        };
        let nl = self.scanned + i;
        self.found = scan_ready(&String::from_utf8_lossy(&self.all[self.scanned..nl]));
        self.scanned = nl + 1;
        self.found
    }

    /// At end of output: true if the unterminated last line is the marker.
    fn finish(&mut self) -> bool {
        if self.found {
            return false;
        }
        self.found = scan_ready(&String::from_utf8_lossy(&self.all[self.scanned..]));
        self.found
    }
}

/// The file's bytes with `cmdline` in place of the built-in command line:
/// in its configuration page (a copy of the file), or for a file without
/// one, left to the adapter's COMMAND_LINE handling.
fn with_cmdline(opts: &BootOptions, bytes: Vec<u8>) -> Result<(Vec<u8>, bool)> {
    if opts.cmdline.is_empty() {
        return Ok((bytes, false));
    }
    match crate::configpage::with_cmdline(&bytes, &opts.cmdline)? {
        Some(variant) => Ok((variant, true)),
        None => Ok((bytes, false)),
    }
}

/// Boots the IGVM file once and reports what happened. Errors are bad input
/// (unreadable or invalid file, unsupported directive, page tables that do
/// not allow the hand-off, a loader that cannot run the file) or a QEMU that
/// cannot be started.
pub fn boot(opts: &BootOptions) -> Result<BootOutcome> {
    let name = || opts.igvm.display().to_string();
    let bytes = fs::read(&opts.igvm)
        .with_context(|| format!("cannot read IGVM file {}", opts.igvm.display()))?;
    let mem = opts
        .memory_mib
        .checked_mul(1 << 20)
        .ok_or_else(|| anyhow!("--memory {} MiB is too large", opts.memory_mib))?;
    let (bytes, in_config_page) = with_cmdline(opts, bytes).with_context(name)?;
    let (mode, mode_reason) = loaders::choose(opts.mode, &opts.qemu, &bytes).with_context(name)?;
    let work = WorkDir::new(opts.work_dir.as_deref())?;
    let mut args = match mode {
        Mode::IgvmCfg => {
            // Still validate the file so bad input fails the same way.
            plan::parse_native(&bytes).with_context(name)?;
            if !opts.cmdline.is_empty() && !in_config_page {
                bail!(
                    "{}: a command line was given but the file has no SVSM configuration page",
                    opts.igvm.display()
                );
            }
            let file = if in_config_page {
                let f = work.path.join("svsm-cmdline.igvm");
                fs::write(&f, &bytes).with_context(|| format!("cannot write {}", f.display()))?;
                f
            } else {
                opts.igvm.clone()
            };
            igvm_cfg_args(&file, &opts.machine, opts.memory_mib)
        }
        _ => {
            if opts.machine != "pc" {
                bail!(
                    "the adapter runs the pc machine only (got --machine {}); q35 needs a QEMU with igvm-cfg",
                    opts.machine
                );
            }
            let p = plan::plan(&bytes, &opts.cmdline, mem).with_context(name)?;
            if !opts.cmdline.is_empty() && !in_config_page && !p.has_command_line {
                bail!(
                    "{}: a command line was given but the file has neither an SVSM configuration page nor a COMMAND_LINE parameter",
                    opts.igvm.display()
                );
            }
            adapter_args(&p, &work.path, opts.memory_mib)?
        }
    };
    if opts.cpus > 1 {
        args.push("-smp".into());
        args.push(opts.cpus.to_string().into());
    }
    args.extend(opts.extra_args.iter().cloned());
    if opts.print_cmd {
        eprintln!("igvm-build: {}", shell_line(&opts.qemu, &args));
    }
    let mut out = run_qemu(&opts.qemu, &args, opts)?;
    out.mode = mode;
    out.mode_reason = mode_reason;
    Ok(out)
}

fn run_qemu(qemu: &Path, args: &[OsString], opts: &BootOptions) -> Result<BootOutcome> {
    let mut log = match &opts.serial_log {
        Some(p) => Some(
            fs::File::create(p)
                .with_context(|| format!("cannot create serial log {}", p.display()))?,
        ),
        None => None,
    };
    let start = Instant::now();
    let mut child = Command::new(qemu)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", qemu.display()))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let ready: Arc<Mutex<Option<Duration>>> = Arc::new(Mutex::new(None));
    let echo = opts.echo;
    let ready_w = Arc::clone(&ready);
    let reader = std::thread::spawn(move || -> Vec<u8> {
        let mut scan = ReadyScanner::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            if echo {
                let mut so = std::io::stdout().lock();
                let _ = so.write_all(chunk);
                let _ = so.flush();
            }
            if let Some(f) = log.as_mut() {
                let _ = f.write_all(chunk);
            }
            if scan.push(chunk) {
                ready_w
                    .lock()
                    .expect("ready lock")
                    .get_or_insert(start.elapsed());
            }
        }
        if scan.finish() {
            ready_w
                .lock()
                .expect("ready lock")
                .get_or_insert(start.elapsed());
        }
        scan.all
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });

    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().context("waiting for QEMU")? {
            break st;
        }
        if start.elapsed() >= opts.timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait().context("waiting for QEMU after kill")?;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let serial = reader
        .join()
        .map_err(|_| anyhow!("serial reader thread failed"))?;
    // Taken after the serial reader has drained the stream: the reader may
    // see the ready marker after the child's exit was noticed, and the ready
    // time must never exceed the run time.
    let elapsed = start.elapsed();
    let qemu_stderr = err_reader
        .join()
        .map_err(|_| anyhow!("stderr reader thread failed"))?;
    let qemu_status = status.code().unwrap_or(-1);
    let ready_after = *ready.lock().expect("ready lock");
    Ok(BootOutcome {
        exit: if timed_out {
            None
        } else {
            ExitCode::from_qemu_status(qemu_status)
        },
        qemu_status,
        serial: String::from_utf8_lossy(&serial).into_owned(),
        qemu_stderr: String::from_utf8_lossy(&qemu_stderr).into_owned(),
        timed_out,
        ready_after,
        elapsed,
        mode: opts.mode,
        mode_reason: String::new(),
    })
}

/// A `--timeout` in seconds; 0 means no limit.
pub fn timeout_secs(s: u64) -> Duration {
    if s == 0 {
        Duration::MAX
    } else {
        Duration::from_secs(s)
    }
}

/// Runs the IGVM file; returns the process exit code igvm-build should use:
/// 0 only when the guest exits with `ExitCode::Success`, else 1.
pub fn run(args: &RunArgs) -> Result<u8> {
    let opts = BootOptions {
        igvm: args.igvm.clone(),
        cmdline: args.cmdline.clone(),
        memory_mib: args.memory,
        cpus: args.smp,
        qemu: args.qemu.clone().unwrap_or_else(default_qemu),
        machine: args.machine.clone(),
        timeout: timeout_secs(args.timeout),
        mode: args.mode,
        echo: true,
        serial_log: args.serial_log.clone(),
        work_dir: args.work_dir.clone(),
        print_cmd: args.print_cmd,
        extra_args: args.extra.clone(),
    };
    let out = boot(&opts)?;
    eprintln!("igvm-build: loader: {}", out.mode_reason);
    if out.timed_out {
        eprintln!(
            "igvm-build: timeout: no exit after {} s, QEMU killed",
            args.timeout
        );
    } else {
        eprintln!("igvm-build: {}", out.describe());
    }
    Ok(if out.success() { 0 } else { 1 })
}

/// The median of `v` (mean of the middle two for an even count).
pub fn median(v: &mut [Duration]) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    v.sort();
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    })
}

/// Boots repeatedly and prints the median time from spawning QEMU to the
/// kernel's ready marker. Reports only; exit 1 if no boot reached the marker.
pub fn bench_boot(args: &BenchArgs) -> Result<u8> {
    let mut opts = BootOptions::new(&args.igvm)
        .cmdline(args.cmdline.clone())
        .memory_mib(args.memory)
        .qemu(args.qemu.clone().unwrap_or_else(default_qemu))
        .timeout(timeout_secs(args.timeout))
        .mode(args.mode);
    // Decide once, so every boot uses the same loader.
    let bytes = fs::read(&args.igvm)
        .with_context(|| format!("cannot read IGVM file {}", args.igvm.display()))?;
    let (mode, why) = loaders::choose(opts.mode, &opts.qemu, &bytes)?;
    println!("bench-boot: loader: {why}");
    opts.mode = mode;
    println!(
        "bench-boot: {} x {} (mode {:?}, {} MiB, marker {READY_MARKER:?})",
        args.runs,
        args.igvm.display(),
        opts.mode,
        args.memory
    );
    let mut times = Vec::new();
    for i in 1..=args.runs {
        let out = boot(&opts)?;
        match out.ready_after {
            Some(t) => {
                println!(
                    "run {i:>3}: ready after {:>8.2} ms (QEMU exit after {:.2} ms, {})",
                    t.as_secs_f64() * 1e3,
                    out.elapsed.as_secs_f64() * 1e3,
                    out.describe()
                );
                times.push(t);
            }
            None => println!("run {i:>3}: no ready marker ({})", out.describe()),
        }
    }
    match median(&mut times) {
        Some(m) => {
            println!(
                "bench-boot: median time to ready: {:.2} ms over {} boots (min {:.2} ms, max {:.2} ms)",
                m.as_secs_f64() * 1e3,
                times.len(),
                times[0].as_secs_f64() * 1e3,
                times[times.len() - 1].as_secs_f64() * 1e3
            );
            Ok(0)
        }
        None => {
            println!("bench-boot: no boot reached the ready marker");
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: i32) -> BootOutcome {
        BootOutcome {
            exit: ExitCode::from_qemu_status(status),
            qemu_status: status,
            serial: String::new(),
            qemu_stderr: String::new(),
            timed_out: false,
            ready_after: None,
            elapsed: Duration::ZERO,
            mode: Mode::Adapter,
            mode_reason: String::new(),
        }
    }

    #[test]
    fn exit_status_mapping() {
        assert!(outcome(33).success());
        assert_eq!(
            outcome(33).describe(),
            "guest exited: success (qemu status 33)"
        );
        assert!(!outcome(0).success());
        assert_eq!(
            outcome(0).describe(),
            "guest exited: triple fault (status 0)"
        );
        assert!(!outcome(37).success());
        assert_eq!(
            outcome(37).describe(),
            "guest exited: panic (qemu status 37)"
        );
        assert!(!outcome(3).success());
        let mut t = outcome(33);
        t.timed_out = true;
        assert!(!t.success());
        let mut e = outcome(1);
        e.qemu_stderr = "qemu: could not load PC BIOS\n".into();
        assert!(e.describe().contains("could not load PC BIOS"));
    }

    #[test]
    fn ready_marker_must_start_a_line() {
        assert!(scan_ready("boot\nSVSM: ready\n"));
        assert!(scan_ready("SVSM: ready"));
        assert!(!scan_ready("boot\nnot SVSM: ready\n"));
    }

    #[test]
    fn ready_scanner_handles_split_chunks() {
        let mut s = ReadyScanner::default();
        assert!(!s.push(b"boot\nSV"));
        assert!(!s.push(b"SM: rea"));
        assert!(!s.push(b"dy"));
        assert!(s.push(b"\nmore\n"));
        assert!(!s.push(b"SVSM: ready\n"), "reported once");
        assert!(!s.finish());
        assert_eq!(s.all, b"boot\nSVSM: ready\nmore\nSVSM: ready\n");
        let mut s = ReadyScanner::default();
        assert!(!s.push(b"x\nSVSM: ready"));
        assert!(s.finish());
        let mut s = ReadyScanner::default();
        assert!(!s.push(b"x SVSM: ready\n"));
        assert!(!s.finish());
    }

    #[test]
    fn median_of_odd_and_even() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [ms(5), ms(1), ms(3)]), Some(ms(3)));
        assert_eq!(
            median(&mut [ms(4), ms(1), ms(3), ms(2)]),
            Some(Duration::from_micros(2500))
        );
    }

    #[test]
    fn igvm_cfg_command_line_shape() {
        let args: Vec<String> = igvm_cfg_args(Path::new("/x/svsm.igvm"), "pc", 256)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(
            joined.starts_with("-machine pc,igvm-cfg=igvm0 "),
            "{joined}"
        );
        assert!(joined.ends_with("-m 256M -object igvm-cfg,id=igvm0,file=/x/svsm.igvm"));
        assert!(!joined.contains("-bios"));
    }

    #[test]
    fn adapter_command_line_shape() {
        let args: Vec<String> = common_args(512)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        assert!(joined.contains("-accel tcg"));
        assert!(joined.contains("-nodefaults -no-reboot"));
        assert!(joined.contains("isa-debug-exit,iobase=0xf4,iosize=0x04"));
        assert!(joined.ends_with("-m 512M"));
    }
}
