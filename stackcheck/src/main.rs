//! stackcheck CLI. Exit codes: 0 all entries bounded and within budget,
//! 1 a budget violation, an unbounded entry or growth over the baseline
//! limit, 2 bad input or usage.

mod cli;
mod explain;

use std::io::Write as _;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use cli::Cli;

/// Shown at the end of every `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  every entry point bounded and within its budget (or the command succeeded)
  1  a budget exceeded, an entry point unbounded, growth over --max-growth,
     an unprobed stack allocation (probes) or a measured high-water mark
     above its static bound (hwm)
  2  bad input or usage: unreadable or malformed ELF, config, log or
     baseline, an unknown option, a pattern that matches nothing";

/// What a subcommand produced: text for stdout, text for stderr (notes that
/// must not mix with a machine-readable stdout) and the verdict.
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub ok: bool,
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
    match cli::run(cli) {
        Ok(out) => {
            if !out.stderr.is_empty() {
                eprint!("{}", out.stderr);
            }
            emit(&out.stdout);
            ExitCode::from(if out.ok { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("stackcheck: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Writes to stdout. A reader that went away (`stackcheck frames | head`)
/// is not an error: the rest of the output is dropped quietly and the exit
/// code stays the verdict.
fn emit(s: &str) {
    let mut out = std::io::stdout().lock();
    let res = out.write_all(s.as_bytes()).and_then(|()| out.flush());
    if let Err(e) = res
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("stackcheck: cannot write to stdout: {e}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn parser_accepts_the_documented_forms() {
        use clap::Parser;
        assert!(super::Cli::try_parse_from(["stackcheck", "frames", "--elf", "x"]).is_ok());
        assert!(
            super::Cli::try_parse_from(["stackcheck", "report", "--elf", "x", "--all-functions"])
                .is_err()
        );
    }
}
