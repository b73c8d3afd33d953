//! The subcommands of the `stackcheck` binary: arguments and what each one
//! prints. Every subcommand returns its output as an [`Outcome`]; `main`
//! writes it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use stackcheck::analysis::{self, Report, Status};
use stackcheck::config::{Config, EntryCfg};
use stackcheck::{bail_input, chart, dot, report, symbolize};

use crate::Outcome;

#[derive(Parser)]
#[command(
    name = "stackcheck",
    version,
    about = "Static maximum stack depth per entry point of an x86_64 ELF"
)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Report formats of `check`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One line per entry point, then large moves and frames.
    Text,
    /// The full report (schema in docs/stackcheck.md).
    Json,
    /// Markdown table for a PR comment.
    Md,
    /// SARIF 2.1.0 for code scanning.
    Sarif,
    /// Stack-depth chart of every entry's worst path (one byte scale).
    Svg,
    /// Graphviz graph of each entry's worst path.
    Dot,
    /// Folded stacks of the worst paths (input of inferno / flamegraph.pl).
    Folded,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check every entry point against its budget.
    Check {
        #[command(flatten)]
        images: ImageArgs,
        #[command(flatten)]
        entries: EntryArgs,
        #[command(flatten)]
        baseline: BaselineArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Same as --format json.
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// Keep only violations: entries over budget or unbounded.
        #[arg(short, long)]
        quiet: bool,
        /// Size and bound every function of --elf instead of checking entry
        /// points (audits, benchmarks).
        #[arg(long, conflicts_with_all = ["entries", "baseline", "image", "only", "quiet", "format", "json"])]
        all_functions: bool,
    },
    /// Check and write report.json, report.md, stack-depth.svg and
    /// report.sarif to a directory.
    Report {
        #[command(flatten)]
        images: ImageArgs,
        #[command(flatten)]
        entries: EntryArgs,
        #[command(flatten)]
        baseline: BaselineArgs,
        /// Output directory.
        #[arg(long, default_value = "reports")]
        out_dir: PathBuf,
        /// Print only violations (the files are complete).
        #[arg(short, long)]
        quiet: bool,
    },
    /// Soundness: compare the STACK-HWM lines of a serial log (measured
    /// high-water marks) with the static bound of each stack.
    Hwm {
        #[command(flatten)]
        images: ImageArgs,
        #[command(flatten)]
        entries: EntryArgs,
        /// Serial log with STACK-HWM lines.
        #[arg(long)]
        log: PathBuf,
    },
    /// Explain functions (glob): frame, bound, call edges with their cost,
    /// issues, and the recursive cycle they belong to. For writing
    /// annotations. `--format dot` draws each match's worst path and the
    /// alternatives at every step.
    Explain {
        /// TOML config (entries, budgets, annotations).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override an image path of the config: NAME=PATH (repeatable).
        #[arg(long = "image", value_name = "NAME=PATH")]
        images: Vec<String>,
        /// The ELF (image `main`, or --image-name).
        #[arg(long)]
        elf: Option<PathBuf>,
        /// Image to explain (default: the first image).
        #[arg(long)]
        image_name: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
        format: ExplainFormat,
        /// Function glob (raw or demangled).
        pattern: String,
    },
    /// List every function with its frame size, its source (cfi, code,
    /// config) and, for cross-checking, the machine-code size.
    Frames {
        /// The ELF to list.
        #[arg(long)]
        elf: PathBuf,
        /// Order of the list.
        #[arg(long, value_enum, default_value_t = SortBy::Addr)]
        sort: SortBy,
        /// Only frames of at least this many bytes (unknown sizes left out).
        #[arg(long, value_name = "BYTES", default_value_t = 0)]
        min: u64,
    },
    /// Stack-probe check: exit 1 if any function moves rsp down by more than
    /// a page without touching it (a frame that could jump over a guard).
    Probes {
        /// The ELF to check.
        #[arg(long)]
        elf: PathBuf,
    },
    /// Symbolize the BACKTRACE blocks of a serial log (file or stdin):
    /// file:line and inlined frames per frame.
    Symbolize {
        /// The ELF the log came from (its build id must match).
        #[arg(long)]
        elf: PathBuf,
        /// Serial log; `-` or absent for stdin.
        log: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExplainFormat {
    Text,
    Dot,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SortBy {
    /// By address.
    Addr,
    /// Largest frame first (unknown sizes last), like checkstack.pl.
    Size,
    /// By demangled name.
    Name,
}

#[derive(Args)]
struct ImageArgs {
    /// TOML config (entries, budgets, annotations).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override an image path of the config: NAME=PATH (repeatable).
    #[arg(long = "image", value_name = "NAME=PATH")]
    image: Vec<String>,
    /// Check only these images of the config (repeatable).
    #[arg(long, value_name = "NAME")]
    only: Vec<String>,
    /// The ELF, when the config defines at most one image.
    #[arg(long)]
    elf: Option<PathBuf>,
}

#[derive(Args)]
struct EntryArgs {
    /// Entry symbol to check in addition to the config's (repeatable).
    #[arg(long = "entry", value_name = "SYMBOL")]
    entries: Vec<String>,
    /// Budget in bytes for the --entry entries [default: none, only the bound
    /// is reported].
    #[arg(long, value_name = "BYTES", requires = "entries")]
    budget: Option<u64>,
}

#[derive(Args)]
struct BaselineArgs {
    /// Older JSON report: print the growth of each entry.
    #[arg(long, value_name = "OLD.json")]
    baseline: Option<PathBuf>,
    /// With --baseline: fail (exit 1) when an entry grows by more than this
    /// many bytes.
    #[arg(long, value_name = "BYTES", requires = "baseline")]
    max_growth: Option<u64>,
}

pub fn run(cli: Cli) -> Result<Outcome> {
    match cli.cmd {
        Cmd::Check {
            images,
            entries,
            baseline,
            format,
            json,
            quiet,
            all_functions,
        } => {
            if all_functions {
                return all_functions_summary(&images);
            }
            let format = if json { Format::Json } else { format };
            check_cmd(&images, &entries, &baseline, format, quiet)
        }
        Cmd::Report {
            images,
            entries,
            baseline,
            out_dir,
            quiet,
        } => report_cmd(&images, &entries, &baseline, &out_dir, quiet),
        Cmd::Hwm {
            images,
            entries,
            log,
        } => {
            let r = check(&images, &entries, false)?;
            let text = read_text(&log, "log")?;
            let hwms = stackcheck::hwm::parse(&text);
            if hwms.is_empty() {
                bail_input!("no STACK-HWM lines in {}", log.display());
            }
            let (s, ok) = stackcheck::hwm::compare(&r, &hwms);
            Ok(stdout(s, ok))
        }
        Cmd::Explain {
            config,
            images,
            elf,
            image_name,
            format,
            pattern,
        } => {
            let img = ImageArgs {
                config,
                image: images,
                only: Vec::new(),
                elf: None,
            };
            explain(&img, elf, image_name, format, &pattern)
        }
        Cmd::Frames { elf, sort, min } => frames(&elf, sort, min),
        Cmd::Probes { elf } => {
            let data = analysis::read_file(&elf)?;
            let img =
                stackcheck::elf::Image::parse(&data).with_context(|| elf.display().to_string())?;
            let findings = stackcheck::probes::check(&img);
            let mut s = String::new();
            for f in &findings {
                let _ = writeln!(s, "{:#018x} {}: {}", f.addr, f.function, f.what);
            }
            let _ = writeln!(
                s,
                "probes: {} functions, {} unprobed allocations",
                img.functions.len(),
                findings.len()
            );
            Ok(stdout(s, findings.is_empty()))
        }
        Cmd::Symbolize { elf, log } => {
            let data = analysis::read_file(&elf)?;
            let text = match log.as_deref() {
                None => read_stdin()?,
                Some(p) if p == Path::new("-") => read_stdin()?,
                Some(p) => read_text(p, "log")?,
            };
            let s =
                symbolize::symbolize(&data, &text).with_context(|| elf.display().to_string())?;
            Ok(stdout(s, true))
        }
    }
}

fn stdout(s: String, ok: bool) -> Outcome {
    Outcome {
        stdout: s,
        stderr: String::new(),
        ok,
    }
}

fn read_text(p: &Path, what: &str) -> Result<String> {
    match std::fs::read(p) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) => bail_input!("cannot read {what} {}: {e}", p.display()),
    }
}

fn read_stdin() -> Result<String> {
    let mut b = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut b) {
        bail_input!("cannot read stdin: {e}");
    }
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// The root that report paths are made relative to: the working directory
/// (the repository for `make stackcheck`).
fn report_root() -> Option<PathBuf> {
    std::env::current_dir().ok()?.canonicalize().ok()
}

fn check_cmd(
    images: &ImageArgs,
    entries: &EntryArgs,
    base: &BaselineArgs,
    format: Format,
    quiet: bool,
) -> Result<Outcome> {
    let mut r = check(images, entries, format != Format::Text)?;
    if let Some(root) = report_root() {
        report::relativize(&mut r, &root);
    }
    let (growth, base_ok) = baseline(&r, base)?;
    let ok = r.ok && base_ok;
    if quiet {
        report::only_violations(&mut r);
    }
    let body = match format {
        Format::Text => summary(&r),
        Format::Json => report::json(&r),
        Format::Md => report::markdown(&r),
        Format::Sarif => report::sarif(&r),
        Format::Svg => chart::svg(&r),
        Format::Dot => dot::report_paths(&r),
        Format::Folded => report::collapsed(&r).join("\n") + "\n",
    };
    // The growth table goes with a text summary; with a machine-readable
    // format it goes to stderr so that stdout stays one document.
    Ok(if format == Format::Text {
        stdout(body + &growth, ok)
    } else {
        Outcome {
            stdout: body,
            stderr: growth,
            ok,
        }
    })
}

fn report_cmd(
    images: &ImageArgs,
    entries: &EntryArgs,
    base: &BaselineArgs,
    out_dir: &Path,
    quiet: bool,
) -> Result<Outcome> {
    let mut r = check(images, entries, true)?;
    if let Some(root) = report_root() {
        report::relativize(&mut r, &root);
    }
    let (growth, base_ok) = baseline(&r, base)?;
    if let Err(e) = std::fs::create_dir_all(out_dir) {
        bail_input!("cannot create {}: {e}", out_dir.display());
    }
    let files: [(&str, String); 4] = [
        ("report.json", report::json(&r)),
        ("report.md", report::markdown(&r)),
        ("stack-depth.svg", chart::svg(&r)),
        ("report.sarif", report::sarif(&r)),
    ];
    for (name, data) in files {
        let p = out_dir.join(name);
        if let Err(e) = std::fs::write(&p, data) {
            bail_input!("cannot write {}: {e}", p.display());
        }
    }
    let ok = r.ok && base_ok;
    if quiet {
        report::only_violations(&mut r);
    }
    let mut s = summary(&r) + &growth;
    let _ = writeln!(s, "reports written to {}", out_dir.display());
    Ok(stdout(s, ok))
}

/// The growth table against `--baseline` and whether it is within
/// `--max-growth`.
fn baseline(r: &Report, base: &BaselineArgs) -> Result<(String, bool)> {
    let Some(b) = &base.baseline else {
        return Ok((String::new(), true));
    };
    let text = match std::fs::read_to_string(b) {
        Ok(t) => t,
        Err(e) => bail_input!("cannot read baseline {}: {e}", b.display()),
    };
    let (s, fail) = report::baseline(r, &text, base.max_growth)
        .with_context(|| format!("baseline {}", b.display()))?;
    Ok((s, !fail))
}

/// The config (or the default) and the image paths it names, overridden by
/// `--image NAME=PATH` (paths in the config are relative to the config).
fn config_and_images(input: &ImageArgs) -> Result<(Config, BTreeMap<String, PathBuf>)> {
    let cfg = match &input.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let base_dir = input
        .config
        .as_ref()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let mut paths: BTreeMap<String, PathBuf> = cfg
        .images
        .iter()
        .map(|(k, v)| (k.clone(), base_dir.join(&v.path)))
        .collect();
    for spec in &input.image {
        let Some((k, v)) = spec.split_once('=') else {
            bail_input!("--image expects NAME=PATH, got `{spec}`");
        };
        if !cfg.images.is_empty() && !cfg.images.contains_key(k) {
            bail_input!("--image {k}: no image `{k}` in the config");
        }
        paths.insert(k.to_string(), PathBuf::from(v));
    }
    Ok((cfg, paths))
}

/// Load config and image paths and run the analysis.
fn check(input: &ImageArgs, entries: &EntryArgs, path_locations: bool) -> Result<Report> {
    let (mut cfg, mut paths) = config_and_images(input)?;
    if let Some(elf) = &input.elf {
        match paths.len() {
            0 => {
                paths.insert("main".into(), elf.clone());
            }
            1 => {
                let k = paths.keys().next().cloned().unwrap_or_default();
                paths.insert(k, elf.clone());
            }
            _ => bail_input!(
                "--elf is ambiguous: the config defines several images; use --image NAME=PATH"
            ),
        }
    }
    if !input.only.is_empty() {
        for o in &input.only {
            if !paths.contains_key(o) {
                bail_input!("--only {o}: no image `{o}`");
            }
        }
        paths.retain(|k, _| input.only.contains(k));
        cfg.entries
            .retain(|e| e.image.as_ref().is_none_or(|i| input.only.contains(i)));
    }
    if paths.is_empty() {
        bail_input!("no ELF given: use --elf PATH, --image NAME=PATH or [images] in the config");
    }
    if !entries.entries.is_empty() {
        let image = paths.keys().next().cloned();
        if paths.len() > 1 {
            bail_input!("--entry needs a single image");
        }
        for s in &entries.entries {
            cfg.entries.push(EntryCfg {
                name: s.clone(),
                image: image.clone(),
                symbol: s.clone(),
                stack: "default".into(),
                budget: entries.budget.unwrap_or(u64::MAX),
                cpu_pushed: None,
                nested: Vec::new(),
                description: None,
            });
        }
    }
    if cfg.entries.is_empty() {
        bail_input!("no entry points: give --entry SYMBOL or [[entry]] tables in the config");
    }
    analysis::run_with(&cfg, &paths, path_locations)
}

fn summary(r: &Report) -> String {
    let mut s = analysis::recursion_summary(r);
    for e in &r.entries {
        let bound = e
            .bound
            .map(|b| b.to_string())
            .unwrap_or_else(|| "unbounded".into());
        let st = match e.status {
            Status::Ok => "ok",
            Status::OverBudget => "OVER BUDGET",
            Status::Unbounded => "UNBOUNDED",
        };
        let _ = writeln!(
            s,
            "{:<24} {:<8} {:<28} bound {:>9} budget {:>9} {}",
            e.name,
            e.image,
            e.symbol,
            bound,
            report::budget_str(e.budget),
            st
        );
        if e.status == Status::Unbounded {
            for i in e.issues.iter().take(10) {
                let _ = writeln!(
                    s,
                    "    {} in {} at {}: {}",
                    i.kind, i.function, i.address, i.detail
                );
            }
            if e.issues.len() > 10 {
                let _ = writeln!(
                    s,
                    "    ... {} more (see the JSON report)",
                    e.issues.len() - 10
                );
            }
        }
    }
    for m in &r.large_moves {
        let _ = writeln!(
            s,
            "large move: {} of {} bytes{} in {} at {}:{}",
            m.callee,
            m.size,
            if m.onto_stack { " onto the stack" } else { "" },
            m.function,
            m.file.as_deref().unwrap_or("?"),
            m.line.unwrap_or(0)
        );
    }
    for f in &r.large_frames {
        let _ = writeln!(
            s,
            "large frame: {} bytes in {} ({}:{})",
            f.frame,
            f.function,
            f.file.as_deref().unwrap_or("?"),
            f.line.unwrap_or(0)
        );
    }
    s
}

/// Analyse every function of an ELF without entries (benchmarks, audits).
fn all_functions_summary(input: &ImageArgs) -> Result<Outcome> {
    let Some(elf) = &input.elf else {
        bail_input!("--all-functions needs --elf PATH");
    };
    let data = analysis::read_file(elf)?;
    let cfg = match &input.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let a = analysis::analyze_image(&data, &cfg, "main", false)
        .with_context(|| elf.display().to_string())?;
    let n = a.img.functions.len();
    let bounded = a.bounds.bound.iter().filter(|b| b.is_some()).count();
    let unknown = a.bounds.frames.iter().filter(|f| f.is_err()).count();
    let max = a
        .bounds
        .bound
        .iter()
        .enumerate()
        .filter_map(|(i, b)| b.map(|v| (v, i)))
        .max();
    let mut s = format!(
        "{n} functions: {bounded} bounded, {} unbounded, {unknown} with unknown frame size; {} indirect call sites ({} unresolved)\n",
        n - bounded,
        a.bounds.indirect.sites,
        a.bounds.indirect.unresolved
    );
    if let Some((v, i)) = max {
        let _ = writeln!(
            s,
            "deepest bounded function: {} ({v} bytes)",
            a.bounds.names[i]
        );
    }
    Ok(stdout(s, true))
}

fn frames(elf: &Path, sort: SortBy, min: u64) -> Result<Outcome> {
    let data = analysis::read_file(elf)?;
    let a = analysis::analyze_image(&data, &Config::default(), "main", true)
        .with_context(|| elf.display().to_string())?;
    let mut rows: Vec<usize> = (0..a.img.functions.len())
        .filter(|&i| min == 0 || a.bounds.frames[i].as_ref().is_ok_and(|&v| v >= min))
        .collect();
    let size = |i: usize| a.bounds.frames[i].as_ref().ok().copied();
    match sort {
        SortBy::Addr => {}
        SortBy::Size => rows.sort_by_key(|&i| (size(i).is_none(), std::cmp::Reverse(size(i)))),
        SortBy::Name => rows.sort_by(|&x, &y| {
            a.img.functions[x]
                .demangled
                .cmp(&a.img.functions[y].demangled)
        }),
    }
    let mut s = String::new();
    for i in rows {
        let f = &a.img.functions[i];
        let fr = size(i).map_or_else(|| "unknown".into(), |v| v.to_string());
        let code = match &a.graph.funcs[i].code_frame {
            Some(Ok(v)) => v.to_string(),
            Some(Err(_)) => "unknown".into(),
            None => "-".into(),
        };
        let _ = writeln!(
            s,
            "{:#018x} {:>8} {:<12} code={:<8} {}",
            f.addr,
            fr,
            format!("{:?}", a.bounds.sources[i]).to_lowercase(),
            code,
            f.demangled
        );
    }
    Ok(stdout(s, true))
}

fn explain(
    input: &ImageArgs,
    elf: Option<PathBuf>,
    image_name: Option<String>,
    format: ExplainFormat,
    pattern: &str,
) -> Result<Outcome> {
    let (cfg, mut paths) = config_and_images(input)?;
    if let Some(elf) = elf {
        paths.insert(image_name.clone().unwrap_or_else(|| "main".into()), elf);
    }
    let name = match image_name.or_else(|| paths.keys().next().cloned()) {
        Some(n) => n,
        None => {
            bail_input!("no ELF given: use --elf PATH, --image NAME=PATH or [images] in the config")
        }
    };
    let Some(path) = paths.get(&name) else {
        bail_input!("no image `{name}`")
    };
    let data = analysis::read_file(path)?;
    let a = analysis::analyze_image(&data, &cfg, &name, false)
        .with_context(|| path.display().to_string())?;
    let b = &a.bounds;
    let matches: Vec<usize> = (0..b.names.len())
        .filter(|&i| {
            let raw = if i < b.nfuncs {
                a.img.functions[i].name.as_str()
            } else {
                ""
            };
            stackcheck::glob_match(pattern, &b.names[i]) || stackcheck::glob_match(pattern, raw)
        })
        .collect();
    if matches.is_empty() {
        bail_input!(
            "no function matches `{pattern}` in image `{name}` ({}); patterns are globs (`*`, `?`) over raw or demangled names",
            path.display()
        );
    }
    let s = match format {
        ExplainFormat::Text => crate::explain::text(b, &matches),
        ExplainFormat::Dot => dot::worst_paths(b, &matches),
    };
    Ok(stdout(s, true))
}
