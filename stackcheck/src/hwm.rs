//! Soundness check against measurement: every `STACK-HWM` line of a serial
//! log (docs/serial-formats.md) must be at most the static bound of its stack.

use std::fmt::Write as _;

use crate::analysis::Report;

/// One parsed `STACK-HWM` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hwm {
    pub kind: String,
    pub name: String,
    pub size: u64,
    pub used: u64,
}

/// Every well-formed `STACK-HWM` line, read by the parser that sits next to
/// the kernel's writer (`svsm_guards::HwmRecord`); other lines are ignored.
pub fn parse(log: &str) -> Vec<Hwm> {
    log.lines()
        .filter_map(|l| svsm_guards::HwmRecord::parse(l.trim()).ok())
        .map(|r| Hwm {
            kind: r.kind.to_string(),
            name: r.name.to_string(),
            size: r.size,
            used: r.used,
        })
        .collect()
}

/// Static bound of a stack: the deepest entry (with nesting) that runs on it.
/// `Some(None)` = some entry on it is unbounded; `None` = no entry uses it.
pub fn stack_bound(r: &Report, stack: &str) -> Option<Option<u64>> {
    let mut it = r.entries.iter().filter(|e| e.stack == stack).peekable();
    it.peek()?;
    let mut max = Some(0u64);
    for e in it {
        max = match (max, e.bound) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
    Some(max)
}

/// Compare; returns (text, all measured stacks within their static bound).
pub fn compare(r: &Report, hwms: &[Hwm]) -> (String, bool) {
    let mut s =
        String::from("stack             name                 measured    static bound  result\n");
    let mut ok = true;
    for h in hwms {
        let (bound, verdict) = match stack_bound(r, &h.kind) {
            None => (
                "-".to_string(),
                "no entry point uses this stack".to_string(),
            ),
            Some(None) => ("unbounded".to_string(), "ok (unbounded)".to_string()),
            Some(Some(b)) if h.used <= b => (
                b.to_string(),
                format!(
                    "ok ({:.0}% of bound)",
                    h.used as f64 * 100.0 / b.max(1) as f64
                ),
            ),
            Some(Some(b)) => {
                ok = false;
                (
                    b.to_string(),
                    "UNSOUND: measured use exceeds the static bound".to_string(),
                )
            }
        };
        let _ = writeln!(
            s,
            "{:<17} {:<20} {:>8}    {:>12}  {verdict}",
            h.kind, h.name, h.used, bound
        );
    }
    (s, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let log = "x\nSTACK-HWM kind=boot name=boot cpu=0 task=- size=65536 used=1234\nSTACK-HWM kind=task name=init cpu=0 task=1 size=32768 used=99\nSTACK-HWM broken\n";
        let h = parse(log);
        assert_eq!(h.len(), 2);
        assert_eq!(
            h[0],
            Hwm {
                kind: "boot".into(),
                name: "boot".into(),
                size: 65536,
                used: 1234
            }
        );
        assert_eq!(h[1].used, 99);
    }
}
