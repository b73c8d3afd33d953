//! Graphviz (DOT) drawings of worst paths: from a report (`check --format
//! dot`: each entry's worst path) and from the bounds of one image
//! (`explain --format dot`: the worst path from each matching function, with
//! the other callees of every step and what they would cost).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::analysis::Report;
use crate::bound::{Bounds, cost};

/// Alternatives drawn per step of a path (the most expensive ones).
const MAX_ALTERNATIVES: usize = 8;

/// A DOT double-quoted string.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            '\n' => q.push_str("\\n"),
            _ => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Each entry's worst path as a chain of boxes, one cluster per entry.
pub fn report_paths(r: &Report) -> String {
    let mut s = String::from(
        "digraph stackcheck {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    for (k, e) in r.entries.iter().enumerate() {
        let bound = e
            .bound
            .map_or_else(|| "unbounded".to_string(), |b| format!("{b} B"));
        let _ = writeln!(
            s,
            "  subgraph cluster_{k} {{\n    label={};",
            quote(&format!(
                "{} ({}) on {}: {bound}",
                e.name, e.symbol, e.stack
            ))
        );
        for (i, st) in e.worst_path.iter().enumerate() {
            let _ = writeln!(
                s,
                "    e{k}_{i} [label={}];",
                quote(&format!(
                    "{}\nframe {} B, {} B in use at entry",
                    st.function, st.frame, st.stack_at_entry
                ))
            );
            if i > 0 {
                let _ = writeln!(s, "    e{k}_{} -> e{k}_{i};", i - 1);
            }
        }
        let _ = writeln!(s, "  }}");
    }
    s.push_str("}\n");
    s
}

/// From each of `starts`: the worst path (solid, bold) and, at every step,
/// the other callees with the stack they would need (dashed).
pub fn worst_paths(b: &Bounds, starts: &[usize]) -> String {
    let mut s = String::from(
        "digraph explain {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n",
    );
    let mut declared = BTreeSet::new();
    let mut node = |s: &mut String, i: usize, on_path: bool| {
        if declared.insert(i) {
            let bound =
                b.bound[i].map_or_else(|| "unbounded".to_string(), |v| format!("bound {v} B"));
            let frame = b.frames[i]
                .as_ref()
                .map_or_else(|_| "frame unknown".to_string(), |v| format!("frame {v} B"));
            let _ = writeln!(
                s,
                "  n{i} [label={}{}];",
                quote(&format!("{}\n{frame}, {bound}", b.names[i])),
                if on_path { ", style=bold" } else { "" }
            );
        }
    };
    let mut edges = BTreeSet::new();
    for &start in starts {
        let mut seen = BTreeSet::new();
        let mut f = start;
        loop {
            node(&mut s, f, true);
            if !seen.insert(f) {
                break;
            }
            let mut alts: Vec<(u64, usize, bool)> = b.edges[f]
                .iter()
                .enumerate()
                .map(|(k, e)| {
                    let c = b.bound[e.to].map_or(u64::MAX, |v| cost(e, v, b.entry_depth[e.to]));
                    (c, e.to, b.best[f] == Some(k))
                })
                .collect();
            alts.sort_by_key(|&(c, to, best)| (!best, std::cmp::Reverse(c), to));
            alts.dedup_by_key(|a| a.1);
            for &(c, to, best) in alts.iter().take(MAX_ALTERNATIVES + 1) {
                node(&mut s, to, best);
                if edges.insert((f, to)) {
                    let cost = if c == u64::MAX {
                        "unbounded".to_string()
                    } else {
                        format!("{c} B")
                    };
                    let style = if best { "bold" } else { "dashed" };
                    let _ = writeln!(
                        s,
                        "  n{f} -> n{to} [label={}, style={style}];",
                        quote(&cost)
                    );
                }
            }
            if alts.len() > MAX_ALTERNATIVES + 1 {
                let _ = writeln!(
                    s,
                    "  n{f}_more [label={}, shape=plaintext];\n  n{f} -> n{f}_more [style=dotted];",
                    quote(&format!(
                        "{} more callees",
                        alts.len() - MAX_ALTERNATIVES - 1
                    ))
                );
            }
            match b.best[f].and_then(|k| b.edges[f].get(k)) {
                Some(e) => f = e.to,
                None => break,
            }
        }
    }
    s.push_str("}\n");
    s
}
