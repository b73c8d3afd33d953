//! The text of `stackcheck explain`: per matching function its frame, bound,
//! call edges with their cost, and issues.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use stackcheck::bound::{Bounds, cost};

pub fn text(b: &Bounds, matches: &[usize]) -> String {
    let mut scc_size = BTreeMap::new();
    for &s in &b.scc_of {
        *scc_size.entry(s).or_insert(0usize) += 1;
    }
    let mut s = String::new();
    for &i in matches {
        let fr = b.frames[i]
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_else(|e| format!("unknown ({e})"));
        let _ = writeln!(
            s,
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
            let c = b.bound[e.to].map(|v| cost(e, v, b.entry_depth[e.to]).to_string());
            let _ = writeln!(
                s,
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
            let _ = writeln!(
                s,
                "    issue {}: {} at {}: {}",
                is.kind, is.function, is.address, is.detail
            );
        }
    }
    s
}
