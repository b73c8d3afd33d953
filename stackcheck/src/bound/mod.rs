//! Indirect-call resolution, SCCs and worst-case depth per function.

use std::collections::BTreeSet;

use crate::config::Config;
use crate::elf::Image;
use crate::glob_match;
use crate::graph::{FrameSource, Graph, SiteKind};

mod recursion;
mod resolve;
mod scc;
#[cfg(test)]
mod tests;

pub use recursion::RecursionUse;
use resolve::{Nodes, Resolver};

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

/// What makes a function's bound unknowable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueKind {
    /// The frame size could not be determined.
    UnknownFrame,
    /// Bytes in the function that do not decode.
    Undecodable,
    /// A call through a pointer slot that holds no function.
    UnresolvedSlot,
    /// A branch to an address outside every function.
    NoFunction,
    /// An `[[indirect]]` annotation whose targets match nothing.
    StaleAnnotation,
    /// An indirect call the policy cannot resolve.
    UnresolvedIndirect,
    /// A cycle no `[[recursion]]` annotation bounds.
    Recursion,
    /// A nested entry is unbounded.
    NestedUnbounded,
}

impl IssueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueKind::UnknownFrame => "unknown-frame",
            IssueKind::Undecodable => "undecodable",
            IssueKind::UnresolvedSlot => "unresolved-slot",
            IssueKind::NoFunction => "no-function",
            IssueKind::StaleAnnotation => "stale-annotation",
            IssueKind::UnresolvedIndirect => "unresolved-indirect",
            IssueKind::Recursion => "recursion",
            IssueKind::NestedUnbounded => "nested-unbounded",
        }
    }
}

impl std::fmt::Display for IssueKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for IssueKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Something that makes a function's bound unknowable.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Issue {
    pub kind: IssueKind,
    pub function: String,
    pub address: String,
    pub detail: String,
}

impl Issue {
    pub fn new(kind: IssueKind, function: &str, address: u64, detail: String) -> Self {
        Issue {
            kind,
            function: function.to_string(),
            address: format!("{address:#x}"),
            detail,
        }
    }
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
    /// Per `[[recursion]]` annotation and component: the cycles it bounds.
    pub recursion_uses: Vec<RecursionUse>,
    /// Dispatch candidate sets of unannotated indirect calls: (label, size).
    pub candidate_sets: Vec<(String, usize)>,
    /// Size of the largest strongly connected component (functions only).
    pub largest_scc: usize,
}

pub(crate) fn matches(img: &Image<'_>, fi: usize, pat: &str) -> bool {
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
    let mut nodes = initial_nodes(img, g, cfg, image_name);
    let mut res = Resolver::new(img, g, cfg, image_name);
    for fi in 0..img.functions.len() {
        res.function(fi, &mut nodes);
    }
    let candidate_sets = res.candidate_sets(&nodes);
    let indirect = res.stats;
    let n = nodes.names.len();
    // SCCs come out callees-first.
    let (scc_of, sccs) = scc::tarjan(n, &nodes.edges, &|_| true);
    let recs: Vec<_> = cfg
        .recursion
        .iter()
        .enumerate()
        .filter(|(_, r)| Config::image_matches(&r.image, image_name))
        .collect();
    let mut out = recursion::Out {
        bound: vec![None; n],
        best: vec![None; n],
        recursion: vec![None; n],
        uses: Vec::new(),
    };
    for (si, members) in sccs.iter().enumerate() {
        if scc::is_cyclic(members, &nodes.edges) {
            recursion::bound_scc(img, &recs, si, members, &mut nodes, &scc_of, &mut out);
        } else {
            let fi = members[0];
            out.bound[fi] = single_bound(fi, &nodes, &out.bound, &mut out.best);
        }
    }
    let nfuncs = img.functions.len();
    let largest_scc = sccs
        .iter()
        .map(|c| c.iter().filter(|&&v| v < nfuncs).count())
        .max()
        .unwrap_or(0);
    Bounds {
        names: nodes.names,
        addrs: nodes.addrs,
        nfuncs,
        frames: nodes.frames,
        sources: nodes.sources,
        edges: nodes.edges,
        issues: nodes.issues,
        bound: out.bound,
        best: out.best,
        recursion: out.recursion,
        indirect,
        scc_of,
        entry_depth: nodes.entry_depth,
        recursion_uses: out.uses,
        candidate_sets,
        largest_scc,
    }
}

/// Real functions with their frames (`[[frame]]` annotations applied).
fn initial_nodes(img: &Image<'_>, g: &Graph, cfg: &Config, image_name: &str) -> Nodes {
    let n = img.functions.len();
    let mut frames: Vec<Result<u64, String>> = g.funcs.iter().map(|f| f.frame.clone()).collect();
    let mut sources: Vec<FrameSource> = g.funcs.iter().map(|f| f.source).collect();
    for fc in cfg
        .frame
        .iter()
        .filter(|f| Config::image_matches(&f.image, image_name))
    {
        for fi in 0..n {
            if matches(img, fi, &fc.symbol) {
                frames[fi] = Ok(fc.size);
                sources[fi] = FrameSource::Config;
            }
        }
    }
    let entry_depth = (0..n)
        .map(|i| {
            if sources[i] == FrameSource::Config {
                8
            } else {
                g.funcs[i].entry_depth
            }
        })
        .collect();
    Nodes {
        names: img.functions.iter().map(|f| f.demangled.clone()).collect(),
        addrs: img.functions.iter().map(|f| f.addr).collect(),
        frames,
        sources,
        entry_depth,
        edges: vec![Vec::new(); n],
        issues: vec![Vec::new(); n],
    }
}

fn single_bound(
    fi: usize,
    nodes: &Nodes,
    bound: &[Option<u64>],
    best: &mut [Option<usize>],
) -> Option<u64> {
    if !nodes.issues[fi].is_empty() {
        return None;
    }
    let mut b = *nodes.frames[fi].as_ref().ok()?;
    let mut arg = None;
    for (ei, e) in nodes.edges[fi].iter().enumerate() {
        let c = cost(e, bound[e.to]?, nodes.entry_depth[e.to]);
        if c > b {
            b = c;
            arg = Some(ei);
        }
    }
    best[fi] = arg;
    Some(b)
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
