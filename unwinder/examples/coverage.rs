//! CFI coverage of an ELF's executable sections.
//!
//! ```text
//! cargo run -p svsm-unwinder --example coverage -- [--require-full] <elf>
//! ```
//! Prints one summary line (`cfi-coverage: ...`) and one line per gap that
//! is not padding. Exit codes: 0 done, 1 `--require-full` and some code has
//! no FDE, 2 usage error or unreadable/malformed ELF.

use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};
use std::process::ExitCode;
use svsm_unwinder::{CfiSections, Coverage, Module, coverage};

fn run(path: &str, require_full: bool) -> Result<bool, String> {
    let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let obj = object::File::parse(&*data).map_err(|e| format!("{path}: not an ELF: {e}"))?;
    let section = |name: &str| {
        let s = obj
            .section_by_name(name)
            .ok_or_else(|| format!("{path}: no {name} section"))?;
        let d = s.data().map_err(|e| format!("{path}: {name}: {e}"))?;
        Ok::<_, String>((s.address(), d))
    };
    let (hdr_addr, hdr) = section(".eh_frame_hdr")?;
    let (eh_addr, eh) = section(".eh_frame")?;
    let module = Module::new(CfiSections {
        eh_frame_hdr: hdr,
        eh_frame_hdr_addr: hdr_addr,
        eh_frame: eh,
        eh_frame_addr: eh_addr,
    })
    .map_err(|e| format!("{path}: {e}"))?;

    let mut syms: Vec<(u64, u64, String)> = obj
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text)
        .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_string())))
        .collect();
    syms.sort();
    let name_at = |addr: u64| -> String {
        let i = syms.partition_point(|s| s.0 <= addr);
        match i.checked_sub(1).map(|i| &syms[i]) {
            Some((a, _, n)) => format!("{:#}+{:#x}", rustc_demangle::demangle(n), addr - a),
            None => "<no symbol>".into(),
        }
    };

    let mut total = Coverage::default();
    let mut gaps = Vec::new();
    for sec in obj.sections().filter(|s| s.kind() == SectionKind::Text) {
        let name = sec.name().unwrap_or("?").to_string();
        let bytes = sec.data().map_err(|e| format!("{path}: {name}: {e}"))?;
        let start = sec.address();
        let end = start + sec.size();
        let c = coverage(&module, start, end, Some(bytes), |s, e, pad| {
            if !pad {
                gaps.push((s, e));
            }
        })
        .map_err(|e| format!("{path}: {e}"))?;
        total.text_bytes += c.text_bytes;
        total.covered_bytes += c.covered_bytes;
        total.padding_bytes += c.padding_bytes;
        total.uncovered_bytes += c.uncovered_bytes;
    }
    let ppm = total.covered_ppm();
    println!(
        "cfi-coverage: text={} covered={} padding={} uncovered={} fdes={} coverage={}.{:04}%",
        total.text_bytes,
        total.covered_bytes,
        total.padding_bytes,
        total.uncovered_bytes,
        module.fde_count(),
        ppm / 10_000,
        ppm % 10_000
    );
    for (s, e) in &gaps {
        println!(
            "  uncovered {s:#x}..{e:#x} ({} bytes) at {}",
            e - s,
            name_at(*s)
        );
    }
    Ok(!require_full || total.uncovered_bytes == 0)
}

fn main() -> ExitCode {
    let mut require_full = false;
    let mut path = None;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--require-full" => require_full = true,
            _ if path.is_none() && !a.starts_with("--") => path = Some(a),
            _ => {
                eprintln!("usage: coverage [--require-full] <elf>");
                return ExitCode::from(2);
            }
        }
    }
    let Some(path) = path else {
        eprintln!("usage: coverage [--require-full] <elf>");
        return ExitCode::from(2);
    };
    match run(&path, require_full) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("coverage: {path}: some code has no FDE");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("coverage: {e}");
            ExitCode::from(2)
        }
    }
}
