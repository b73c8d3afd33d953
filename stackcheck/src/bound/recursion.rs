//! Bounds of recursive strongly connected components.
//!
//! A `[[recursion]]` annotation with `max_depth = N` says that at most `N`
//! frames of the functions it names are active at once. It bounds only the
//! cycles that pass through one of those functions: when a cycle of the
//! component avoids every annotated function, the component is unbounded
//! and the cycle is reported.
//!
//! Otherwise the component without its edges into annotated functions is
//! acyclic, and the worst depth is a longest path with at most `K` entries
//! into annotated functions (`K` = the sum of `max_depth` of the
//! annotations that name a member):
//! `L_k(v) = max(frame(v), exits, L_k(w) over edges to unannotated w,
//!               L_{k-1}(a) over edges to annotated a)`,
//! and a member's bound is `L_{K-1}` when it is itself annotated (its own
//! frame is one of the `K`), else `L_K`.

use std::collections::{BTreeSet, HashMap};

use super::scc::{cycle_through, is_cyclic, tarjan};
use super::{Issue, IssueKind, cost, matches, resolve::Nodes};
use crate::config::RecursionCfg;
use crate::elf::Image;

/// Which cycles one `[[recursion]]` annotation bounds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RecursionUse {
    /// Index of the annotation among the config's `[[recursion]]` tables.
    pub annotation: usize,
    pub max_depth: u64,
    /// Size of the strongly connected component.
    pub component_size: usize,
    /// Members of the component the annotation names.
    pub functions: Vec<String>,
    /// A shortest cycle through each named member (first and last equal).
    pub cycles: Vec<Vec<String>>,
    /// False when another cycle of the component avoids every annotation
    /// (the component is then unbounded).
    pub covers_component: bool,
}

/// Per-node results the bound computation fills in.
pub(super) struct Out {
    pub bound: Vec<Option<u64>>,
    pub best: Vec<Option<usize>>,
    pub recursion: Vec<Option<(u64, usize)>>,
    pub uses: Vec<RecursionUse>,
}

/// Largest number of cycles listed per annotation and component.
const MAX_LISTED: usize = 6;

pub(super) fn bound_scc(
    img: &Image<'_>,
    recs: &[(usize, &RecursionCfg)],
    si: usize,
    members: &[usize],
    nodes: &mut Nodes,
    scc_of: &[usize],
    out: &mut Out,
) {
    let nf = img.functions.len();
    let mut named: HashMap<usize, Vec<usize>> = HashMap::new();
    for &m in members.iter().filter(|&&m| m < nf) {
        let hits: Vec<usize> = (0..recs.len())
            .filter(|&r| recs[r].1.functions.iter().any(|p| matches(img, m, p)))
            .collect();
        if !hits.is_empty() {
            named.insert(m, hits);
        }
    }
    let in_scc = |v: usize| scc_of[v] == si;
    if named.is_empty() {
        let start = lowest_address(members, nodes, nf);
        let cycle = cycle_through(start, &nodes.edges, &in_scc).unwrap_or_default();
        let detail = format!(
            "recursive cycle of {} function(s) without a [[recursion]] max_depth: {}",
            members.len(),
            path_text(&cycle, nodes)
        );
        let is = Issue::new(
            IssueKind::Recursion,
            &nodes.names[start],
            nodes.addrs[start],
            detail,
        );
        nodes.issues[start].push(is);
        return;
    }
    let avoiding = unannotated_cycles(members, &named, nodes, scc_of, si);
    for c in &avoiding {
        let detail = format!(
            "cycle avoids every [[recursion]] annotation of its component: {}",
            path_text(c, nodes)
        );
        let is = Issue::new(
            IssueKind::Recursion,
            &nodes.names[c[0]],
            nodes.addrs[c[0]],
            detail,
        );
        nodes.issues[c[0]].push(is);
    }
    let used: BTreeSet<usize> = named.values().flatten().copied().collect();
    record_uses(
        recs,
        &used,
        &named,
        members,
        nodes,
        &in_scc,
        avoiding.is_empty(),
        out,
    );
    if !avoiding.is_empty() {
        return;
    }
    longest_paths(img, recs, &used, members, &named, nodes, si, scc_of, out);
}

fn lowest_address(members: &[usize], nodes: &Nodes, nf: usize) -> usize {
    members
        .iter()
        .copied()
        .filter(|&m| m < nf)
        .min_by_key(|&m| nodes.addrs[m])
        .unwrap_or(members[0])
}

fn path_text(path: &[usize], nodes: &Nodes) -> String {
    path.iter()
        .map(|&v| nodes.names[v].as_str())
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// One concrete cycle per strongly connected part of the component that
/// contains no annotated function.
fn unannotated_cycles(
    members: &[usize],
    named: &HashMap<usize, Vec<usize>>,
    nodes: &Nodes,
    scc_of: &[usize],
    si: usize,
) -> Vec<Vec<usize>> {
    let free = |v: usize| scc_of[v] == si && !named.contains_key(&v);
    let (sub_of, subs) = tarjan(nodes.edges.len(), &nodes.edges, &free);
    let _ = members;
    subs.iter()
        .filter(|c| is_cyclic(c, &nodes.edges))
        .filter_map(|c| {
            let id = sub_of[c[0]];
            cycle_through(c[0], &nodes.edges, &|v| sub_of[v] == id)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn record_uses(
    recs: &[(usize, &RecursionCfg)],
    used: &BTreeSet<usize>,
    named: &HashMap<usize, Vec<usize>>,
    members: &[usize],
    nodes: &Nodes,
    in_scc: &dyn Fn(usize) -> bool,
    covers: bool,
    out: &mut Out,
) {
    for &r in used {
        let mut fns: Vec<usize> = named
            .iter()
            .filter(|(_, rs)| rs.contains(&r))
            .map(|(&m, _)| m)
            .collect();
        fns.sort_by_key(|&m| nodes.addrs[m]);
        let cycles = fns
            .iter()
            .take(MAX_LISTED)
            .filter_map(|&m| cycle_through(m, &nodes.edges, in_scc))
            .map(|c| c.iter().map(|&v| nodes.names[v].clone()).collect())
            .collect();
        out.uses.push(RecursionUse {
            annotation: recs[r].0,
            max_depth: recs[r].1.max_depth,
            component_size: members.len(),
            functions: fns.iter().map(|&m| nodes.names[m].clone()).collect(),
            cycles,
            covers_component: covers,
        });
    }
}

/// Counters of the dynamic program: one per annotation naming a member
/// (remaining active frames), in mixed radix. When the product of the
/// depths is too large, one counter with the sum (sound, looser).
struct Counters {
    radix: Vec<u64>,
    /// Per named member: the counters its activation consumes.
    uses: HashMap<usize, Vec<usize>>,
    /// Per counter: the `reentry` globs of its annotation (per-annotation
    /// counters only).
    reentry: Vec<Option<Vec<String>>>,
}

const MAX_STATES_TIMES_MEMBERS: u64 = 1 << 22;

impl Counters {
    fn new(
        recs: &[(usize, &RecursionCfg)],
        named: &HashMap<usize, Vec<usize>>,
        used: &BTreeSet<usize>,
        members: usize,
    ) -> Self {
        let order: Vec<usize> = used.iter().copied().collect();
        let radix: Vec<u64> = order.iter().map(|&r| recs[r].1.max_depth + 1).collect();
        let states = radix
            .iter()
            .try_fold(1u64, |a, &r| a.checked_mul(r))
            .unwrap_or(u64::MAX);
        if states.saturating_mul(members as u64) <= MAX_STATES_TIMES_MEMBERS {
            let uses = named
                .iter()
                .map(|(&m, rs)| {
                    let c = rs
                        .iter()
                        .filter_map(|r| order.iter().position(|x| x == r))
                        .collect();
                    (m, c)
                })
                .collect();
            let reentry = order.iter().map(|&r| recs[r].1.reentry.clone()).collect();
            return Counters {
                radix,
                uses,
                reentry,
            };
        }
        let sum: u64 = order.iter().map(|&r| recs[r].1.max_depth).sum();
        Counters {
            radix: vec![sum + 1],
            uses: named.keys().map(|&m| (m, vec![0])).collect(),
            reentry: vec![None],
        }
    }

    fn states(&self) -> usize {
        self.radix.iter().product::<u64>() as usize
    }

    fn weight(&self, c: usize) -> usize {
        self.radix[..c].iter().product::<u64>() as usize
    }

    /// The `reentry` globs limiting member `m` in state `s` (the state
    /// after entering it): those of the first annotation naming `m` that has
    /// them, once its counter shows that another activation is live.
    fn reentry_limit(&self, s: usize, m: usize) -> Option<&[String]> {
        let c = self.reentry_counter(m)?;
        let left = (s / self.weight(c)) as u64 % self.radix[c];
        let first = left + 1 == self.radix[c] - 1;
        if first {
            None
        } else {
            self.reentry[c].as_deref()
        }
    }

    fn reentry_counter(&self, m: usize) -> Option<usize> {
        self.uses
            .get(&m)?
            .iter()
            .copied()
            .find(|&c| self.reentry[c].is_some())
    }

    /// The `reentry` globs of the first annotation naming `m` that has them.
    fn reentry_of(&self, m: usize) -> Option<&[String]> {
        self.reentry[self.reentry_counter(m)?].as_deref()
    }

    /// The state after activating `m` from state `s`, if every counter it
    /// consumes is left.
    fn enter(&self, s: usize, m: usize) -> Option<usize> {
        let mut t = s;
        for &c in &self.uses[&m] {
            let w = self.weight(c);
            let digit = (t / w) as u64 % self.radix[c];
            if digit == 0 {
                return None;
            }
            t -= w;
        }
        Some(t)
    }
}

/// The dynamic program of the module comment, with one counter per
/// annotation: `L[s](v)` is the deepest path from `v`'s entry when the
/// annotations have `s` activations left. Entering an annotated member
/// moves to a state with a smaller index, so states are filled in order.
#[allow(clippy::too_many_arguments)]
fn longest_paths(
    img: &Image<'_>,
    recs: &[(usize, &RecursionCfg)],
    used: &BTreeSet<usize>,
    members: &[usize],
    named: &HashMap<usize, Vec<usize>>,
    nodes: &Nodes,
    si: usize,
    scc_of: &[usize],
    out: &mut Out,
) {
    let counters = Counters::new(recs, named, used, members.len());
    let order = acyclic_order(members, named, nodes, si, scc_of);
    let local: HashMap<usize, usize> = order.iter().enumerate().map(|(i, &v)| (v, i)).collect();
    let mut ok = members
        .iter()
        .all(|&m| nodes.issues[m].is_empty() && nodes.frames[m].is_ok());
    // Exits and own frames do not depend on the state.
    let mut base = vec![0u64; order.len()];
    let mut exit_best: Option<(u64, usize, Option<usize>)> = None;
    for (i, &v) in order.iter().enumerate() {
        let mut best = (nodes.frames[v].as_ref().copied().unwrap_or(0), None);
        for (ei, e) in nodes.edges[v].iter().enumerate() {
            if scc_of[e.to] == si {
                continue;
            }
            match out.bound[e.to] {
                Some(b) => {
                    let c = cost(e, b, nodes.entry_depth[e.to]);
                    if c > best.0 {
                        best = (c, Some(ei));
                    }
                }
                None => ok = false,
            }
        }
        base[i] = best.0;
        if exit_best.is_none_or(|x| best.0 > x.0) {
            exit_best = Some((best.0, v, best.1));
        }
    }
    let nstates = counters.states();
    // Internal edges per member in local indices: (callee, cost above the
    // callee's bound, callee annotated).
    let internal: Vec<Vec<(usize, u64, bool)>> = order
        .iter()
        .map(|&v| {
            nodes.edges[v]
                .iter()
                .filter(|e| scc_of[e.to] == si)
                .map(|e| {
                    (
                        local[&e.to],
                        cost(e, 0, nodes.entry_depth[e.to]),
                        named.contains_key(&e.to),
                    )
                })
                .collect()
        })
        .collect();
    let is_named: Vec<bool> = order.iter().map(|v| named.contains_key(v)).collect();
    // enter[i][s]: the state after entering annotated member i from s.
    let enter: Vec<Vec<Option<usize>>> = order
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if is_named[i] {
                (0..nstates).map(|s| counters.enter(s, v)).collect()
            } else {
                Vec::new()
            }
        })
        .collect();
    // Per annotated member with a `reentry` limit: its guarded base and
    // which internal edges the limit allows (computed once).
    let guarded: Vec<Option<(u64, Vec<bool>)>> = order
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let globs = counters.reentry_of(v)?;
            let named_ok =
                |to: usize| to < img.functions.len() && globs.iter().any(|p| matches(img, to, p));
            let base = guarded_base(img, v, globs, nodes, si, scc_of, &out.bound);
            Some((
                base,
                internal[i].iter().map(|e| named_ok(order[e.0])).collect(),
            ))
        })
        .collect();
    let mut table: Vec<Vec<u64>> = Vec::with_capacity(nstates);
    // `s` is a state number (it indexes `enter` and selects limits), not
    // just a position in `table`.
    #[allow(clippy::needless_range_loop)]
    for s in 0..nstates {
        let mut cur = base.clone();
        for (i, &v) in order.iter().enumerate() {
            let limit = match &guarded[i] {
                Some(g) if counters.reentry_limit(s, v).is_some() => Some(g),
                _ => None,
            };
            if let Some((b, _)) = limit {
                cur[i] = *b;
            }
            for (k, &(w, above, w_named)) in internal[i].iter().enumerate() {
                if limit.is_some_and(|(_, ok)| !ok[k]) {
                    continue;
                }
                let below = if w_named {
                    match enter[w][s] {
                        Some(t) => table[t][w],
                        None => continue,
                    }
                } else {
                    cur[w]
                };
                cur[i] = cur[i].max(above.saturating_add(below));
            }
        }
        table.push(cur);
    }
    let full = nstates - 1;
    let k_total: u64 = used.iter().map(|&r| recs[r].1.max_depth).sum();
    for (i, &v) in order.iter().enumerate() {
        // An annotated member's own frame is one of its annotations' frames.
        let value = if named.contains_key(&v) {
            counters.enter(full, v).map(|t| table[t][i])
        } else {
            Some(table[full][i])
        };
        out.bound[v] = if ok { value } else { None };
        out.recursion[v] = Some((k_total, members.len()));
        out.best[v] = None;
    }
    if let Some((_, v, e)) = exit_best {
        out.best[v] = e;
    }
}

/// Frame and exits of a re-entered member limited to `globs`.
fn guarded_base(
    img: &Image<'_>,
    v: usize,
    globs: &[String],
    nodes: &Nodes,
    si: usize,
    scc_of: &[usize],
    bound: &[Option<u64>],
) -> u64 {
    let mut b = nodes.frames[v].as_ref().copied().unwrap_or(0);
    for e in &nodes.edges[v] {
        let named = e.to < img.functions.len() && globs.iter().any(|p| matches(img, e.to, p));
        if scc_of[e.to] != si && named {
            // Unbounded exits already make the whole component unbounded.
            let c = cost(e, bound[e.to].unwrap_or(0), nodes.entry_depth[e.to]);
            b = b.max(c);
        }
    }
    b
}

/// Members ordered so that every edge to an unannotated member goes to an
/// earlier position (callees first); the edges into annotated members are
/// the only back edges.
fn acyclic_order(
    members: &[usize],
    named: &HashMap<usize, Vec<usize>>,
    nodes: &Nodes,
    si: usize,
    scc_of: &[usize],
) -> Vec<usize> {
    let mut done: HashMap<usize, bool> = HashMap::new();
    let mut order = Vec::with_capacity(members.len());
    for &root in members {
        if done.contains_key(&root) {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        done.insert(root, false);
        while let Some(&mut (v, ref mut ei)) = stack.last_mut() {
            let es = &nodes.edges[v];
            if *ei < es.len() {
                let w = es[*ei].to;
                *ei += 1;
                if scc_of[w] == si && !named.contains_key(&w) && !done.contains_key(&w) {
                    done.insert(w, false);
                    stack.push((w, 0));
                }
            } else {
                stack.pop();
                done.insert(v, true);
                order.push(v);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::Counters;
    use std::collections::HashMap;

    /// Two annotations: member 10 named by the first (depth 2, re-entry
    /// limited), member 20 by the second (depth 1).
    fn counters() -> Counters {
        Counters {
            radix: vec![3, 2],
            uses: HashMap::from([(10, vec![0]), (20, vec![1])]),
            reentry: vec![Some(vec!["guard".into()]), None],
        }
    }

    #[test]
    fn counters_consume_per_annotation() {
        let c = counters();
        let full = c.states() - 1;
        assert_eq!(c.states(), 6);
        // Entering 10 twice is possible, a third time not.
        let once = c.enter(full, 10).unwrap();
        let twice = c.enter(once, 10).unwrap();
        assert_eq!(c.enter(twice, 10), None);
        // 20's counter is independent.
        let t = c.enter(twice, 20).unwrap();
        assert_eq!(c.enter(t, 20), None);
        assert!(t < twice && twice < once && once < full);
    }

    #[test]
    fn reentry_limit_applies_from_the_second_activation() {
        let c = counters();
        let full = c.states() - 1;
        let once = c.enter(full, 10).unwrap();
        let twice = c.enter(once, 10).unwrap();
        assert_eq!(c.reentry_limit(once, 10), None);
        assert_eq!(c.reentry_limit(twice, 10), Some(&["guard".to_string()][..]));
        assert_eq!(c.reentry_limit(c.enter(full, 20).unwrap(), 20), None);
    }
}
