//! Strongly connected components and concrete cycles of the call graph.

use std::collections::VecDeque;

use super::Edge;

/// Iterative Tarjan over the nodes `keep` allows. Returns (scc index per
/// node, usize::MAX for nodes left out; SCCs in callee-first order).
pub fn tarjan(
    n: usize,
    edges: &[Vec<Edge>],
    keep: &dyn Fn(usize) -> bool,
) -> (Vec<usize>, Vec<Vec<usize>>) {
    const NONE: usize = usize::MAX;
    let mut index = vec![NONE; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut scc_of = vec![NONE; n];
    let mut sccs: Vec<Vec<usize>> = Vec::new();
    let mut next = 0usize;
    let mut call: Vec<(usize, usize)> = Vec::new();
    let mut open =
        |v: usize, index: &mut Vec<usize>, low: &mut Vec<usize>, stack: &mut Vec<usize>| {
            index[v] = next;
            low[v] = next;
            next += 1;
            stack.push(v);
        };
    for root in (0..n).filter(|&r| keep(r)) {
        if index[root] != NONE {
            continue;
        }
        open(root, &mut index, &mut low, &mut stack);
        on_stack[root] = true;
        call.push((root, 0));
        while let Some(&mut (v, ref mut ei)) = call.last_mut() {
            if *ei < edges[v].len() {
                let w = edges[v][*ei].to;
                *ei += 1;
                if !keep(w) {
                    continue;
                }
                if index[w] == NONE {
                    open(w, &mut index, &mut low, &mut stack);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
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
    (scc_of, sccs)
}

/// Whether the component is a cycle (more than one node, or a self edge).
pub fn is_cyclic(members: &[usize], edges: &[Vec<Edge>]) -> bool {
    members.len() > 1 || edges[members[0]].iter().any(|e| e.to == members[0])
}

/// A shortest cycle through `start` using only nodes `inside` allows:
/// `[start, ..., start]`, or None.
pub fn cycle_through(
    start: usize,
    edges: &[Vec<Edge>],
    inside: &dyn Fn(usize) -> bool,
) -> Option<Vec<usize>> {
    let mut parent: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for e in &edges[v] {
            let w = e.to;
            if w == start {
                let mut chain = Vec::new();
                let mut x = v;
                while x != start {
                    chain.push(x);
                    x = parent[&x];
                }
                chain.push(start);
                chain.reverse();
                chain.push(start);
                return Some(chain);
            }
            if inside(w) && !parent.contains_key(&w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    None
}
