//! stackcheck CLI. Exit codes: 0 all entries bounded and within budget,
//! 1 a budget violation, an unbounded entry or growth over the baseline
//! limit, 2 bad input or usage.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use stackcheck::analysis::{self, Report, Status};
use stackcheck::config::{Config, EntryCfg};
use stackcheck::{bail_input, report, symbolize};

#[derive(Parser)]
#[command(
    name = "stackcheck",
    version,
    about = "Static maximum stack depth per entry point of an x86_64 ELF"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check every entry point against its budget.
    Check {
        #[command(flatten)]
        input: Input,
        /// Print the JSON report to stdout instead of the summary.
        #[arg(long)]
        json: bool,
    },
    /// Check and write report.json, report.md, flamegraph.svg and report.sarif.
    Report {
        #[command(flatten)]
        input: Input,
        /// Output directory.
        #[arg(long, default_value = "reports")]
        out_dir: PathBuf,
    },
    /// Soundness: compare the STACK-HWM lines of a serial log (measured
    /// high-water marks) with the static bound of each stack.
    Hwm {
        #[command(flatten)]
        input: Input,
        /// Serial log with STACK-HWM lines.
        #[arg(long)]
        log: PathBuf,
    },
    /// Explain functions (glob): frame, bound, call edges with their cost,
    /// issues, and the recursive cycle they belong to. For writing annotations.
    Explain {
        #[command(flatten)]
        input: Input,
        /// Image name (default: the only/first image).
        #[arg(long)]
        image_name: Option<String>,
        /// Function glob (raw or demangled).
        pattern: String,
    },
    /// List every function with its frame size, its source (cfi, code,
    /// config) and, for cross-checking, the machine-code size.
    Frames {
        /// The ELF to list.
        #[arg(long)]
        elf: PathBuf,
    },
    /// Stack-probe check: exit 1 if any function moves rsp down by more than
    /// a page without touching it (a frame that could jump over a guard).
    Probes {
        /// The ELF to check.
        #[arg(long)]
        elf: PathBuf,
    },
    /// Symbolize the BACKTRACE blocks of a serial log (file or stdin).
    Symbolize {
        /// The ELF the log came from (its build id must match).
        #[arg(long)]
        elf: PathBuf,
        /// Serial log; `-` or absent for stdin.
        log: Option<PathBuf>,
    },
}

#[derive(Args)]
struct Input {
    /// TOML config (entries, budgets, annotations).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override an image path: NAME=PATH (repeatable).
    #[arg(long = "image", value_name = "NAME=PATH")]
    images: Vec<String>,
    /// Check only these images of the config (repeatable).
    #[arg(long = "only", value_name = "NAME")]
    only: Vec<String>,
    /// The ELF, when the config defines at most one image.
    #[arg(long)]
    elf: Option<PathBuf>,
    /// Entry symbol to check without a config (repeatable).
    #[arg(long = "entry")]
    entries: Vec<String>,
    /// Budget for --entry entries.
    #[arg(long, default_value_t = u64::MAX)]
    budget: u64,
    /// Only analyse: summarise all functions (no entries needed).
    #[arg(long)]
    all_functions: bool,
    /// Older JSON report: print the growth of each entry.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// With --baseline: fail (exit 1) when an entry grows by more than this many bytes.
    #[arg(long)]
    max_growth: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("stackcheck: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<bool> {
    match cli.cmd {
        Cmd::Check { input, json } => {
            if input.all_functions {
                return all_functions(&input);
            }
            let (r, base_ok) = check(&input, json)?;
            if json {
                print!("{}", report::json(&r));
            } else {
                print_summary(&r);
            }
            Ok(r.ok && base_ok)
        }
        Cmd::Report { input, out_dir } => {
            let (r, base_ok) = check(&input, true)?;
            if let Err(e) = std::fs::create_dir_all(&out_dir) {
                bail_input!("cannot create {}: {e}", out_dir.display());
            }
            let svg = report::flamegraph(&r)?;
            let files: [(&str, Vec<u8>); 4] = [
                ("report.json", report::json(&r).into_bytes()),
                ("report.md", report::markdown(&r).into_bytes()),
                ("flamegraph.svg", svg),
                ("report.sarif", report::sarif(&r).into_bytes()),
            ];
            for (name, data) in files {
                let p = out_dir.join(name);
                if let Err(e) = std::fs::write(&p, data) {
                    bail_input!("cannot write {}: {e}", p.display());
                }
            }
            print_summary(&r);
            println!("reports written to {}", out_dir.display());
            Ok(r.ok && base_ok)
        }
        Cmd::Hwm { input, log } => {
            let (r, _) = check(&input, false)?;
            let text = match std::fs::read(&log) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => bail_input!("cannot read log {}: {e}", log.display()),
            };
            let hwms = stackcheck::hwm::parse(&text);
            if hwms.is_empty() {
                bail_input!("no STACK-HWM lines in {}", log.display());
            }
            let (s, ok) = stackcheck::hwm::compare(&r, &hwms);
            print!("{s}");
            Ok(ok)
        }
        Cmd::Explain {
            input,
            image_name,
            pattern,
        } => explain(&input, image_name, &pattern),
        Cmd::Frames { elf } => {
            let data = analysis::read_file(&elf)?;
            let a = analysis::analyze_image(&data, &Config::default(), "main", true)?;
            for (i, f) in a.img.functions.iter().enumerate() {
                let fr = match &a.bounds.frames[i] {
                    Ok(v) => v.to_string(),
                    Err(_) => "unknown".into(),
                };
                let code = match &a.graph.funcs[i].code_frame {
                    Some(Ok(v)) => v.to_string(),
                    Some(Err(_)) => "unknown".into(),
                    None => "-".into(),
                };
                println!(
                    "{:#018x} {:>8} {:<12} code={:<8} {}",
                    f.addr,
                    fr,
                    format!("{:?}", a.bounds.sources[i]).to_lowercase(),
                    code,
                    f.demangled
                );
            }
            Ok(true)
        }
        Cmd::Probes { elf } => {
            let data = analysis::read_file(&elf)?;
            let img = stackcheck::elf::Image::parse(&data)?;
            let findings = stackcheck::probes::check(&img);
            for f in &findings {
                println!("{:#018x} {}: {}", f.addr, f.function, f.what);
            }
            println!(
                "probes: {} functions, {} unprobed allocations",
                img.functions.len(),
                findings.len()
            );
            Ok(findings.is_empty())
        }
        Cmd::Symbolize { elf, log } => {
            let data = analysis::read_file(&elf)?;
            let text = match log.as_deref() {
                None => read_stdin()?,
                Some(p) if p == Path::new("-") => read_stdin()?,
                Some(p) => match std::fs::read(p) {
                    Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                    Err(e) => bail_input!("cannot read log {}: {e}", p.display()),
                },
            };
            print!("{}", symbolize::symbolize(&data, &text)?);
            Ok(true)
        }
    }
}

fn read_stdin() -> Result<String> {
    let mut b = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut b) {
        bail_input!("cannot read stdin: {e}");
    }
    Ok(String::from_utf8_lossy(&b).into_owned())
}

/// The config (or the default) and the image paths it names, overridden by
/// `--image NAME=PATH` (paths in the config are relative to the config).
fn config_and_images(input: &Input) -> Result<(Config, BTreeMap<String, PathBuf>)> {
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
    for spec in &input.images {
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

/// Load config and image paths, run the analysis, apply the baseline.
fn check(input: &Input, path_locations: bool) -> Result<(Report, bool)> {
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
    if !input.entries.is_empty() {
        let image = paths.keys().next().cloned();
        if paths.len() > 1 {
            bail_input!("--entry needs a single image");
        }
        for s in &input.entries {
            cfg.entries.push(EntryCfg {
                name: s.clone(),
                image: image.clone(),
                symbol: s.clone(),
                stack: "default".into(),
                budget: input.budget,
                cpu_pushed: None,
                nested: Vec::new(),
                description: None,
            });
        }
    }
    if cfg.entries.is_empty() {
        bail_input!("no entry points: give --entry SYMBOL or [[entry]] tables in the config");
    }
    let r = analysis::run_with(&cfg, &paths, path_locations)?;
    let mut ok = true;
    if let Some(b) = &input.baseline {
        let text = match std::fs::read_to_string(b) {
            Ok(t) => t,
            Err(e) => bail_input!("cannot read baseline {}: {e}", b.display()),
        };
        let (s, fail) = report::baseline(&r, &text, input.max_growth)?;
        print!("{s}");
        ok = !fail;
    } else if input.max_growth.is_some() {
        bail_input!("--max-growth needs --baseline");
    }
    Ok((r, ok))
}

fn print_summary(r: &Report) {
    print!("{}", analysis::recursion_summary(r));
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
        println!(
            "{:<24} {:<8} {:<28} bound {:>9} budget {:>9} {}",
            e.name, e.image, e.symbol, bound, e.budget, st
        );
        if e.status == Status::Unbounded {
            for i in e.issues.iter().take(10) {
                println!(
                    "    {} in {} at {}: {}",
                    i.kind, i.function, i.address, i.detail
                );
            }
            if e.issues.len() > 10 {
                println!("    ... {} more (see the JSON report)", e.issues.len() - 10);
            }
        }
    }
    for m in &r.large_moves {
        println!(
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
        println!(
            "large frame: {} bytes in {} ({}:{})",
            f.frame,
            f.function,
            f.file.as_deref().unwrap_or("?"),
            f.line.unwrap_or(0)
        );
    }
}

/// Analyse every function of an ELF without entries (benchmarks, audits).
fn all_functions(input: &Input) -> Result<bool> {
    let Some(elf) = &input.elf else {
        bail_input!("--all-functions needs --elf PATH");
    };
    let data = analysis::read_file(elf)?;
    let cfg = match &input.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let a = analysis::analyze_image(&data, &cfg, "main", false)?;
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
    println!(
        "{n} functions: {bounded} bounded, {} unbounded, {unknown} with unknown frame size; {} indirect call sites ({} unresolved)",
        n - bounded,
        a.bounds.indirect.sites,
        a.bounds.indirect.unresolved
    );
    if let Some((v, i)) = max {
        println!(
            "deepest bounded function: {} ({v} bytes)",
            a.bounds.names[i]
        );
    }
    Ok(true)
}

fn explain(input: &Input, image_name: Option<String>, pattern: &str) -> Result<bool> {
    let (cfg, mut paths) = config_and_images(input)?;
    if let Some(elf) = &input.elf {
        paths.insert(
            image_name.clone().unwrap_or_else(|| "main".into()),
            elf.clone(),
        );
    }
    let name = match image_name.or_else(|| paths.keys().next().cloned()) {
        Some(n) => n,
        None => bail_input!("no ELF given"),
    };
    let Some(path) = paths.get(&name) else {
        bail_input!("no image `{name}`")
    };
    let data = analysis::read_file(path)?;
    let a = analysis::analyze_image(&data, &cfg, &name, false)?;
    let b = &a.bounds;
    let mut scc_size = BTreeMap::new();
    for &s in &b.scc_of {
        *scc_size.entry(s).or_insert(0usize) += 1;
    }
    for i in 0..b.names.len() {
        let raw = if i < b.nfuncs {
            a.img.functions[i].name.as_str()
        } else {
            ""
        };
        if !stackcheck::glob_match(pattern, &b.names[i]) && !stackcheck::glob_match(pattern, raw) {
            continue;
        }
        let fr = b.frames[i]
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_else(|e| format!("unknown ({e})"));
        println!(
            "{} @ {:#x}: frame {fr} ({:?}), entry depth {}, bound {}, cycle size {}",
            b.names[i],
            b.addrs[i],
            b.sources[i],
            b.entry_depth[i],
            b.bound[i]
                .map(|v| v.to_string())
                .unwrap_or_else(|| "unbounded".into()),
            scc_size[&b.scc_of[i]]
        );
        for e in &b.edges[i] {
            let c = b.bound[e.to]
                .map(|v| stackcheck::bound::cost(e, v, b.entry_depth[e.to]).to_string());
            println!(
                "    {:#x} (+{:#x}) {:?} {:?} depth {} -> {}  cost {}{}",
                e.site,
                e.site.saturating_sub(b.addrs[i]),
                e.kind,
                e.how,
                e.depth,
                b.names[e.to],
                c.unwrap_or_else(|| "unbounded".into()),
                if b.scc_of[e.to] == b.scc_of[i] {
                    "  [same cycle]"
                } else {
                    ""
                }
            );
        }
        for is in &b.issues[i] {
            println!(
                "    issue {}: {} at {}: {}",
                is.kind, is.function, is.address, is.detail
            );
        }
    }
    Ok(true)
}
