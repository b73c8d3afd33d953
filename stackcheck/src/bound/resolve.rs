//! Edges of the call graph from the decoded sites: direct calls, slots,
//! `[[indirect]]` annotations and the indirect-call policy.

use std::collections::BTreeMap;

use super::{Edge, IndirectStats, Issue, IssueKind, Resolution, matches};
use crate::config::{Config, IndirectCfg, IndirectPolicy};
use crate::elf::Image;
use crate::graph::{FrameSource, Graph, IndirectForm, Site, Target};

/// The graph under construction: real functions first, then dispatch
/// pseudo-nodes (one per candidate set) that fan out at no stack cost.
pub(super) struct Nodes {
    pub names: Vec<String>,
    pub addrs: Vec<u64>,
    pub frames: Vec<Result<u64, String>>,
    pub sources: Vec<FrameSource>,
    pub entry_depth: Vec<u64>,
    pub edges: Vec<Vec<Edge>>,
    pub issues: Vec<Vec<Issue>>,
}

impl Nodes {
    fn add_pseudo(&mut self, label: String, targets: &[usize], how: Resolution) -> usize {
        let id = self.names.len();
        self.names.push(label);
        self.addrs.push(0);
        self.entry_depth.push(8);
        self.edges.push(
            targets
                .iter()
                .map(|&t| Edge {
                    to: t,
                    site: 0,
                    kind: crate::graph::SiteKind::Tail,
                    depth: 8,
                    how,
                })
                .collect(),
        );
        self.issues.push(Vec::new());
        self.frames.push(Ok(0));
        self.sources.push(FrameSource::Config);
        id
    }
}

/// Resolves the sites of every function into edges.
pub(super) struct Resolver<'a, 'b> {
    pub img: &'a Image<'b>,
    pub g: &'a Graph,
    pub policy: IndirectPolicy,
    pub not_callable: Vec<bool>,
    pub taken: Vec<usize>,
    pub annotations: Vec<&'a IndirectCfg>,
    ann_targets: Vec<Option<Vec<usize>>>,
    pseudo_taken: Option<usize>,
    pseudo_slot: BTreeMap<i64, usize>,
    /// Candidate sets of `traits` annotations: (traits, slot) -> size.
    trait_sets: BTreeMap<(String, i64), usize>,
    pub stats: IndirectStats,
}

impl<'a, 'b> Resolver<'a, 'b> {
    pub fn new(img: &'a Image<'b>, g: &'a Graph, cfg: &'a Config, image_name: &str) -> Self {
        let n = img.functions.len();
        let not_callable: Vec<bool> = (0..n)
            .map(|fi| {
                cfg.analysis
                    .not_callable
                    .iter()
                    .any(|p| matches(img, fi, p))
            })
            .collect();
        let taken = g
            .address_taken
            .iter()
            .copied()
            .filter(|&t| !not_callable[t])
            .collect();
        let annotations: Vec<&IndirectCfg> = cfg
            .indirect
            .iter()
            .filter(|a| Config::image_matches(&a.image, image_name))
            .collect();
        Resolver {
            img,
            g,
            policy: cfg.analysis.indirect,
            not_callable,
            taken,
            ann_targets: vec![None; annotations.len()],
            annotations,
            pseudo_taken: None,
            pseudo_slot: BTreeMap::new(),
            trait_sets: BTreeMap::new(),
            stats: IndirectStats::default(),
        }
    }

    /// Edges and issues of function `fi`.
    pub fn function(&mut self, fi: usize, nodes: &mut Nodes) {
        let f = &self.img.functions[fi];
        let info = &self.g.funcs[fi];
        let config_frame = nodes.sources[fi] == FrameSource::Config;
        if let Err(e) = &nodes.frames[fi] {
            let is = Issue::new(IssueKind::UnknownFrame, &f.demangled, f.addr, e.clone());
            nodes.issues[fi].push(is);
        }
        if let Some(a) = info.invalid_at
            && !config_frame
        {
            let detail = "invalid instruction bytes in the function".to_string();
            let is = Issue::new(IssueKind::Undecodable, &f.demangled, a, detail);
            nodes.issues[fi].push(is);
        }
        let fallback_depth = nodes.frames[fi].as_ref().ok().copied();
        for s in &info.sites {
            let Some(depth) = s.depth.or(fallback_depth) else {
                continue;
            };
            let depth = if config_frame {
                fallback_depth.unwrap_or(depth)
            } else {
                depth
            };
            self.site(fi, s, depth, nodes);
        }
    }

    fn site(&mut self, fi: usize, s: &Site, depth: u64, nodes: &mut Nodes) {
        let f = &self.img.functions[fi];
        let mk = |to: usize, how: Resolution| Edge {
            to,
            site: s.addr,
            kind: s.kind,
            depth,
            how,
        };
        let issue =
            |kind: IssueKind, detail: String| Issue::new(kind, &f.demangled, s.addr, detail);
        match &s.target {
            Target::Func(t) => {
                let how = if s.via_slot {
                    Resolution::Slot
                } else {
                    Resolution::Direct
                };
                nodes.edges[fi].push(mk(*t, how));
            }
            Target::Slot { slot, detail } => nodes.issues[fi].push(issue(
                IssueKind::UnresolvedSlot,
                format!("call through slot {slot:#x}: {detail}"),
            )),
            Target::NoFunction(t) => nodes.issues[fi].push(issue(
                IssueKind::NoFunction,
                format!("branch to {t:#x}, which is in no known function"),
            )),
            Target::Indirect(form) => {
                self.stats.sites += 1;
                let off = s.addr - f.addr;
                if let Some(ts) = self.annotated(fi, off, *form, nodes, &issue) {
                    for t in ts {
                        nodes.edges[fi].push(mk(t, Resolution::Annotation));
                    }
                    return;
                }
                match self.by_policy(*form, nodes) {
                    Some((p, how)) => nodes.edges[fi].push(mk(p, how)),
                    None => {
                        self.stats.unresolved += 1;
                        let what = match form {
                            IndirectForm::Register => "call through a register".to_string(),
                            IndirectForm::MemDisp(d) => {
                                format!("call through memory [reg{d:+#x}]")
                            }
                            IndirectForm::Complex => "call through a computed address".to_string(),
                        };
                        nodes.issues[fi].push(issue(
                            IssueKind::UnresolvedIndirect,
                            format!(
                                "{what} at {}+{off:#x}; annotate it with [[indirect]]",
                                f.demangled
                            ),
                        ));
                    }
                }
            }
        }
    }

    /// Targets of the first `[[indirect]]` annotation covering the site.
    fn annotated(
        &mut self,
        fi: usize,
        off: u64,
        form: IndirectForm,
        nodes: &mut Nodes,
        issue: &dyn Fn(IssueKind, String) -> Issue,
    ) -> Option<Vec<usize>> {
        let img = self.img;
        let ai = self
            .annotations
            .iter()
            .position(|a| a.offset.is_none_or(|o| o == off) && matches(img, fi, &a.caller))?;
        self.stats.by_annotation += 1;
        let a = self.annotations[ai];
        let ts = self.ann_targets[ai].get_or_insert_with(|| {
            (0..img.functions.len())
                .filter(|&t| a.targets.iter().any(|p| matches(img, t, p)))
                .filter(|&t| !a.exclude.iter().any(|p| matches(img, t, p)))
                .collect()
        });
        let mut ts = ts.clone();
        if !a.traits.is_empty() {
            match form {
                IndirectForm::MemDisp(d) => {
                    let set = self.trait_slot(&a.traits, d);
                    self.trait_sets
                        .insert((a.traits.join(" + "), d), set.len());
                    ts.extend(set);
                }
                _ if !a.targets.is_empty() => {}
                _ => nodes.issues[fi].push(issue(
                    IssueKind::UnresolvedIndirect,
                    format!(
                        "[[indirect]] for `{}` gives only traits {:?}, but the call is not through a vtable slot",
                        a.caller, a.traits
                    ),
                )),
            }
            ts.sort_unstable();
            ts.dedup();
        }
        if ts.is_empty() && (!a.targets.is_empty() || !a.traits.is_empty()) {
            nodes.issues[fi].push(issue(
                IssueKind::StaleAnnotation,
                format!(
                    "[[indirect]] for `{}` names targets {:?}{} that match no function",
                    a.caller,
                    a.targets,
                    if a.traits.is_empty() {
                        String::new()
                    } else {
                        format!(" / traits {:?}", a.traits)
                    }
                ),
            ));
        }
        Some(ts)
    }

    /// Functions at `disp` of the vtables a `dyn T` (T in `traits`) may use.
    fn trait_slot(&self, traits: &[String], disp: i64) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .g
            .vtables
            .values()
            .filter(|v| traits.iter().any(|t| v.may_be(t)))
            .filter_map(|v| v.at(disp))
            .filter(|&t| !self.not_callable[t])
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The dispatch node for an unannotated indirect site under the policy.
    fn by_policy(&mut self, form: IndirectForm, nodes: &mut Nodes) -> Option<(usize, Resolution)> {
        if let (IndirectPolicy::Vtable, IndirectForm::MemDisp(d)) = (self.policy, form)
            && let Some(set) = self.g.vtable_slots.get(&d)
        {
            let cands: Vec<usize> = set
                .iter()
                .copied()
                .filter(|&t| !self.not_callable[t])
                .collect();
            if !cands.is_empty() {
                self.stats.by_vtable += 1;
                let p = *self.pseudo_slot.entry(d).or_insert_with(|| {
                    let label = format!("<vtable slot {d:#x}: {} candidates>", cands.len());
                    nodes.add_pseudo(label, &cands, Resolution::Vtable)
                });
                return Some((p, Resolution::Vtable));
            }
        }
        if self.policy == IndirectPolicy::None || self.taken.is_empty() {
            return None;
        }
        self.stats.by_address_taken += 1;
        let taken = &self.taken;
        let p = *self.pseudo_taken.get_or_insert_with(|| {
            let label = format!("<any of {} address-taken functions>", taken.len());
            nodes.add_pseudo(label, taken, Resolution::AddressTaken)
        });
        Some((p, Resolution::AddressTaken))
    }

    /// Candidate-set sizes of the dispatch nodes: (label, size).
    pub fn candidate_sets(&self, nodes: &Nodes) -> Vec<(String, usize)> {
        let by_trait = self
            .trait_sets
            .iter()
            .map(|((t, d), n)| (format!("<dyn {t} slot {d:#x}>"), *n));
        self.pseudo_slot
            .values()
            .chain(self.pseudo_taken.iter())
            .map(|&p| (nodes.names[p].clone(), nodes.edges[p].len()))
            .chain(by_trait)
            .collect()
    }
}
