//! Regressions for sound bounds on code stackcheck was not tuned for:
//! recursion annotations that must not reach unrelated cycles, precise
//! vtable candidates by trait, jump tables, and instructions that leave the
//! image. Each fixture is built from source here.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use stackcheck::analysis::{self, EntryReport, Report, Status};
use stackcheck::config::Config;

fn run_cfg(elf: &Path, cfg_text: &str) -> Report {
    let cfg = Config::parse(cfg_text, "test").unwrap();
    let mut paths = BTreeMap::new();
    paths.insert("main".to_string(), elf.to_path_buf());
    analysis::run(&cfg, &paths).unwrap()
}

fn entry<'a>(r: &'a Report, name: &str) -> &'a EntryReport {
    r.entries.iter().find(|e| e.name == name).unwrap()
}

fn entry_cfg(name: &str, symbol: &str) -> String {
    format!("[[entry]]\nname = \"{name}\"\nsymbol = \"{symbol}\"\nstack = \"s\"\nbudget = 100000\n")
}

/// The dyn-trait fixture: frame pointers, no unwind tables (sized from the
/// machine code), `.stack_sizes` for ground truth.
fn build_dyn_fixture() -> PathBuf {
    let target_dir = tmp("rust-dyn-fixture");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(fixtures().join("rust-dyn"))
        .args(["build", "--release", "--target", "x86_64-unknown-none"])
        // Test-only use of -Z on the pinned stable toolchain.
        .env("RUSTC_BOOTSTRAP", "1")
        .env(
            "RUSTFLAGS",
            "-Z emit-stack-sizes -C force-frame-pointers=yes -C force-unwind-tables=no",
        )
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    run(&mut c);
    target_dir.join("x86_64-unknown-none/release/stackcheck-dyn-fixture")
}

const FMT_ANNOTATIONS: &str = r#"
[[recursion]]
functions = ["core::fmt::write"]
max_depth = 4

[[indirect]]
caller = "core::fmt::write"
targets = ["*::fmt"]
traits = ["core::fmt::Write"]

[[indirect]]
caller = "<core::fmt::Formatter>::*"
traits = ["core::fmt::Write"]
"#;

/// rustc's frame of the function whose demangled name contains `part`
/// (`.stack_sizes` + the return address).
fn rustc_frame(elf: &Path, part: &str) -> u64 {
    let data = std::fs::read(elf).unwrap();
    let a = analysis::analyze_image(&data, &Config::default(), "main", false).unwrap();
    let sizes = stack_sizes(&data);
    let (addr, size) = sizes
        .iter()
        .find(|(a2, _)| {
            a.img
                .function_at(**a2)
                .is_some_and(|f| a.img.functions[f].demangled.contains(part))
        })
        .unwrap_or_else(|| panic!("no .stack_sizes entry for {part}"));
    let _ = addr;
    size + 8
}

#[test]
fn fmt_annotation_does_not_bound_a_dyn_trait_recursion() {
    let elf = build_dyn_fixture();
    let base = format!(
        "{}{}",
        entry_cfg("fmt", "fmt_entry"),
        entry_cfg("dyn", "dyn_entry")
    );
    // Every vtable slot 0x18 as one candidate set (no trait annotations):
    // Big::step shares it with the Write impls, so the dyn cycle joins the
    // core::fmt component, and the core::fmt::write annotation must still
    // not bound it: both entries are unbounded, with the cycle printed.
    let r = run_cfg(
        &elf,
        &format!("{base}[[recursion]]\nfunctions = [\"core::fmt::write\"]\nmax_depth = 4\n"),
    );
    for name in ["fmt", "dyn"] {
        let e = entry(&r, name);
        assert_eq!(e.status, Status::Unbounded, "{name}: {:?}", e.bound);
        assert!(
            e.issues.iter().any(|i| i.kind == "recursion"
                && i.detail.contains("avoids every [[recursion]] annotation")
                && i.detail.contains("Step>::step")),
            "{name}: {:?}",
            e.issues
        );
    }
    let fmt_uses = &r.recursion[0];
    assert_eq!(fmt_uses.annotation, ["core::fmt::write"]);
    assert!(!fmt_uses.components[0].covers_component);

    // Formatter and core::fmt::write call through dyn Write only: the
    // core::fmt cycle separates from the dyn Step cycle. The first is
    // bounded by its annotation, the second stays unbounded.
    let r = run_cfg(&elf, &format!("{base}{FMT_ANNOTATIONS}"));
    assert_eq!(entry(&r, "fmt").status, Status::Ok);
    let d = entry(&r, "dyn");
    assert_eq!(d.status, Status::Unbounded);
    assert!(
        d.issues
            .iter()
            .any(|i| i.kind == "recursion" && i.detail.contains("Step>::step -> ")),
        "{:?}",
        d.issues
    );
    let uses = &r.recursion[0].components;
    assert_eq!(uses.len(), 1);
    assert!(uses[0].covers_component);
    let cycle = &uses[0].cycles[0];
    assert_eq!(cycle.first().map(String::as_str), Some("core::fmt::write"));
    assert_eq!(cycle.last().map(String::as_str), Some("core::fmt::write"));
    assert!(
        !uses[0].functions.iter().any(|f| f.contains("Step")),
        "{uses:?}"
    );

    // Annotating the dyn recursion bounds it; each extra level costs exactly
    // one frame of Big::step as rustc sizes it.
    let with = |n: u64| {
        let r = run_cfg(
            &elf,
            &format!(
                "{base}{FMT_ANNOTATIONS}\n[[recursion]]\nfunctions = [\"*Big*::step\"]\nmax_depth = {n}\n"
            ),
        );
        entry(&r, "dyn").bound.expect("bounded")
    };
    let step = rustc_frame(&elf, "Big as stackcheck_dyn_fixture::Step>::step");
    assert!(step > 600, "600-byte local: {step}");
    assert_eq!(with(4) - with(3), step);
    assert_eq!(with(9) - with(3), 6 * step);
}

#[test]
fn jump_table_cases_start_from_their_dispatch() {
    let elf = graph_fixture("jumptable");
    let r = run_cfg(&elf, &entry_cfg("e", "jt_entry"));
    let e = entry(&r, "e");
    assert_eq!(e.status, Status::Ok);
    assert_eq!(e.bound, Some(1096));
    let names: Vec<&str> = e.worst_path.iter().map(|s| s.function.as_str()).collect();
    assert_eq!(names, ["jt_entry", "jt_big"]);
    assert_eq!(e.worst_path[0].frame, 88);
    assert_eq!(e.worst_path[0].site_depth, Some(88));
    assert_eq!(r.images[0].indirect_sites.by_address_taken, 0);
}

#[test]
fn image_leaving_instructions_are_not_calls() {
    let elf = graph_fixture("vmexit");
    let r = run_cfg(&elf, &entry_cfg("e", "vm_entry"));
    let e = entry(&r, "e");
    assert_eq!(e.status, Status::Ok, "{:?}", e.issues);
    // push rbp, then 16 bytes pushed for the retfq and popped by it, then
    // sub 32 and the call: frame 48, bound 48 + vm_leaf's 16.
    assert_eq!(e.bound, Some(64));
    assert_eq!(e.worst_path[0].frame, 48);
    assert_eq!(e.worst_path[1].function, "vm_leaf");
    assert_eq!(r.images[0].indirect_sites.total, 0);
}
