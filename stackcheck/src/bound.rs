//! Indirect-call resolution, SCCs and worst-case depth per function.

use std::collections::BTreeSet;

use crate::config::{Config, IndirectPolicy};
use crate::elf::Image;
use crate::glob_match;
use crate::graph::{FrameSource, Graph, IndirectForm, SiteKind, Target};

/// How an edge's callee was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    Direct,
    Slot,
    Annotation,
    Vtable,
    AddressTaken,
}

#[derive(Debug, Clone)]
pub struct Edge {
    pub to: usize,
    pub site: u64,
    pub kind: SiteKind,
    pub depth: u64,
    pub how: Resolution,
}

/// Something that makes a function's bound unknowable.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Issue {
    pub kind: String,
    pub function: String,
    pub address: String,
    pub detail: String,
}

/// Statistics about indirect call sites.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IndirectStats {
    pub sites: usize,
    pub by_annotation: usize,
    pub by_vtable: usize,
    pub by_address_taken: usize,
    pub unresolved: usize,
}

pub struct Bounds {
    /// Node names: functions first, then pseudo-nodes for dispatch sets.
    pub names: Vec<String>,
    pub addrs: Vec<u64>,
    /// Number of real functions (nodes >= this are dispatch pseudo-nodes).
    pub nfuncs: usize,
    pub frames: Vec<Result<u64, String>>,
    pub sources: Vec<FrameSource>,
    pub edges: Vec<Vec<Edge>>,
    pub issues: Vec<Vec<Issue>>,
    /// Bound per function (incl. its own return address); None = unbounded.
    pub bound: Vec<Option<u64>>,
    /// Worst next edge per function (index into `edges[f]`).
    pub best: Vec<Option<usize>>,
    /// For recursive functions: (annotated depth, members).
    pub recursion: Vec<Option<(u64, usize)>>,
    pub indirect: IndirectStats,
    pub scc_of: Vec<usize>,
    /// Stack depth at each node's first instruction (see `FuncInfo::entry_depth`).
    pub entry_depth: Vec<u64>,
}

fn matches(img: &Image<'_>, fi: usize, pat: &str) -> bool {
    let f = &img.functions[fi];
    glob_match(pat, &f.name)
        || glob_match(pat, &f.demangled)
        || f.aliases.iter().any(|a| glob_match(pat, a))
}

/// Stack from the caller's CFA to the deepest point of the callee: the
/// caller's depth at the site, plus the return address for a call, minus
/// what the callee's own depth already counts at its entry, plus the callee.
pub fn cost(e: &Edge, callee: u64, callee_entry: u64) -> u64 {
    let pushed = if e.kind == SiteKind::Call { 8 } else { 0 };
    e.depth
        .saturating_add(pushed)
        .saturating_sub(callee_entry)
        .saturating_add(callee)
}

pub fn compute(img: &Image<'_>, g: &Graph, cfg: &Config, image_name: &str) -> Bounds {
    let n = img.functions.len();
    let sel = |s: &Option<String>| Config::image_matches(s, image_name);
    let mut frames: Vec<Result<u64, String>> = g.funcs.iter().map(|f| f.frame.clone()).collect();
    let mut sources: Vec<FrameSource> = g.funcs.iter().map(|f| f.source).collect();
    for fc in cfg.frame.iter().filter(|f| sel(&f.image)) {
        for fi in 0..n {
            if matches(img, fi, &fc.symbol) {
                frames[fi] = Ok(fc.size);
                sources[fi] = FrameSource::Config;
            }
        }
    }
    let not_callable: Vec<bool> = (0..n)
        .map(|fi| {
            cfg.analysis
                .not_callable
                .iter()
                .any(|p| matches(img, fi, p))
        })
        .collect();
    let taken: Vec<usize> = g
        .address_taken
        .iter()
        .copied()
        .filter(|&t| !not_callable[t])
        .collect();
    let annotations: Vec<_> = cfg.indirect.iter().filter(|a| sel(&a.image)).collect();
    let mut ann_targets_cache: Vec<Option<Vec<usize>>> = vec![None; annotations.len()];

    let mut edges: Vec<Vec<Edge>> = vec![Vec::new(); n];
    let mut issues: Vec<Vec<Issue>> = vec![Vec::new(); n];
    let mut names: Vec<String> = img.functions.iter().map(|f| f.demangled.clone()).collect();
    let mut addrs: Vec<u64> = img.functions.iter().map(|f| f.addr).collect();
    let mut entry_depth: Vec<u64> = (0..n)
        .map(|i| {
            if sources[i] == FrameSource::Config {
                8
            } else {
                g.funcs[i].entry_depth
            }
        })
        .collect();
    // Dispatch pseudo-nodes: one for "any address-taken function", one per
    // vtable slot offset. Indirect sites get one edge to the pseudo-node,
    // which fans out to the candidates at no stack cost.
    let mut pseudo_taken: Option<usize> = None;
    let mut pseudo_slot: std::collections::BTreeMap<i64, usize> = std::collections::BTreeMap::new();
    let mut new_pseudo = |label: String,
                          targets: &[usize],
                          how: Resolution,
                          edges: &mut Vec<Vec<Edge>>,
                          issues: &mut Vec<Vec<Issue>>,
                          frames: &mut Vec<Result<u64, String>>,
                          sources: &mut Vec<FrameSource>|
     -> usize {
        let id = names.len();
        names.push(label);
        addrs.push(0);
        entry_depth.push(8);
        edges.push(
            targets
                .iter()
                .map(|&t| Edge {
                    to: t,
                    site: 0,
                    kind: SiteKind::Tail,
                    depth: 8,
                    how,
                })
                .collect(),
        );
        issues.push(Vec::new());
        frames.push(Ok(0));
        sources.push(FrameSource::Config);
        id
    };
    let mut stats = IndirectStats::default();
    for fi in 0..n {
        let f = &img.functions[fi];
        let info = &g.funcs[fi];
        if let Err(e) = &frames[fi] {
            issues[fi].push(Issue {
                kind: "unknown-frame".into(),
                function: f.demangled.clone(),
                address: format!("{:#x}", f.addr),
                detail: e.clone(),
            });
        }
        if let Some(a) = info.invalid_at
            && sources[fi] != FrameSource::Config
        {
            issues[fi].push(Issue {
                kind: "undecodable".into(),
                function: f.demangled.clone(),
                address: format!("{a:#x}"),
                detail: "invalid instruction bytes in the function".into(),
            });
        }
        let fallback_depth = frames[fi].as_ref().ok().copied();
        for s in &info.sites {
            let Some(depth) = s.depth.or(fallback_depth) else {
                continue;
            };
            let depth = if sources[fi] == FrameSource::Config {
                fallback_depth.unwrap_or(depth)
            } else {
                depth
            };
            let mk = |to: usize, how: Resolution| Edge {
                to,
                site: s.addr,
                kind: s.kind,
                depth,
                how,
            };
            let issue = |kind: &str, detail: String| Issue {
                kind: kind.into(),
                function: f.demangled.clone(),
                address: format!("{:#x}", s.addr),
                detail,
            };
            match &s.target {
                Target::Func(t) => edges[fi].push(mk(
                    *t,
                    if s.via_slot {
                        Resolution::Slot
                    } else {
                        Resolution::Direct
                    },
                )),
                Target::Slot { slot, detail } => issues[fi].push(issue(
                    "unresolved-slot",
                    format!("call through slot {slot:#x}: {detail}"),
                )),
                Target::NoFunction(t) => issues[fi].push(issue(
                    "no-function",
                    format!("branch to {t:#x}, which is in no known function"),
                )),
                Target::Indirect(form) => {
                    stats.sites += 1;
                    let off = s.addr - f.addr;
                    let ann = annotations.iter().position(|a| {
                        a.offset.is_none_or(|o| o == off) && matches(img, fi, &a.caller)
                    });
                    if let Some(ai) = ann {
                        stats.by_annotation += 1;
                        let ts = ann_targets_cache[ai].get_or_insert_with(|| {
                            let a = annotations[ai];
                            (0..n)
                                .filter(|&t| a.targets.iter().any(|p| matches(img, t, p)))
                                .filter(|&t| !a.exclude.iter().any(|p| matches(img, t, p)))
                                .collect()
                        });
                        if ts.is_empty() && !annotations[ai].targets.is_empty() {
                            issues[fi].push(issue(
                                "stale-annotation",
                                format!(
                                    "[[indirect]] for `{}` names targets {:?} that match no function",
                                    annotations[ai].caller, annotations[ai].targets
                                ),
                            ));
                        }
                        for &t in ts.iter() {
                            edges[fi].push(mk(t, Resolution::Annotation));
                        }
                        continue;
                    }
                    let policy = cfg.analysis.indirect;
                    let vt = match (policy, form) {
                        (IndirectPolicy::Vtable, IndirectForm::MemDisp(d)) => g.vtable_slots.get(d),
                        _ => None,
                    };
                    if let (Some(set), IndirectForm::MemDisp(d)) = (vt, form) {
                        let cands: Vec<usize> =
                            set.iter().copied().filter(|&t| !not_callable[t]).collect();
                        if !cands.is_empty() {
                            stats.by_vtable += 1;
                            let p = match pseudo_slot.get(d) {
                                Some(&p) => p,
                                None => {
                                    let p = new_pseudo(
                                        format!("<vtable slot {d:#x}: {} candidates>", cands.len()),
                                        &cands,
                                        Resolution::Vtable,
                                        &mut edges,
                                        &mut issues,
                                        &mut frames,
                                        &mut sources,
                                    );
                                    pseudo_slot.insert(*d, p);
                                    p
                                }
                            };
                            edges[fi].push(mk(p, Resolution::Vtable));
                            continue;
                        }
                    }
                    if policy != IndirectPolicy::None && !taken.is_empty() {
                        stats.by_address_taken += 1;
                        let p = match pseudo_taken {
                            Some(p) => p,
                            None => {
                                let p = new_pseudo(
                                    format!("<any of {} address-taken functions>", taken.len()),
                                    &taken,
                                    Resolution::AddressTaken,
                                    &mut edges,
                                    &mut issues,
                                    &mut frames,
                                    &mut sources,
                                );
                                pseudo_taken = Some(p);
                                p
                            }
                        };
                        edges[fi].push(mk(p, Resolution::AddressTaken));
                        continue;
                    }
                    stats.unresolved += 1;
                    let what = match form {
                        IndirectForm::Register => "call through a register".to_string(),
                        IndirectForm::MemDisp(d) => format!("call through memory [reg{d:+#x}]"),
                        IndirectForm::Complex => "call through a computed address".to_string(),
                    };
                    issues[fi].push(issue(
                        "unresolved-indirect",
                        format!(
                            "{what} at {}+{off:#x}; annotate it with [[indirect]]",
                            f.demangled
                        ),
                    ));
                }
            }
        }
    }

    // Tarjan's SCC, iterative. SCCs come out callees-first.
    let n = names.len();
    let (scc_of, sccs) = tarjan(n, &edges);
    let mut bound: Vec<Option<u64>> = vec![None; n];
    let mut best: Vec<Option<usize>> = vec![None; n];
    let mut recursion: Vec<Option<(u64, usize)>> = vec![None; n];
    let recs: Vec<_> = cfg.recursion.iter().filter(|r| sel(&r.image)).collect();
    for (si, members) in sccs.iter().enumerate() {
        let recursive = members.len() > 1 || edges[members[0]].iter().any(|e| e.to == members[0]);
        if !recursive {
            let fi = members[0];
            bound[fi] = single_bound(
                fi,
                &frames,
                &edges,
                &issues,
                &bound,
                &entry_depth,
                &mut best,
            );
            continue;
        }
        let nf = img.functions.len();
        let ann = recs.iter().find(|r| {
            members
                .iter()
                .any(|&m| m < nf && r.functions.iter().any(|p| matches(img, m, p)))
        });
        let Some(ann) = ann else {
            let list: Vec<String> = members.iter().take(8).map(|&m| names[m].clone()).collect();
            // One issue per cycle (every member reaches it), on the member
            // with the lowest address for stable output.
            let Some(&m) = members
                .iter()
                .filter(|&&m| m < nf)
                .min_by_key(|&&m| addrs[m])
                .or(members.first())
            else {
                continue;
            };
            {
                issues[m].push(Issue {
                    kind: "recursion".into(),
                    function: names[m].clone(),
                    address: format!("{:#x}", addrs[m]),
                    detail: format!(
                        "recursive cycle of {} function(s) ({}{}) without a [[recursion]] max_depth",
                        members.len(),
                        list.join(", "),
                        if members.len() > 8 { ", ..." } else { "" }
                    ),
                });
            }
            continue;
        };
        // (N-1) * largest internal step + largest exit.
        let mut ok = members
            .iter()
            .all(|&m| issues[m].is_empty() && frames[m].is_ok());
        let mut step = 0u64;
        let mut exit = 0u64;
        let mut exit_best: Option<(usize, Option<usize>)> = None;
        for &m in members {
            let fr = frames[m].as_ref().copied().unwrap_or(0);
            if fr > exit {
                exit = fr;
                exit_best = Some((m, None));
            }
            for (ei, e) in edges[m].iter().enumerate() {
                if scc_of[e.to] == si {
                    step = step.max(cost(e, 0, entry_depth[e.to]));
                } else {
                    match bound[e.to] {
                        Some(b) => {
                            let c = cost(e, b, entry_depth[e.to]);
                            if c > exit {
                                exit = c;
                                exit_best = Some((m, Some(ei)));
                            }
                        }
                        None => ok = false,
                    }
                }
            }
        }
        let value = ok.then(|| {
            (ann.max_depth - 1)
                .saturating_mul(step)
                .saturating_add(exit)
        });
        for &m in members {
            bound[m] = value;
            recursion[m] = Some((ann.max_depth, members.len()));
            best[m] = None;
        }
        if let Some((m, e)) = exit_best {
            best[m] = e;
        }
    }
    Bounds {
        names,
        addrs,
        nfuncs: img.functions.len(),
        frames,
        sources,
        edges,
        issues,
        bound,
        best,
        recursion,
        indirect: stats,
        scc_of,
        entry_depth,
    }
}

fn single_bound(
    fi: usize,
    frames: &[Result<u64, String>],
    edges: &[Vec<Edge>],
    issues: &[Vec<Issue>],
    bound: &[Option<u64>],
    entry_depth: &[u64],
    best: &mut [Option<usize>],
) -> Option<u64> {
    if !issues[fi].is_empty() {
        return None;
    }
    let mut b = *frames[fi].as_ref().ok()?;
    let mut arg = None;
    for (ei, e) in edges[fi].iter().enumerate() {
        let c = cost(e, bound[e.to]?, entry_depth[e.to]);
        if c > b {
            b = c;
            arg = Some(ei);
        }
    }
    best[fi] = arg;
    Some(b)
}

/// Iterative Tarjan. Returns (scc index per node, SCCs in callee-first order).
fn tarjan(n: usize, edges: &[Vec<Edge>]) -> (Vec<usize>, Vec<Vec<usize>>) {
    const NONE: usize = usize::MAX;
    let mut index = vec![NONE; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut scc_of = vec![NONE; n];
    let mut sccs: Vec<Vec<usize>> = Vec::new();
    let mut next = 0usize;
    let mut call: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if index[root] != NONE {
            continue;
        }
        call.push((root, 0));
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut ei)) = call.last_mut() {
            if *ei < edges[v].len() {
                let w = edges[v][*ei].to;
                *ei += 1;
                if index[w] == NONE {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(u, _)) = call.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    let id = sccs.len();
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        scc_of[w] = id;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    sccs.push(comp);
                }
            }
        }
    }
    (scc_of, sccs)
}

/// Functions reachable from `root`.
pub fn reachable(b: &Bounds, root: usize) -> Vec<usize> {
    let mut seen = BTreeSet::new();
    let mut work = vec![root];
    seen.insert(root);
    while let Some(v) = work.pop() {
        for e in &b.edges[v] {
            if seen.insert(e.to) {
                work.push(e.to);
            }
        }
    }
    seen.into_iter().collect()
}
