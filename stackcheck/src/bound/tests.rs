//! Unit tests of the graph algorithms behind the bounds.

use super::scc::{cycle_through, is_cyclic, tarjan};
use super::{Edge, IssueKind, Resolution};
use crate::graph::SiteKind;

fn graph(n: usize, es: &[(usize, usize)]) -> Vec<Vec<Edge>> {
    let mut g = vec![Vec::new(); n];
    for &(a, b) in es {
        g[a].push(Edge {
            to: b,
            site: 0,
            kind: SiteKind::Call,
            depth: 8,
            how: Resolution::Direct,
        });
    }
    g
}

#[test]
fn tarjan_finds_components_callees_first() {
    // 0 -> 1 <-> 2 -> 3, 3 -> 3
    let g = graph(4, &[(0, 1), (1, 2), (2, 1), (2, 3), (3, 3)]);
    let (of, sccs) = tarjan(4, &g, &|_| true);
    assert_eq!(of[1], of[2]);
    assert_ne!(of[0], of[1]);
    // Callees first: 3 before {1,2} before 0.
    assert!(of[3] < of[1] && of[1] < of[0]);
    assert!(is_cyclic(&sccs[of[3]], &g));
    assert!(!is_cyclic(&sccs[of[0]], &g));
    assert!(is_cyclic(&sccs[of[1]], &g));
}

#[test]
fn tarjan_respects_the_node_filter() {
    // 0 -> 1 -> 2 -> 0: without node 1 there is no cycle.
    let g = graph(3, &[(0, 1), (1, 2), (2, 0)]);
    let (of, sccs) = tarjan(3, &g, &|v| v != 1);
    assert_eq!(of[1], usize::MAX);
    assert!(sccs.iter().all(|c| !is_cyclic(c, &g)));
}

#[test]
fn shortest_cycle_through_a_node() {
    // 0 -> 1 -> 2 -> 0 and 0 -> 3 -> 0: the shortest is via 3.
    let g = graph(4, &[(0, 1), (1, 2), (2, 0), (0, 3), (3, 0)]);
    assert_eq!(cycle_through(0, &g, &|_| true), Some(vec![0, 3, 0]));
    assert_eq!(cycle_through(0, &g, &|v| v != 3), Some(vec![0, 1, 2, 0]));
    assert_eq!(cycle_through(1, &g, &|v| v != 2), None);
    let self_loop = graph(1, &[(0, 0)]);
    assert_eq!(cycle_through(0, &self_loop, &|_| true), Some(vec![0, 0]));
}

#[test]
fn issue_kinds_serialize_as_before() {
    let v = serde_json::to_value(IssueKind::UnresolvedIndirect).unwrap();
    assert_eq!(v, "unresolved-indirect");
    assert_eq!(IssueKind::Recursion.to_string(), "recursion");
    assert!(IssueKind::NestedUnbounded == "nested-unbounded");
    let back: IssueKind = serde_json::from_str("\"stale-annotation\"").unwrap();
    assert_eq!(back, IssueKind::StaleAnnotation);
}
