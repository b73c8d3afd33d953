//! Top level: analyse the configured images and build the report model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::bail_input;
use crate::bound::{self, Bounds, IndirectStats, Issue, IssueKind, RecursionUse, Resolution};
use crate::cfi::Cfi;
use crate::config::{Config, EntryCfg};
use crate::dwarf::LineIndex;
use crate::elf::Image;
use crate::graph::{self, FrameSource, Graph, SiteKind};

/// JSON schema identifier; bumped on incompatible changes.
pub const SCHEMA: &str = "stackcheck-report/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub tool_version: String,
    /// True when every entry is bounded and within its budget.
    pub ok: bool,
    pub images: Vec<ImageReport>,
    pub entries: Vec<EntryReport>,
    pub large_moves: Vec<LargeMove>,
    pub large_frames: Vec<LargeFrame>,
    pub thresholds: ThresholdReport,
    /// Per `[[recursion]]` annotation: the cycles it bounds.
    #[serde(default)]
    pub recursion: Vec<RecursionReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecursionReport {
    pub image: String,
    /// The annotation's function globs and depth, as configured.
    pub annotation: Vec<String>,
    pub max_depth: u64,
    /// One entry per strongly connected component it applies to (empty:
    /// the annotation bounds no cycle).
    pub components: Vec<RecursionUse>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThresholdReport {
    pub large_move: u64,
    pub large_frame: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageReport {
    pub name: String,
    pub path: String,
    pub build_id: Option<String>,
    pub functions: usize,
    pub sized_by_cfi: usize,
    pub sized_by_code: usize,
    pub sized_by_config: usize,
    pub unknown_size: Vec<String>,
    pub vtables: usize,
    pub address_taken: usize,
    pub indirect_sites: IndirectReport,
    /// Functions in the largest strongly connected component of the graph.
    #[serde(default)]
    pub largest_scc: usize,
    /// Candidate sets of unannotated indirect calls: label and size.
    #[serde(default)]
    pub candidate_sets: Vec<(String, usize)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct IndirectReport {
    pub total: usize,
    pub by_annotation: usize,
    pub by_vtable: usize,
    pub by_address_taken: usize,
    pub unresolved: usize,
}

impl From<&IndirectStats> for IndirectReport {
    fn from(s: &IndirectStats) -> Self {
        IndirectReport {
            total: s.sites,
            by_annotation: s.by_annotation,
            by_vtable: s.by_vtable,
            by_address_taken: s.by_address_taken,
            unresolved: s.unresolved,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Ok,
    OverBudget,
    Unbounded,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryReport {
    pub name: String,
    pub image: String,
    pub symbol: String,
    pub stack: String,
    pub stack_size: Option<u64>,
    pub budget: u64,
    /// Bytes on the stack at the first instruction (return address or CPU frame).
    pub entry_bytes: u64,
    pub status: Status,
    /// Depth of this entry alone.
    pub own_bound: Option<u64>,
    /// Deepest nested entry (name, its total bound).
    pub nested_worst: Option<String>,
    pub nested_bound: Option<u64>,
    /// own_bound + nested_bound: the number compared with the budget.
    pub bound: Option<u64>,
    pub headroom: Option<i64>,
    pub worst_path: Vec<PathStep>,
    pub issues: Vec<Issue>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathStep {
    pub function: String,
    pub address: String,
    /// Frame size incl. return address.
    pub frame: u64,
    pub frame_source: String,
    /// Stack in use when the function starts (incl. its return address/CPU frame).
    pub stack_at_entry: u64,
    /// Call site to the next step, its caller depth and kind.
    pub site: Option<String>,
    pub site_depth: Option<u64>,
    pub kind: Option<String>,
    pub resolution: Option<String>,
    /// Recursion annotation applied here: max active frames of the cycle.
    pub recursion_depth: Option<u64>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LargeMove {
    pub image: String,
    pub function: String,
    pub address: String,
    pub callee: String,
    pub size: u64,
    /// The destination is the calling function's own stack frame: a large
    /// value built or copied on the stack (the case to fix first).
    #[serde(default)]
    pub onto_stack: bool,
    pub file: Option<String>,
    pub line: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LargeFrame {
    pub image: String,
    pub function: String,
    pub address: String,
    pub frame: u64,
    pub source: String,
    pub file: Option<String>,
    pub line: Option<u32>,
}

fn source_name(s: FrameSource) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn kind_name(k: SiteKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn res_name(r: Resolution) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// One analysed image (kept for symbolize/bench/validation use).
pub struct Analyzed<'a> {
    pub img: Image<'a>,
    pub cfi: Cfi,
    pub graph: Graph,
    pub bounds: Bounds,
}

/// Parse and analyse one ELF.
pub fn analyze_image<'a>(
    data: &'a [u8],
    cfg: &Config,
    image_name: &str,
    all_code: bool,
) -> Result<Analyzed<'a>> {
    let mut img = Image::parse(data)?;
    let cfi = Cfi::parse(&img)?;
    img.add_fde_functions(&cfi.ranges());
    if img.functions.is_empty() {
        bail_input!(
            "no functions found: the ELF has no function symbols{} and no CFI (stripped?)",
            if img.has_symtab { "" } else { " (no .symtab)" }
        );
    }
    let graph = graph::build(&img, &cfi, all_code);
    let bounds = bound::compute(&img, &graph, cfg, image_name);
    Ok(Analyzed {
        img,
        cfi,
        graph,
        bounds,
    })
}

pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(d) => Ok(d),
        Err(e) => bail_input!("cannot read ELF {}: {e}", path.display()),
    }
}

/// Run the whole check. `paths` maps image name -> ELF path.
pub fn run(cfg: &Config, paths: &BTreeMap<String, PathBuf>) -> Result<Report> {
    run_with(cfg, paths, true)
}

/// Like [`run`]; `path_locations` false skips the DWARF lookups for the
/// worst-path steps (the text summary does not show them; large moves and
/// frames always get their file:line).
pub fn run_with(
    cfg: &Config,
    paths: &BTreeMap<String, PathBuf>,
    path_locations: bool,
) -> Result<Report> {
    let mut report = Report {
        schema: SCHEMA.into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        ok: true,
        images: Vec::new(),
        entries: Vec::new(),
        large_moves: Vec::new(),
        large_frames: Vec::new(),
        thresholds: ThresholdReport {
            large_move: cfg.thresholds.large_move,
            large_frame: cfg.thresholds.large_frame,
        },
        recursion: Vec::new(),
    };
    for (name, path) in paths {
        let data = read_file(path)?;
        let a = analyze_image(&data, cfg, name, false)?;
        let lines = LineIndex::new(&data);
        image_report(&mut report, cfg, name, path, &a, &lines, path_locations)?;
    }
    report.ok = report.entries.iter().all(|e| e.status == Status::Ok);
    Ok(report)
}

fn loc(lines: &LineIndex<'_>, addr: u64) -> (Option<String>, Option<u32>) {
    match lines.location(addr) {
        Some((f, l)) => (Some(f), Some(l)),
        None => (None, None),
    }
}

fn image_report(
    report: &mut Report,
    cfg: &Config,
    name: &str,
    path: &Path,
    a: &Analyzed<'_>,
    lines: &LineIndex<'_>,
    path_locations: bool,
) -> Result<()> {
    let img = &a.img;
    let b = &a.bounds;
    let count = |s: FrameSource| b.sources.iter().filter(|&&x| x == s).count();
    report.images.push(ImageReport {
        name: name.into(),
        path: path.display().to_string(),
        build_id: img
            .build_id()
            .map(|v| v.iter().map(|x| format!("{x:02x}")).collect()),
        functions: img.functions.len(),
        sized_by_cfi: count(FrameSource::Cfi),
        sized_by_code: count(FrameSource::Code) + count(FrameSource::CfiAndCode),
        sized_by_config: count(FrameSource::Config),
        unknown_size: b
            .frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is_err())
            .map(|(i, _)| b.names[i].clone())
            .collect(),
        vtables: a.graph.vtables_found,
        address_taken: a.graph.address_taken.len(),
        indirect_sites: (&b.indirect).into(),
        largest_scc: b.largest_scc,
        candidate_sets: b.candidate_sets.clone(),
    });
    for (ri, r) in cfg.recursion.iter().enumerate() {
        if Config::image_matches(&r.image, name) {
            report.recursion.push(RecursionReport {
                image: name.into(),
                annotation: r.functions.clone(),
                max_depth: r.max_depth,
                components: b
                    .recursion_uses
                    .iter()
                    .filter(|u| u.annotation == ri)
                    .cloned()
                    .collect(),
            });
        }
    }

    // Large moves and frames.
    for m in &a.graph.moves {
        if m.size >= cfg.thresholds.large_move {
            let (file, line) = match lines.user_location(m.addr) {
                Some((f, l)) => (Some(f), Some(l)),
                None => (None, None),
            };
            report.large_moves.push(LargeMove {
                image: name.into(),
                function: img.functions[m.func].demangled.clone(),
                address: format!("{:#x}", m.addr),
                callee: m.callee.clone(),
                size: m.size,
                onto_stack: m.onto_stack,
                file,
                line,
            });
        }
    }
    for (fi, f) in img.functions.iter().enumerate() {
        if let Ok(fr) = b.frames[fi]
            && fr >= cfg.thresholds.large_frame
        {
            let (file, line) = loc(lines, f.addr);
            report.large_frames.push(LargeFrame {
                image: name.into(),
                function: f.demangled.clone(),
                address: format!("{:#x}", f.addr),
                frame: fr,
                source: source_name(b.sources[fi]),
                file,
                line,
            });
        }
    }
    report
        .large_frames
        .sort_by_key(|x| std::cmp::Reverse(x.frame));

    // Entries.
    let entries: Vec<&EntryCfg> = cfg
        .entries
        .iter()
        .filter(|e| Config::image_matches(&e.image, name))
        .collect();
    let mut own: OwnMap = BTreeMap::new();
    for e in &entries {
        let Some(fi) = img.lookup(&e.symbol) else {
            bail_input!(
                "entry `{}`: symbol `{}` not found in image `{name}` ({}){}",
                e.name,
                e.symbol,
                path.display(),
                if img.has_symtab {
                    ""
                } else {
                    "; the ELF has no .symtab (stripped?)"
                }
            );
        };
        let entry_bytes = e.cpu_pushed.unwrap_or(8);
        let raw = b.bound[fi];
        let value = raw.map(|v| {
            v.saturating_sub(b.entry_depth[fi])
                .saturating_add(entry_bytes)
        });
        let issues = if raw.is_none() {
            let mut v: Vec<Issue> = bound::reachable(b, fi)
                .into_iter()
                .flat_map(|r| b.issues[r].clone())
                .collect();
            v.truncate(200);
            v
        } else {
            Vec::new()
        };
        let path_steps = if raw.is_some() {
            worst_path(a, lines, fi, entry_bytes, path_locations)
        } else {
            Vec::new()
        };
        own.insert(e.name.clone(), (value, path_steps, issues, fi));
    }
    // Nesting: total(e) = own(e) + max over nested totals.
    let mut totals: BTreeMap<String, Option<u64>> = BTreeMap::new();
    for e in &entries {
        let mut visiting = Vec::new();
        total(e.name.as_str(), &entries, &own, &mut totals, &mut visiting)?;
    }
    for e in &entries {
        let (own_v, steps, issues, _) = &own[&e.name];
        let mut nested_worst = None;
        let mut nested_bound = Some(0u64);
        for n in &e.nested {
            match totals[n] {
                Some(v) => {
                    if nested_bound.is_some_and(|nb| v >= nb) {
                        nested_bound = Some(v);
                        nested_worst = Some(n.clone());
                    }
                }
                None => {
                    nested_bound = None;
                    nested_worst = Some(n.clone());
                    break;
                }
            }
        }
        if e.nested.is_empty() {
            nested_bound = None;
        }
        let bound_total = totals[&e.name];
        let stack_size = cfg.stacks.get(&e.stack).map(|s| s.size);
        let status = match bound_total {
            None => Status::Unbounded,
            Some(v) if v > e.budget || stack_size.is_some_and(|s| v > s) => Status::OverBudget,
            Some(_) => Status::Ok,
        };
        let mut issues = issues.clone();
        if own_v.is_some() && bound_total.is_none() {
            issues.push(Issue {
                kind: IssueKind::NestedUnbounded,
                function: e.symbol.clone(),
                address: String::new(),
                detail: format!(
                    "nested entry `{}` is unbounded",
                    nested_worst.clone().unwrap_or_default()
                ),
            });
        }
        report.entries.push(EntryReport {
            name: e.name.clone(),
            image: name.into(),
            symbol: e.symbol.clone(),
            stack: e.stack.clone(),
            stack_size,
            budget: e.budget,
            entry_bytes: e.cpu_pushed.unwrap_or(8),
            status,
            own_bound: *own_v,
            nested_worst,
            nested_bound,
            bound: bound_total,
            headroom: bound_total.map(|v| {
                (i128::from(e.budget) - i128::from(v))
                    .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
            }),
            worst_path: steps.clone(),
            issues,
        });
    }
    Ok(())
}

type OwnMap = BTreeMap<String, (Option<u64>, Vec<PathStep>, Vec<Issue>, usize)>;

fn total(
    name: &str,
    entries: &[&EntryCfg],
    own: &OwnMap,
    memo: &mut BTreeMap<String, Option<u64>>,
    visiting: &mut Vec<String>,
) -> Result<Option<u64>> {
    if let Some(v) = memo.get(name) {
        return Ok(*v);
    }
    if visiting.iter().any(|v| v == name) {
        bail_input!(
            "invalid config: nesting cycle through entry `{name}` ({})",
            visiting.join(" -> ")
        );
    }
    visiting.push(name.to_string());
    let Some(e) = entries.iter().find(|e| e.name == name) else {
        bail_input!("invalid config: nested entry `{name}` is not an entry of this image");
    };
    let mut v = own[name].0;
    let mut nested_max = 0u64;
    for n in &e.nested {
        match total(n, entries, own, memo, visiting)? {
            Some(x) => nested_max = nested_max.max(x),
            None => v = None,
        }
    }
    let v = v.map(|x| x.saturating_add(nested_max));
    visiting.pop();
    memo.insert(name.to_string(), v);
    Ok(v)
}

fn worst_path(
    a: &Analyzed<'_>,
    lines: &LineIndex<'_>,
    root: usize,
    entry_bytes: u64,
    locs: bool,
) -> Vec<PathStep> {
    let b = &a.bounds;
    let mut steps = Vec::new();
    let mut cur = root;
    // Signed: the CFA origin of an entry without a return address (cpu_pushed
    // 0) lies above the stack top.
    let mut at_entry = i128::from(entry_bytes);
    let mut seen_scc = std::collections::BTreeSet::new();
    for _ in 0..10_000 {
        let addr = b.addrs[cur];
        let (file, line) = if cur < b.nfuncs && locs {
            loc(lines, addr)
        } else {
            (None, None)
        };
        let frame = b.frames[cur].as_ref().copied().unwrap_or(0);
        let mut step = PathStep {
            function: b.names[cur].clone(),
            address: format!("{addr:#x}"),
            frame,
            frame_source: source_name(b.sources[cur]),
            stack_at_entry: at_entry.clamp(0, i128::from(u64::MAX)) as u64,
            site: None,
            site_depth: None,
            kind: None,
            resolution: None,
            recursion_depth: None,
            file,
            line,
        };
        if let Some((n, _)) = b.recursion[cur] {
            let scc = b.scc_of[cur];
            if !seen_scc.insert(scc) {
                steps.push(step);
                break;
            }
            step.recursion_depth = Some(n);
            // Jump to the cycle member with the worst exit; account the
            // repeated part as the difference to the recorded bound.
            let exit_member = (0..b.names.len())
                .find(|&m| b.scc_of[m] == scc && b.best[m].is_some())
                .unwrap_or(cur);
            let rec_total = b.bound[cur].unwrap_or(0);
            let exit_cost = match b.best[exit_member] {
                Some(ei) => {
                    let e = &b.edges[exit_member][ei];
                    bound::cost(e, b.bound[e.to].unwrap_or(0), b.entry_depth[e.to])
                }
                None => b.frames[exit_member].as_ref().copied().unwrap_or(0),
            };
            let repeated = rec_total.saturating_sub(exit_cost);
            steps.push(step);
            at_entry += i128::from(repeated);
            if exit_member != cur {
                cur = exit_member;
                continue;
            }
            let Some(ei) = b.best[cur] else { break };
            let e = &b.edges[cur][ei];
            if let Some(last) = steps.last_mut() {
                fill_site(last, e);
            }
            at_entry = advance(at_entry, b.entry_depth[cur], e);
            cur = e.to;
            continue;
        }
        let Some(ei) = b.best[cur] else {
            steps.push(step);
            break;
        };
        let e = &b.edges[cur][ei];
        fill_site(&mut step, e);
        steps.push(step);
        at_entry = advance(at_entry, b.entry_depth[cur], e);
        cur = e.to;
    }
    steps
}

/// Stack in use at the callee's first instruction: the caller's CFA origin
/// plus its depth at the site plus the return address of a call.
fn advance(at_entry: i128, caller_entry_depth: u64, e: &bound::Edge) -> i128 {
    let pushed = if e.kind == SiteKind::Call { 8 } else { 0 };
    at_entry - i128::from(caller_entry_depth) + i128::from(e.depth) + pushed
}

fn fill_site(step: &mut PathStep, e: &bound::Edge) {
    step.site = Some(format!("{:#x}", e.site));
    step.site_depth = Some(e.depth);
    step.kind = Some(kind_name(e.kind));
    step.resolution = Some(res_name(e.how));
}

/// Text for `check`: per `[[recursion]]` annotation, the cycles it bounds,
/// so a reviewer sees what it covers.
pub fn recursion_summary(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for a in &r.recursion {
        let _ = writeln!(
            s,
            "recursion {} {:?} max_depth {}:",
            a.image, a.annotation, a.max_depth
        );
        if a.components.is_empty() {
            let _ = writeln!(s, "    bounds no cycle");
        }
        for c in &a.components {
            let _ = writeln!(
                s,
                "    component of {} function(s){}; names {}",
                c.component_size,
                if c.covers_component {
                    ""
                } else {
                    " (NOT covered: a cycle avoids every annotation)"
                },
                c.functions.join(", ")
            );
            for cy in &c.cycles {
                let _ = writeln!(s, "      cycle: {}", cy.join(" -> "));
            }
        }
    }
    s
}
