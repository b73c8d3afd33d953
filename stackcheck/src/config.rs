//! The TOML configuration (see docs/stackcheck.md). Unknown keys are errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Deserialize;

use crate::bail_input;

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Named ELF images: `[images.kernel] path = "..."`.
    #[serde(default)]
    pub images: BTreeMap<String, ImageCfg>,
    /// Named stacks with their sizes.
    #[serde(default)]
    pub stacks: BTreeMap<String, StackCfg>,
    #[serde(default)]
    pub thresholds: Thresholds,
    #[serde(default)]
    pub analysis: AnalysisCfg,
    #[serde(default, rename = "entry")]
    pub entries: Vec<EntryCfg>,
    #[serde(default)]
    pub recursion: Vec<RecursionCfg>,
    #[serde(default)]
    pub indirect: Vec<IndirectCfg>,
    #[serde(default)]
    pub frame: Vec<FrameCfg>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct ImageCfg {
    /// Path relative to the config file's directory.
    pub path: PathBuf,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct StackCfg {
    /// Usable size of the stack in bytes.
    pub size: u64,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// memcpy/memmove/memset calls with a constant size >= this are reported.
    #[serde(default = "default_threshold")]
    pub large_move: u64,
    /// Functions whose own frame is >= this are reported.
    #[serde(default = "default_threshold")]
    pub large_frame: u64,
}

fn default_threshold() -> u64 {
    512
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            large_move: 512,
            large_frame: 512,
        }
    }
}

/// How unannotated indirect calls are resolved.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IndirectPolicy {
    /// Never: every unannotated indirect call makes its entries unbounded.
    None,
    /// Any address-taken function may be the callee.
    AddressTaken,
    /// `call [reg+disp]` goes to the functions found at `disp` in vtables
    /// (falling back to address-taken when no vtable has that slot);
    /// other forms as address-taken.
    #[default]
    Vtable,
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct AnalysisCfg {
    #[serde(default)]
    pub indirect: IndirectPolicy,
    /// Functions (globs) never called indirectly although their address is
    /// taken (e.g. exception stubs whose addresses go into the IDT).
    #[serde(default)]
    pub not_callable: Vec<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct EntryCfg {
    /// Unique name of the entry point.
    pub name: String,
    /// Image name (key of `[images]`); optional when there is one image.
    #[serde(default)]
    pub image: Option<String>,
    /// Symbol (raw or demangled) where execution starts.
    pub symbol: String,
    /// Stack it runs on (key of `[stacks]`).
    pub stack: String,
    /// Maximum allowed depth in bytes, including nested entries.
    pub budget: u64,
    /// Bytes the CPU pushes on entry (interrupt frame, error code, alignment).
    /// When set it replaces the 8-byte return address of a called function;
    /// use 0 for code entered by a jump.
    #[serde(default)]
    pub cpu_pushed: Option<u64>,
    /// Entries (names) that can interrupt this one on the same stack; the
    /// deepest of them is added to this entry's bound.
    #[serde(default)]
    pub nested: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RecursionCfg {
    #[serde(default)]
    pub image: Option<String>,
    /// Members of the recursive cycle (globs on raw or demangled names); an
    /// annotation applies to every cycle containing a matching function.
    pub functions: Vec<String>,
    /// Maximum number of simultaneously active frames of the named
    /// functions (together).
    pub max_depth: u64,
    /// Guarded re-entry: when a named function is entered while an
    /// activation of it is already live, it calls only these functions
    /// (globs), e.g. a panic handler whose nested-panic path only writes a
    /// fixed line. Absent: every call is possible on re-entry too.
    #[serde(default)]
    pub reentry: Option<Vec<String>>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct IndirectCfg {
    #[serde(default)]
    pub image: Option<String>,
    /// Function containing the indirect call (glob on raw or demangled name).
    pub caller: String,
    /// Optional offset of the call instruction from the caller's start;
    /// without it the annotation covers every indirect call in the caller.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Possible callees (globs). Empty (and no `trait`): the call never
    /// happens (or runs on another stack, checked as its own entry).
    #[serde(default)]
    pub targets: Vec<String>,
    /// The traits of the `dyn` objects called through (`call
    /// [vtable+disp]`): the callees are the functions at `disp` of those
    /// traits' vtables (and of vtables whose trait is unknown), plus
    /// `targets`. Other indirect calls of the caller get `targets` only
    /// (and are unresolved when it is empty).
    #[serde(default)]
    pub traits: Vec<String>,
    /// Functions (globs) removed from `targets`.
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct FrameCfg {
    #[serde(default)]
    pub image: Option<String>,
    /// Function (glob) whose frame size is given here.
    pub symbol: String,
    /// Frame size in bytes including the return address.
    pub size: u64,
    #[serde(default)]
    pub reason: Option<String>,
}

impl Config {
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let cfg: Config = match toml::from_str(text) {
            Ok(c) => c,
            Err(e) => bail_input!("invalid config {origin}: {e}"),
        };
        cfg.validate(origin)?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => bail_input!("cannot read config {}: {e}", path.display()),
        };
        Self::parse(&text, &path.display().to_string())
    }

    fn validate(&self, origin: &str) -> Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for e in &self.entries {
            if !names.insert(e.name.as_str()) {
                bail_input!("invalid config {origin}: duplicate entry name `{}`", e.name);
            }
            if !self.stacks.is_empty() && !self.stacks.contains_key(&e.stack) {
                bail_input!(
                    "invalid config {origin}: entry `{}` uses undefined stack `{}`",
                    e.name,
                    e.stack
                );
            }
            if let Some(img) = &e.image
                && !self.images.is_empty()
                && !self.images.contains_key(img)
            {
                bail_input!(
                    "invalid config {origin}: entry `{}` uses undefined image `{img}`",
                    e.name
                );
            }
            if e.image.is_none() && self.images.len() > 1 {
                bail_input!(
                    "invalid config {origin}: entry `{}` must name its image (several are defined)",
                    e.name
                );
            }
        }
        for e in &self.entries {
            for n in &e.nested {
                let Some(other) = self.entries.iter().find(|x| &x.name == n) else {
                    bail_input!(
                        "invalid config {origin}: entry `{}` nests unknown entry `{n}`",
                        e.name
                    );
                };
                if other.image != e.image {
                    bail_input!(
                        "invalid config {origin}: entry `{}` nests `{n}` from another image",
                        e.name
                    );
                }
            }
        }
        for r in &self.recursion {
            if r.max_depth == 0 || r.functions.is_empty() {
                bail_input!(
                    "invalid config {origin}: recursion annotations need functions and max_depth >= 1"
                );
            }
        }
        Ok(())
    }

    /// Entries for one image name (`None` matches entries without an image).
    pub fn image_matches(sel: &Option<String>, image: &str) -> bool {
        sel.as_deref().is_none_or(|s| s == image)
    }
}
