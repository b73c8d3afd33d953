//! Report renderers: JSON, Markdown, SARIF, folded stacks, baseline; and the
//! clean-ups before rendering (paths relative to the repository, only the
//! violations). The SVG chart is in `chart`, the DOT graphs in `dot`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Deserialize;
use serde_json::json;

use crate::analysis::{EntryReport, Report, Status};
use crate::bail_input;

pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(r).unwrap_or_default() + "\n"
}

/// A budget for people: `none` for an entry checked without one.
pub fn budget_str(b: u64) -> String {
    if b == u64::MAX {
        "none".into()
    } else {
        b.to_string()
    }
}

/// Keeps only the violations: entries over budget or unbounded (large moves
/// and frames are warnings and go too).
pub fn only_violations(r: &mut Report) {
    r.entries.retain(|e| e.status != Status::Ok);
    r.large_moves.clear();
    r.large_frames.clear();
}

/// A path as it may appear in a committed report: relative to `root` (the
/// repository) when inside it; Rust's library sources and registry crates
/// as `<rust>/...` and `<cargo-registry>/<crate>/...`; other paths as given.
pub fn display_path(p: &str, root: &Path) -> String {
    if let Ok(rel) = Path::new(p).strip_prefix(root) {
        return rel.display().to_string();
    }
    if let Some(i) = p.find("/.cargo/registry/src/") {
        let rest = &p[i + "/.cargo/registry/src/".len()..];
        // Skip the index directory (index.crates.io-<hash>).
        let rest = rest.split_once('/').map_or(rest, |(_, r)| r);
        return format!("<cargo-registry>/{rest}");
    }
    if let Some(i) = p.find("/lib/rustlib/src/rust/") {
        return format!("<rust>/{}", &p[i + "/lib/rustlib/src/rust/".len()..]);
    }
    if let Some(rest) = p.strip_prefix("/rustc/")
        && let Some((_, rest)) = rest.split_once('/')
    {
        return format!("<rust>/{rest}");
    }
    p.to_string()
}

/// Rewrites every path of the report with [`display_path`].
pub fn relativize(r: &mut Report, root: &Path) {
    let fix = |f: &mut Option<String>| {
        if let Some(p) = f {
            *p = display_path(p, root);
        }
    };
    for i in &mut r.images {
        i.path = display_path(&i.path, root);
    }
    for e in &mut r.entries {
        for s in &mut e.worst_path {
            fix(&mut s.file);
        }
    }
    for m in &mut r.large_moves {
        fix(&mut m.file);
    }
    for f in &mut r.large_frames {
        fix(&mut f.file);
    }
}

fn status_str(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::OverBudget => "OVER BUDGET",
        Status::Unbounded => "UNBOUNDED",
    }
}

fn fmt_opt(v: Option<u64>) -> String {
    v.map(|x| x.to_string())
        .unwrap_or_else(|| "unbounded".into())
}

fn short_path(e: &EntryReport) -> String {
    if e.worst_path.is_empty() {
        return e
            .issues
            .first()
            .map(|i| format!("{}: {} at {}", i.kind, i.function, i.address))
            .unwrap_or_default();
    }
    let names: Vec<String> = e
        .worst_path
        .iter()
        .map(|s| match s.recursion_depth {
            Some(n) => format!("{} (recursion x{n})", s.function),
            None => s.function.clone(),
        })
        .collect();
    names.join(" → ")
}

/// Markdown summary for a PR comment.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## stackcheck: {}\n",
        if r.ok {
            "all entries within budget"
        } else {
            "FAILED"
        }
    );
    let _ = writeln!(
        s,
        "| entry point | image | stack | bound (B) | budget (B) | headroom (B) | status | worst path |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---:|---:|---|---|");
    for e in &r.entries {
        let bound = match (e.own_bound, e.nested_bound) {
            (Some(o), Some(n)) if e.bound.is_some() => {
                format!("{} ({o} + nested {n})", fmt_opt(e.bound))
            }
            _ => fmt_opt(e.bound),
        };
        let _ = writeln!(
            s,
            "| `{}` (`{}`) | {} | {} | {} | {} | {} | {} | {} |",
            e.name,
            e.symbol,
            e.image,
            e.stack,
            bound,
            budget_str(e.budget),
            e.headroom
                .filter(|_| e.budget != u64::MAX)
                .map(|h| h.to_string())
                .unwrap_or_else(|| "—".into()),
            status_str(e.status),
            short_path(e).replace('|', "\\|")
        );
    }
    let unb: Vec<&EntryReport> = r
        .entries
        .iter()
        .filter(|e| e.status == Status::Unbounded)
        .collect();
    if !unb.is_empty() {
        let _ = writeln!(s, "\n### Why unbounded\n");
        for e in unb {
            for i in e.issues.iter().take(20) {
                let _ = writeln!(
                    s,
                    "- `{}`: **{}** in `{}` at {}: {}",
                    e.name, i.kind, i.function, i.address, i.detail
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "\n### Large moves (memcpy/memmove/memset ≥ {} B)\n",
        r.thresholds.large_move
    );
    if r.large_moves.is_empty() {
        let _ = writeln!(s, "None.");
    } else {
        let _ = writeln!(
            s,
            "| image | function | callee | size (B) | onto the stack | source |\n|---|---|---|---:|---|---|"
        );
        for m in &r.large_moves {
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | {} | {} | {} |",
                m.image,
                m.function,
                m.callee,
                m.size,
                if m.onto_stack { "yes" } else { "" },
                src(&m.file, m.line)
            );
        }
    }
    let _ = writeln!(s, "\n### Large frames (≥ {} B)\n", r.thresholds.large_frame);
    if r.large_frames.is_empty() {
        let _ = writeln!(s, "None.");
    } else {
        let _ = writeln!(
            s,
            "| image | function | frame (B) | sized by | source |\n|---|---|---:|---|---|"
        );
        for m in &r.large_frames {
            let _ = writeln!(
                s,
                "| {} | `{}` | {} | {} | {} |",
                m.image,
                m.function,
                m.frame,
                m.source,
                src(&m.file, m.line)
            );
        }
    }
    let _ = writeln!(s, "\n### Images\n");
    for i in &r.images {
        let _ = writeln!(
            s,
            "- **{}** `{}` build-id {}: {} functions ({} CFI, {} machine code, {} config, {} unknown); indirect call sites {} (annotation {}, vtable {}, address-taken {}, unresolved {})",
            i.name,
            i.path,
            i.build_id.as_deref().unwrap_or("none"),
            i.functions,
            i.sized_by_cfi,
            i.sized_by_code,
            i.sized_by_config,
            i.unknown_size.len(),
            i.indirect_sites.total,
            i.indirect_sites.by_annotation,
            i.indirect_sites.by_vtable,
            i.indirect_sites.by_address_taken,
            i.indirect_sites.unresolved
        );
    }
    s
}

fn src(file: &Option<String>, line: Option<u32>) -> String {
    match (file, line) {
        (Some(f), Some(l)) => format!("{f}:{l}"),
        (Some(f), None) => f.clone(),
        _ => "?".into(),
    }
}

/// Collapsed stacks of the worst paths: the width of each frame is the
/// stack depth reached below it.
pub fn collapsed(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for e in &r.entries {
        if e.worst_path.is_empty() {
            continue;
        }
        let root = format!("{} [{}]", e.name, e.stack).replace(';', ":");
        push_path(&mut out, &root, e);
        if let Some(n) = &e.nested_worst
            && let Some(ne) = r
                .entries
                .iter()
                .find(|x| &x.name == n && x.image == e.image)
            && e.nested_bound.is_some()
        {
            let nroot = format!("{root};[nested] {}", ne.name.replace(';', ":"));
            push_path(&mut out, &nroot, ne);
        }
    }
    out
}

fn push_path(out: &mut Vec<String>, root: &str, e: &EntryReport) {
    let clean = |s: &str| s.replace(';', ":").replace(' ', "_");
    let mut prefix = root.to_string();
    let steps = &e.worst_path;
    let base = steps.first().map(|s| s.stack_at_entry).unwrap_or(0);
    let mut used = 0u64;
    for (i, s) in steps.iter().enumerate() {
        prefix.push(';');
        prefix.push_str(&clean(&s.function));
        let w = if i + 1 < steps.len() {
            steps[i + 1].stack_at_entry.saturating_sub(s.stack_at_entry)
        } else {
            e.own_bound.unwrap_or(0).saturating_sub(used)
        };
        if i + 1 < steps.len() {
            used = steps[i + 1].stack_at_entry.saturating_sub(base);
        }
        if w > 0 {
            out.push(format!("{prefix} {w}"));
        }
    }
}

/// SARIF 2.1.0 log: violations, unbounded entries, large moves and frames.
pub fn sarif(r: &Report) -> String {
    let mut results = Vec::new();
    // Code scanning resolves locations against the repository and drops a
    // file whose locations point outside it: paths in the repository (made
    // relative by `relativize`) become locations; others (`<rust>/...`,
    // `<cargo-registry>/...`, absolute) are named in the message instead.
    let in_repo = |f: &str| !f.starts_with('<') && !f.starts_with('/');
    let location = |file: &Option<String>, line: Option<u32>| -> serde_json::Value {
        match file {
            Some(f) if in_repo(f) => json!([{ "physicalLocation": {
                "artifactLocation": { "uri": f, "uriBaseId": "%SRCROOT%" },
                "region": { "startLine": line.unwrap_or(1).max(1) }
            }}]),
            _ => json!([]),
        }
    };
    let outside = |file: &Option<String>, line: Option<u32>| -> String {
        match file {
            Some(f) if !in_repo(f) => {
                format!(" (at {f}:{}, outside the repository)", line.unwrap_or(0))
            }
            _ => String::new(),
        }
    };
    for e in &r.entries {
        let first = e.worst_path.first();
        let loc = first
            .map(|s| location(&s.file, s.line))
            .unwrap_or(json!([]));
        match e.status {
            Status::Ok => {}
            Status::OverBudget => results.push(json!({
                "ruleId": "stack-budget-exceeded",
                "level": "error",
                "message": { "text": format!("entry `{}` ({}) needs {} bytes on stack `{}`, budget {}: {}",
                    e.name, e.symbol, fmt_opt(e.bound), e.stack, budget_str(e.budget), short_path(e)) },
                "locations": loc,
            })),
            Status::Unbounded => {
                results.push(json!({
                    "ruleId": "stack-unbounded",
                    "level": "error",
                    "message": { "text": format!("entry `{}` ({}) has no stack bound: {} issue(s), first: {}",
                        e.name, e.symbol, e.issues.len(), e.issues.first().map(|i| format!("{} in {} at {}: {}", i.kind, i.function, i.address, i.detail)).unwrap_or_default()) },
                    "locations": loc,
                }));
            }
        }
    }
    for m in &r.large_moves {
        results.push(json!({
            "ruleId": "large-move",
            "level": "warning",
            "message": { "text": format!("{} of {} bytes{} in `{}`{}", m.callee, m.size, if m.onto_stack { " onto the stack" } else { "" }, m.function, outside(&m.file, m.line)) },
            "locations": location(&m.file, m.line),
        }));
    }
    for f in &r.large_frames {
        results.push(json!({
            "ruleId": "large-frame",
            "level": "warning",
            "message": { "text": format!("`{}` has a {}-byte stack frame{}", f.function, f.frame, outside(&f.file, f.line)) },
            "locations": location(&f.file, f.line),
        }));
    }
    let rule = |id: &str, text: &str| json!({ "id": id, "shortDescription": { "text": text } });
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "stackcheck",
                "version": r.tool_version,
                "rules": [
                    rule("stack-budget-exceeded", "Worst-case stack depth exceeds the budget"),
                    rule("stack-unbounded", "Stack depth cannot be bounded (unknown frame, unresolved call or recursion)"),
                    rule("large-move", "memcpy/memmove/memset of a large constant size"),
                    rule("large-frame", "Function with a large stack frame"),
                ]
            }},
            "results": results,
        }]
    });
    serde_json::to_string_pretty(&log).unwrap_or_default() + "\n"
}

#[derive(Deserialize)]
struct BaseReport {
    entries: Vec<BaseEntry>,
}

#[derive(Deserialize)]
struct BaseEntry {
    name: String,
    image: String,
    bound: Option<u64>,
}

/// Compare with an older JSON report. Returns (text, exceeded growth limit).
pub fn baseline(r: &Report, old_json: &str, max_growth: Option<u64>) -> Result<(String, bool)> {
    let old: BaseReport = match serde_json::from_str(old_json) {
        Ok(o) => o,
        Err(e) => bail_input!("invalid baseline report: {e}"),
    };
    let mut s = String::from("stack growth against baseline:\n");
    let mut fail = false;
    for e in &r.entries {
        let prev = old
            .entries
            .iter()
            .find(|o| o.name == e.name && o.image == e.image);
        let line = match (prev.map(|p| p.bound), e.bound) {
            (None, _) => format!("  {:<28} new entry, bound {}", e.name, fmt_opt(e.bound)),
            (Some(Some(a)), Some(b)) => {
                let d = b as i64 - a as i64;
                let over = max_growth.is_some_and(|m| d > m as i64);
                fail |= over;
                format!(
                    "  {:<28} {a} -> {b} ({d:+} B, {:+.1}%){}",
                    e.name,
                    if a > 0 {
                        d as f64 * 100.0 / a as f64
                    } else {
                        0.0
                    },
                    if over { "  GROWTH OVER LIMIT" } else { "" }
                )
            }
            (Some(a), b) => {
                let over = max_growth.is_some() && b.is_none() && a.is_some();
                fail |= over;
                format!(
                    "  {:<28} {} -> {}{}",
                    e.name,
                    fmt_opt(a),
                    fmt_opt(b),
                    if over { "  NOW UNBOUNDED" } else { "" }
                )
            }
        };
        s.push_str(&line);
        s.push('\n');
    }
    Ok((s, fail))
}
