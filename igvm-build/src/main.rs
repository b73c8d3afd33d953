use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use igvm_build::{build, configpage, debug, measure, qemu};
use std::process::ExitCode;

/// Shown at the end of every `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  success (run, debug: the guest exited with the success code)
  1  the guest ran but did not succeed (test failure, panic, exception,
     stack overflow, triple fault, timeout); info --check: stage2 too large;
     bench-boot: no boot reached the ready marker
  2  bad input or usage: missing, truncated, non-ELF or wrong-architecture
     ELF, corrupt or unsupported IGVM file, QEMU that cannot be started";

/// Package the SVSM into an IGVM file, and run IGVM files on QEMU.
#[derive(Parser)]
#[command(name = "igvm-build", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build an IGVM file from the stage2 and kernel ELFs.
    Build(build::BuildArgs),
    /// Print layout facts about a stage2/kernel pair (stage2 flat size, kernel size).
    Info(build::InfoArgs),
    /// Show, or write a copy with another, command line of an IGVM file's
    /// SVSM configuration page.
    Configure(configpage::ConfigureArgs),
    /// Print an IGVM file's launch measurement (SEV-SNP: the launch digest).
    Measure(measure::MeasureArgs),
    /// Run an IGVM file under QEMU (native platform).
    Run(qemu::RunArgs),
    /// Boot repeatedly and report the median time to the ready marker.
    BenchBoot(qemu::BenchArgs),
    /// Boot under QEMU stopped at the reset vector with the gdbstub on, and
    /// print the gdb command that attaches with the kernel's symbols.
    Debug(debug::DebugArgs),
}

fn main() -> ExitCode {
    let mut cmd = Cli::command()
        .after_help(EXIT_CODES)
        .mut_subcommands(|s| s.after_help(EXIT_CODES));
    let cli = match cmd
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let res = match &cli.cmd {
        Cmd::Build(a) => build::build(a),
        Cmd::Info(a) => build::info(a),
        Cmd::Configure(a) => configpage::configure(a),
        Cmd::Measure(a) => measure::measure(a),
        Cmd::Run(a) => qemu::run(a),
        Cmd::BenchBoot(a) => qemu::bench_boot(a),
        Cmd::Debug(a) => debug::debug(a),
    };
    match res {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("igvm-build: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
