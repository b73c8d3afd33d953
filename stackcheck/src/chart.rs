//! The stack-depth chart (SVG): every entry point's worst path, one row per
//! frame, on one byte scale shared by all entries, so that bar lengths
//! compare across entries. Names sit in their own column at a fixed size and
//! are shortened from the left (full name in the tooltip), never clipped by
//! a narrow bar as in a flame graph.

use std::fmt::Write as _;

use crate::analysis::{EntryReport, Report, Status};
use crate::report::budget_str;

/// Rendered width in pixels; the chart is meant to be read at this size.
pub const WIDTH: u32 = 1200;
/// Font size of every label, in pixels.
pub const FONT: u32 = 12;
const ROW: u32 = 18;
const LABEL_COL: u32 = 560;
const BAR_X: u32 = LABEL_COL + 10;
const BAR_W: u32 = WIDTH - BAR_X - 20;
const TOP: u32 = 56;
/// Longest label, in characters, that fits the label column at [`FONT`] in
/// a monospace font (0.6 em per character).
pub const MAX_LABEL: usize = (LABEL_COL as usize * 10) / (FONT as usize * 6);

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Drops generic arguments and leading path segments until `name` fits in
/// `max` characters; the end (the function itself) is kept.
pub fn short_name(name: &str, max: usize) -> String {
    let name = qualified_self(name);
    let mut out = String::new();
    let mut depth = 0usize;
    for c in name.chars() {
        match c {
            '<' => {
                if depth == 0 {
                    out.push_str("<…>");
                }
                depth += 1;
            }
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    let mut parts: Vec<&str> = out.split("::").collect();
    while parts.len() > 1 && parts.join("::").chars().count() > max {
        parts.remove(0);
    }
    let s = parts.join("::");
    let n = s.chars().count();
    if n <= max {
        s
    } else {
        let tail: String = s.chars().skip(n - (max - 1)).collect();
        format!("…{tail}")
    }
}

/// `<a::b::Type<T> as c::Trait>::f` and `<a::b::Type<T>>::f` become
/// `Type::f`: the implementing type's own name, where a blanket shortening
/// would leave only `<…>::f`.
fn qualified_self(name: &str) -> std::borrow::Cow<'_, str> {
    let Some(rest) = name.strip_prefix('<') else {
        return name.into();
    };
    let mut depth = 1usize;
    let Some(end) = rest.char_indices().find_map(|(i, c)| {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            _ => {}
        }
        (depth == 0).then_some(i)
    }) else {
        return name.into();
    };
    let ty = rest[..end].split(" as ").next().unwrap_or("");
    let ty = ty.split('<').next().unwrap_or(ty);
    let ty = ty.rsplit("::").next().unwrap_or(ty);
    format!("{ty}{}", &rest[end + 1..]).into()
}

struct Canvas {
    body: String,
    y: u32,
    scale: f64,
}

impl Canvas {
    fn x(&self, bytes: u64) -> f64 {
        BAR_X as f64 + bytes as f64 * self.scale
    }

    fn text(&mut self, x: u32, class: &str, text: &str, title: &str) {
        let _ = writeln!(
            self.body,
            "<text x=\"{x}\" y=\"{}\" class=\"{class}\"><title>{}</title>{}</text>",
            self.y + ROW - 5,
            esc(title),
            esc(text)
        );
    }

    fn entry(&mut self, e: &EntryReport) {
        let status = match e.status {
            Status::Ok => "ok",
            Status::OverBudget => "OVER BUDGET",
            Status::Unbounded => "UNBOUNDED",
        };
        let bound = e
            .bound
            .map_or_else(|| "unbounded".into(), |b| format!("{b} B"));
        let head = format!(
            "{} [{}]: {bound}, budget {}, {status}",
            e.name,
            e.stack,
            budget_str(e.budget)
        );
        let full = format!("{} ({}) image {}", head, e.symbol, e.image);
        self.text(4, "entry", &short_name(&head, MAX_LABEL), &full);
        if e.budget != u64::MAX {
            let bx = self.x(e.budget);
            let _ = writeln!(
                self.body,
                "<line x1=\"{bx:.1}\" y1=\"{}\" x2=\"{bx:.1}\" y2=\"{}\" class=\"budget\"/>",
                self.y,
                self.y + ROW * (e.worst_path.len() as u32 + 1)
            );
        }
        self.y += ROW;
        let base = e.worst_path.first().map_or(0, |s| s.stack_at_entry);
        for s in &e.worst_path {
            let used = s.stack_at_entry.saturating_sub(base);
            let label = format!("  {}", short_name(&s.function, MAX_LABEL - 2));
            let tip = format!(
                "{}: frame {} B, {} B in use at entry",
                s.function, s.frame, s.stack_at_entry
            );
            self.text(4, "frame", &label, &tip);
            let (x, w) = (self.x(used), (s.frame as f64 * self.scale).max(1.0));
            let class = if e.status == Status::Ok {
                "bar"
            } else {
                "bar over"
            };
            let _ = writeln!(
                self.body,
                "<rect x=\"{x:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" class=\"{class}\"><title>{}</title></rect>",
                self.y + 2,
                ROW - 4,
                esc(&tip)
            );
            self.y += ROW;
        }
        if e.worst_path.is_empty()
            && let Some(i) = e.issues.first()
        {
            let t = format!("  {}: {} at {}", i.kind, i.function, i.address);
            self.text(4, "frame", &short_name(&t, MAX_LABEL), &i.detail);
            self.y += ROW;
        }
        self.y += ROW / 2;
    }
}

/// The chart of `r`'s entries.
pub fn svg(r: &Report) -> String {
    let max = r
        .entries
        .iter()
        .flat_map(|e| [e.bound, Some(e.budget).filter(|&b| b != u64::MAX)])
        .flatten()
        .max()
        .unwrap_or(0)
        .max(1);
    let mut c = Canvas {
        body: String::new(),
        y: TOP,
        scale: BAR_W as f64 / max as f64,
    };
    for e in &r.entries {
        c.entry(e);
    }
    if r.entries.is_empty() {
        c.text(4, "entry", "no entry points", "");
        c.y += ROW;
    }
    let height = c.y + ROW;
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\">\n<style>text {{ font-family: monospace; font-size: {FONT}px; fill: #000; }} .entry {{ font-weight: bold; }} .bar {{ fill: #e8913a; }} .over {{ fill: #d62728; }} .budget {{ stroke: #1f77b4; stroke-width: 2; stroke-dasharray: 4 2; }} .axis {{ stroke: #888; }}</style>\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"4\" y=\"18\" class=\"entry\">stackcheck: worst stack path per entry point (bars: frames at their depth; dashed: budget)</text>"
    );
    for k in 0..=4u64 {
        let bytes = max * k / 4;
        let x = BAR_X as f64 + bytes as f64 * c.scale;
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" class=\"axis\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"{}\" class=\"tick\">{bytes} B</text>",
            TOP - 8,
            height - ROW,
            TOP - 12,
            ["start", "middle", "middle", "middle", "end"][k as usize]
        );
    }
    s.push_str(&c.body);
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::short_name;

    #[test]
    fn short_names_keep_the_function() {
        assert_eq!(
            short_name(
                "<gimli::read::op::Evaluation<R, S> as core::fmt::Debug>::fmt",
                80
            ),
            "Evaluation::fmt"
        );
        assert_eq!(
            short_name("<a::B<C>>::evaluate_internal", 80),
            "B::evaluate_internal"
        );
        assert_eq!(short_name("a::b::c", 80), "a::b::c");
        assert_eq!(
            short_name("core::ptr::drop_in_place<alloc::vec::Vec<u8>>", 80),
            "core::ptr::drop_in_place<…>"
        );
        assert_eq!(
            short_name("svsm_kernel::mm::paging::map_range", 20),
            "paging::map_range"
        );
        let s = short_name("x::an_extremely_long_function_name_that_never_fits", 20);
        assert_eq!(s.chars().count(), 20);
        assert!(s.ends_with("never_fits") && s.starts_with('…'));
    }
}
