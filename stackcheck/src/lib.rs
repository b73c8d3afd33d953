//! stackcheck: static maximum stack depth of x86_64 ELF images.
//!
//! Pipeline: [`elf::Image`] loads the ELF and its function symbols,
//! [`cfi`] reads frame sizes from `.eh_frame`/`.debug_frame`, [`mcode`]
//! sizes functions without usable CFI from their machine code, [`graph`]
//! builds the call graph with iced-x86, [`bound`] computes per-entry
//! bounds, [`report`] renders JSON/Markdown/SARIF, [`chart`] the SVG
//! stack-depth chart, [`dot`] Graphviz graphs of worst paths, and
//! [`symbolize`] maps serial-log backtraces to source lines.

pub mod analysis;
pub mod bound;
pub mod cfi;
pub mod chart;
pub mod config;
pub mod dot;
pub mod dwarf;
pub mod elf;
pub mod graph;
pub mod hwm;
pub mod mcode;
pub mod probes;
pub mod report;
pub mod symbolize;

/// Error for bad input (corrupt ELF, malformed config, usage). The binary
/// maps every such error to exit code 2.
#[derive(Debug)]
pub struct InputError(pub String);

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// Shorthand for returning an [`InputError`].
#[macro_export]
macro_rules! bail_input {
    ($($arg:tt)*) => {
        return Err(anyhow::Error::new($crate::InputError(format!($($arg)*))))
    };
}

/// Simple glob match supporting `*` (any run of characters) and `?` (one
/// byte). Works on bytes without allocating.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob() {
        assert!(glob_match("svsm_exc_*", "svsm_exc_14"));
        assert!(!glob_match("svsm_exc_*", "svsm_ex"));
        assert!(glob_match("*::fmt", "core::fmt::Display::fmt"));
        assert!(!glob_match("*::fmt", "core::fmt::write"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }
}
