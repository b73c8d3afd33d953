//! `igvm-build debug`: boots an IGVM file under QEMU stopped at the first
//! instruction with the gdbstub listening, and prints the gdb command line
//! that attaches to it with the kernel's symbols and a hardware breakpoint at
//! the kernel's entry point (a software breakpoint cannot be planted there:
//! the higher-half address is not mapped until stage2 has built the page
//! tables). The work directory (ROM, blobs) is kept for inspection. See
//! docs/debugging.md.

use crate::qemu::{self, BootOptions, Mode};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;
use svsm_bootdefs::layout;

#[derive(clap::Args, Debug, Clone)]
pub struct DebugArgs {
    /// The IGVM file to boot.
    pub igvm: PathBuf,
    /// The kernel ELF the file was built from (symbols, entry point).
    #[arg(long)]
    pub kernel: PathBuf,
    /// TCP port of QEMU's gdbstub (on 127.0.0.1).
    #[arg(long, default_value_t = 1234)]
    pub port: u16,
    /// Written to the IGVM COMMAND_LINE parameter (e.g. `test=<name>`).
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// Guest RAM in MiB.
    #[arg(long, default_value_t = layout::DEFAULT_GUEST_RAM >> 20)]
    pub memory: u64,
    /// The QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64")]
    pub qemu: PathBuf,
    /// Directory for the ROM and blobs (kept after the run).
    #[arg(long, default_value = "build/debug-work")]
    pub work_dir: PathBuf,
}

/// Quotes `s` for a POSIX shell when it needs it.
fn sh(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=,./:+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The gdb command line: kernel symbols, attach, hardware breakpoint at
/// `entry`, run to it.
pub fn gdb_command(kernel: &Path, port: u16, entry: u64) -> Vec<String> {
    vec![
        "gdb".into(),
        "-q".into(),
        kernel.display().to_string(),
        "-ex".into(),
        format!("target remote 127.0.0.1:{port}"),
        "-ex".into(),
        format!("hbreak *{entry:#x}"),
        "-ex".into(),
        "continue".into(),
    ]
}

pub fn debug(a: &DebugArgs) -> Result<u8> {
    let kernel = crate::elf::load(&a.kernel, "kernel")?;
    let gdb = gdb_command(&a.kernel, a.port, kernel.entry);
    eprintln!(
        "igvm-build: QEMU is stopped at the reset vector with its gdbstub on 127.0.0.1:{}; attach with:\n\n    {}\n\nwork directory (kept): {}",
        a.port,
        gdb.iter().map(|s| sh(s)).collect::<Vec<_>>().join(" "),
        a.work_dir.display()
    );
    let opts = BootOptions {
        echo: true,
        work_dir: Some(a.work_dir.clone()),
        print_cmd: true,
        // Until the person at the debugger ends it.
        timeout: Duration::MAX,
        mode: Mode::Adapter,
        ..BootOptions::new(&a.igvm)
    }
    .cmdline(a.cmdline.clone())
    .memory_mib(a.memory)
    .qemu(a.qemu.clone())
    .extra_arg("-S")
    .extra_arg("-gdb")
    .extra_arg(format!("tcp:127.0.0.1:{}", a.port));
    let out = qemu::boot(&opts).with_context(|| format!("booting {}", a.igvm.display()))?;
    eprintln!("igvm-build: {}", out.describe());
    Ok(if out.success() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdb_command_quotes_what_the_shell_would_split() {
        let c = gdb_command(Path::new("target/k"), 4321, 0xffff_ffff_8000_1000);
        let line: Vec<String> = c.iter().map(|s| sh(s)).collect();
        assert_eq!(
            line.join(" "),
            "gdb -q target/k -ex 'target remote 127.0.0.1:4321' -ex 'hbreak *0xffffffff80001000' -ex continue"
        );
    }
}
