use clap::{Parser, Subcommand};
use igvm_build::{build, configpage, qemu};
use std::process::ExitCode;

/// Package the SVSM into an IGVM file, and run IGVM files on QEMU.
///
/// Exit codes: 0 success; 1 the guest ran but did not exit with the success
/// code (test failure, panic, exception, stack overflow, triple fault); 2 bad
/// input or usage.
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
    /// Run an IGVM file under QEMU (native platform).
    Run(qemu::RunArgs),
    /// Boot repeatedly and report the median time to the ready marker.
    BenchBoot(qemu::BenchArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
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
        Cmd::Run(a) => qemu::run(a),
        Cmd::BenchBoot(a) => qemu::bench_boot(a),
    };
    match res {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("igvm-build: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
