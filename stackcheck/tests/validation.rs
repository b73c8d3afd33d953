//! Validation against independent ground truth:
//! (a) rustc `-Z emit-stack-sizes` on a Rust fixture (CFI and no-CFI builds),
//! (b) gcc `-fstack-usage` on a C fixture (CFI and no-CFI builds),
//! (c) hand-built call graphs with known worst paths.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use stackcheck::analysis::{self, Status};
use stackcheck::config::Config;
use stackcheck::graph::FrameSource;

fn build_rust_fixture(unwind: bool) -> PathBuf {
    let variant = if unwind { "cfi" } else { "nocfi" };
    let target_dir = tmp(&format!("rust-fixture-{variant}"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(fixtures().join("rust-stack-sizes"))
        .args(["build", "--release", "--target", "x86_64-unknown-none"])
        // Test-only use of -Z on the pinned stable toolchain.
        .env("RUSTC_BOOTSTRAP", "1")
        .env(
            "RUSTFLAGS",
            format!(
                "-Z emit-stack-sizes -C force-unwind-tables={}",
                if unwind { "yes" } else { "no" }
            ),
        )
        .env("CARGO_TARGET_DIR", &target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    run(&mut c);
    target_dir.join("x86_64-unknown-none/release/stackcheck-rust-fixture")
}

fn check_rust(unwind: bool) {
    let elf = build_rust_fixture(unwind);
    let data = std::fs::read(&elf).unwrap();
    let truth = stack_sizes(&data);
    assert!(truth.len() >= 10, "fixture too small: {truth:?}");
    let a = analysis::analyze_image(&data, &Config::default(), "main", true).unwrap();
    let mut checked = 0;
    let mut saw_probe = false;
    for (&addr, &size) in &truth {
        let fi = a
            .img
            .function_at(addr)
            .unwrap_or_else(|| panic!("no function at {addr:#x}"));
        let f = &a.img.functions[fi];
        let want = size + 8;
        assert_eq!(
            a.bounds.frames[fi].as_ref().ok(),
            Some(&want),
            "{} (source {:?})",
            f.demangled,
            a.bounds.sources[fi]
        );
        if unwind {
            assert!(
                matches!(
                    a.bounds.sources[fi],
                    FrameSource::Cfi | FrameSource::CfiAndCode
                ),
                "{} sized by {:?}",
                f.demangled,
                a.bounds.sources[fi]
            );
        } else {
            assert_eq!(a.bounds.sources[fi], FrameSource::Code, "{}", f.demangled);
        }
        // The machine-code analysis must agree on its own as well.
        let code = a.graph.funcs[fi]
            .code_frame
            .clone()
            .expect("code analysis ran");
        assert_eq!(
            code.as_ref().ok(),
            Some(&want),
            "machine code size of {}",
            f.demangled
        );
        saw_probe |= size > 65536;
        checked += 1;
    }
    assert!(
        saw_probe,
        "the 70 KiB frame (inline probe loop) must be covered"
    );
    assert_eq!(checked, truth.len());
}

#[test]
fn rust_stack_sizes_match_cfi() {
    check_rust(true);
}

#[test]
fn rust_stack_sizes_match_machine_code_without_cfi() {
    check_rust(false);
}

/// gcc `.su` lines: `file:line:col:name<TAB>size<TAB>qualifier`.
fn parse_su(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split('\t');
            let loc = parts.next()?;
            let size = parts.next()?.parse().ok()?;
            let name = loc.rsplit(':').next()?.to_string();
            Some((name, size))
        })
        .collect()
}

fn check_c(unwind: bool) {
    let variant = if unwind { "cfi" } else { "nocfi" };
    let dir = tmp(&format!("c-{variant}"));
    let obj = dir.join("frames.o");
    let mut c = Command::new("gcc");
    c.args([
        "-O2",
        "-mno-red-zone",
        "-fstack-usage",
        "-ffreestanding",
        "-fno-stack-protector",
        "-fno-pie",
        "-fcf-protection=none",
    ]);
    if unwind {
        c.arg("-g");
    } else {
        // No -g either: gcc would emit .debug_frame instead.
        c.args([
            "-g0",
            "-fno-asynchronous-unwind-tables",
            "-fno-unwind-tables",
        ]);
    }
    c.arg("-c")
        .arg(fixtures().join("c/frames.c"))
        .arg("-o")
        .arg(&obj);
    run(&mut c);
    let exe = dir.join("frames");
    gcc_link(&[obj], &exe, &[]);
    let su =
        parse_su(&std::fs::read_to_string(dir.join("frames.su")).expect("gcc wrote frames.su"));
    assert!(su.len() >= 10, "{su:?}");
    let data = std::fs::read(&exe).unwrap();
    let a = analysis::analyze_image(&data, &Config::default(), "main", true).unwrap();
    for (name, &size) in &su {
        let fi = a
            .img
            .lookup(name)
            .unwrap_or_else(|| panic!("{name} not in ELF"));
        assert_eq!(
            a.bounds.frames[fi].as_ref().ok(),
            Some(&size),
            "{name} ({variant})"
        );
        let code = a.graph.funcs[fi].code_frame.clone().unwrap();
        assert_eq!(
            code.ok(),
            Some(size),
            "machine code size of {name} ({variant})"
        );
        let want_src = if unwind {
            FrameSource::Cfi
        } else {
            FrameSource::Code
        };
        assert_eq!(a.bounds.sources[fi], want_src, "{name}");
    }
}

#[test]
fn c_stack_usage_matches_cfi() {
    check_c(true);
}

#[test]
fn c_stack_usage_matches_machine_code_without_cfi() {
    check_c(false);
}

// ---- (c) hand-built call graphs ----

fn bound_of(elf: &Path, cfg_text: &str) -> analysis::EntryReport {
    let cfg = Config::parse(cfg_text, "test").unwrap();
    let mut paths = BTreeMap::new();
    paths.insert("main".to_string(), elf.to_path_buf());
    let r = analysis::run(&cfg, &paths).unwrap();
    assert_eq!(r.entries.len(), 1);
    r.entries[0].clone()
}

fn entry_cfg(symbol: &str, extra: &str) -> String {
    format!(
        "[[entry]]\nname = \"e\"\nsymbol = \"{symbol}\"\nstack = \"s\"\nbudget = 100000\n{extra}"
    )
}

#[test]
fn graph_tail_calls_and_fallthrough() {
    let elf = graph_fixture("tail");
    let e = bound_of(&elf, &entry_cfg("ta_entry", ""));
    assert_eq!(e.status, Status::Ok);
    assert_eq!(e.bound, Some(128));
    let names: Vec<&str> = e.worst_path.iter().map(|s| s.function.as_str()).collect();
    assert_eq!(names, ["ta_entry", "ta_mid", "ta_big", "ta_next"]);
    assert_eq!(e.worst_path[1].kind.as_deref(), Some("tail"));
    assert_eq!(e.worst_path[2].kind.as_deref(), Some("fallthrough"));
}

#[test]
fn graph_got_calls_and_large_move() {
    let elf = graph_fixture("got");
    let cfg = Config::parse(&entry_cfg("gb_entry", ""), "test").unwrap();
    let mut paths = BTreeMap::new();
    paths.insert("main".to_string(), elf.clone());
    let r = analysis::run(&cfg, &paths).unwrap();
    let e = &r.entries[0];
    assert_eq!(e.bound, Some(224));
    assert_eq!(
        e.worst_path[0].resolution.as_deref(),
        Some("slot"),
        "call must go through the GOT"
    );
    assert_eq!(e.worst_path[1].function, "gb_leaf");
    // memcpy(4096) is reported with its source line; memset(100) is below the threshold.
    assert_eq!(r.large_moves.len(), 1, "{:?}", r.large_moves);
    let m = &r.large_moves[0];
    assert_eq!(
        (m.callee.as_str(), m.size, m.function.as_str()),
        ("memcpy", 4096, "gb_copy")
    );
    assert!(
        m.file.as_deref().is_some_and(|f| f.ends_with("got.S")),
        "{m:?}"
    );
    assert!(m.line.is_some_and(|l| l > 0));
    assert!(!m.onto_stack, "rdi is not a frame address: {m:?}");
    // A lower threshold also reports the memset.
    let cfg2 = Config::parse(
        &format!(
            "[thresholds]\nlarge_move = 64\n{}",
            entry_cfg("gb_entry", "")
        ),
        "t",
    )
    .unwrap();
    let r2 = analysis::run(&cfg2, &paths).unwrap();
    assert_eq!(r2.large_moves.len(), 2);
    let memset = r2
        .large_moves
        .iter()
        .find(|m| m.callee == "memset")
        .unwrap();
    assert!(memset.onto_stack, "lea (%rsp), %rdi: {memset:?}");
}

#[test]
fn graph_recursion_needs_annotation() {
    let elf = graph_fixture("recursion");
    let e = bound_of(&elf, &entry_cfg("rc_entry", ""));
    assert_eq!(e.status, Status::Unbounded);
    assert!(
        e.issues
            .iter()
            .any(|i| i.kind == "recursion" && i.function == "rc_rec"),
        "{:?}",
        e.issues
    );
    let e = bound_of(
        &elf,
        &format!(
            "{}\n[[recursion]]\nfunctions = [\"rc_rec\"]\nmax_depth = 10\n",
            entry_cfg("rc_entry", "")
        ),
    );
    assert_eq!(e.status, Status::Ok);
    assert_eq!(e.bound, Some(568));
    let e = bound_of(
        &elf,
        &format!(
            "{}\n[[recursion]]\nfunctions = [\"rc_*\"]\nmax_depth = 1\n",
            entry_cfg("rc_entry", "")
        ),
    );
    assert_eq!(e.bound, Some(16 + 120));
}

#[test]
fn graph_indirect_calls() {
    let elf = graph_fixture("indirect");
    let with = |analysis: &str, extra: &str| {
        bound_of(
            &elf,
            &format!(
                "[analysis]\n{analysis}\n{}\n{extra}",
                entry_cfg("id_entry", "")
            ),
        )
    };
    let e = with("indirect = \"none\"", "");
    assert_eq!(e.status, Status::Unbounded);
    let sites: Vec<&str> = e
        .issues
        .iter()
        .filter(|i| i.kind == "unresolved-indirect")
        .map(|i| i.function.as_str())
        .collect();
    assert_eq!(
        sites,
        ["id_entry", "id_vcall"],
        "id_lea's call is resolved from the lea"
    );
    assert_eq!(with("indirect = \"address-taken\"", "").bound, Some(128));
    assert_eq!(with("indirect = \"vtable\"", "").bound, Some(120));
    let ann = "[[indirect]]\ncaller = \"id_entry\"\ntargets = [\"id_a\"]\n";
    assert_eq!(with("indirect = \"vtable\"", ann).bound, Some(80));
    let ann2 =
        format!("{ann}[[indirect]]\ncaller = \"id_vcall\"\noffset = 0\ntargets = [\"id_v1\"]\n");
    assert_eq!(with("indirect = \"none\"", &ann2).bound, Some(16 + 8 + 40));
    // An annotation at the wrong offset does not cover the site.
    let ann3 =
        format!("{ann}[[indirect]]\ncaller = \"id_vcall\"\noffset = 1\ntargets = [\"id_v1\"]\n");
    assert_eq!(with("indirect = \"none\"", &ann3).status, Status::Unbounded);
}

#[test]
fn graph_unsized_asm_needs_annotation() {
    let elf = graph_fixture("unsized");
    let e = bound_of(&elf, &entry_cfg("un_entry", ""));
    assert_eq!(e.status, Status::Unbounded);
    assert!(
        e.issues
            .iter()
            .any(|i| i.kind == "unknown-frame" && i.function == "un_dyn")
    );
    let e = bound_of(
        &elf,
        &format!(
            "{}\n[[frame]]\nsymbol = \"un_dyn\"\nsize = 4104\n",
            entry_cfg("un_entry", "")
        ),
    );
    assert_eq!(e.bound, Some(4120));
}

#[test]
fn entry_bytes_nesting_and_budget() {
    let elf = graph_fixture("tail");
    // An interrupt handler (cpu_pushed 48 instead of the return address)
    // nested on a task entry's stack.
    let cfg = r#"
[stacks.task]
size = 4096
[[entry]]
name = "task"
symbol = "ta_entry"
stack = "task"
budget = 4096
nested = ["irq"]
[[entry]]
name = "irq"
symbol = "ta_leaf"
stack = "task"
budget = 100
cpu_pushed = 48
"#;
    let cfgp = Config::parse(cfg, "t").unwrap();
    let mut paths = BTreeMap::new();
    paths.insert("main".to_string(), elf.clone());
    let r = analysis::run(&cfgp, &paths).unwrap();
    let task = r.entries.iter().find(|e| e.name == "task").unwrap();
    let irq = r.entries.iter().find(|e| e.name == "irq").unwrap();
    assert_eq!(irq.bound, Some(48 - 8 + 48));
    assert_eq!(task.own_bound, Some(128));
    assert_eq!(task.bound, Some(128 + 88));
    assert_eq!(task.headroom, Some(4096 - 216));
    assert!(r.ok);
    // Flame graph input: the host's path and the nested entry on top of it;
    // the widths under the host root add up to its total bound.
    let lines = stackcheck::report::collapsed(&r);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("task [task];[nested] irq;ta_leaf ")),
        "{lines:?}"
    );
    let total: u64 = lines
        .iter()
        .filter(|l| l.starts_with("task [task];"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 216, "{lines:?}");
    // Budget exceeded.
    let r = analysis::run(
        &Config::parse(&cfg.replace("budget = 4096", "budget = 200"), "t").unwrap(),
        &paths,
    )
    .unwrap();
    assert!(!r.ok);
    assert_eq!(r.entries[0].status, Status::OverBudget);
}

#[test]
fn graph_exception_entry_with_signal_frame_cfi() {
    let elf = graph_fixture("exc");
    // On an IST stack: exactly the CPU frame (48 with error code).
    let e = bound_of(&elf, &entry_cfg("ex_stub14", "cpu_pushed = 48"));
    assert_eq!(e.bound, Some(200));
    let names: Vec<&str> = e.worst_path.iter().map(|s| s.function.as_str()).collect();
    assert_eq!(names, ["ex_stub14", "ex_common", "ex_dispatch"]);
    assert_eq!(e.worst_path[1].stack_at_entry, 56);
    assert_eq!(e.worst_path[2].stack_at_entry, 184);
    // On an interrupted stack: up to 8 bytes of alignment before the frame.
    let e = bound_of(&elf, &entry_cfg("ex_stub14", "cpu_pushed = 56"));
    assert_eq!(e.bound, Some(208));
}

#[test]
fn graph_register_calls_and_noreturn() {
    let elf = graph_fixture("regs");
    let e = bound_of(
        &elf,
        &format!(
            "[analysis]\nindirect = \"none\"\n{}",
            entry_cfg("rg_entry", "")
        ),
    );
    assert_eq!(e.status, Status::Ok, "{:?}", e.issues);
    assert_eq!(e.bound, Some(64));
    assert_eq!(e.worst_path[0].resolution.as_deref(), Some("slot"));
    assert_eq!(e.worst_path[1].function, "rg_leaf");
    let e = bound_of(
        &elf,
        &format!(
            "[analysis]\nindirect = \"none\"\n{}",
            entry_cfg("rg_many", "")
        ),
    );
    assert_eq!(
        (e.status, e.bound),
        (Status::Ok, Some(64)),
        "{:?}",
        e.issues
    );
}

#[test]
fn stale_indirect_annotation_is_unbounded() {
    let elf = graph_fixture("indirect");
    let cfg = format!(
        "[analysis]\nindirect = \"none\"\n{}\n[[indirect]]\ncaller = \"id_*\"\ntargets = [\"no_such_function\"]\n",
        entry_cfg("id_entry", "")
    );
    let e = bound_of(&elf, &cfg);
    assert_eq!(e.status, Status::Unbounded);
    assert!(
        e.issues.iter().any(|i| i.kind == "stale-annotation"),
        "{:?}",
        e.issues
    );
    // `exclude` removes targets.
    let cfg = format!(
        "[analysis]\nindirect = \"none\"\n{}\n[[indirect]]\ncaller = \"id_*\"\ntargets = [\"id_*\"]\nexclude = [\"id_b\", \"id_entry\", \"id_vcall\", \"id_lea\"]\n",
        entry_cfg("id_entry", "")
    );
    // Both sites -> {id_a, id_v1, id_v2} (max frame 56): id_vcall = 8 + 56,
    // id_entry = max(16 + 56, 16 + B(id_vcall)) = 16 + 64.
    assert_eq!(bound_of(&elf, &cfg).bound, Some(80));
}

#[test]
fn line_index_agrees_with_addr2line() {
    // The fast aranges-based lookup used for reports must give the same
    // file:line as addr2line's full context, on gcc and rustc DWARF.
    let c = tmp("lines-c");
    let obj = c.join("frames.o");
    run(Command::new("gcc")
        .args([
            "-O2",
            "-g",
            "-ffreestanding",
            "-fno-stack-protector",
            "-fno-pie",
            "-c",
        ])
        .arg(fixtures().join("c/frames.c"))
        .arg("-o")
        .arg(&obj));
    let exe = c.join("frames");
    gcc_link(&[obj], &exe, &[]);
    let obj2 = c.join("inline.o");
    run(Command::new("gcc")
        .args([
            "-O2",
            "-g",
            "-ffreestanding",
            "-fno-stack-protector",
            "-fno-pie",
            "-c",
        ])
        .arg(fixtures().join("graphs/inline.c"))
        .arg("-o")
        .arg(&obj2));
    let exe2 = c.join("inline");
    gcc_link(&[obj2], &exe2, &[]);
    let mut checked = 0;
    let mut inlined = 0;
    for elf in [exe, exe2, graph_fixture("got")] {
        let data = std::fs::read(&elf).unwrap();
        let img = stackcheck::elf::Image::parse(&data).unwrap();
        let full = stackcheck::dwarf::Lines::new(&img);
        let fast = stackcheck::dwarf::LineIndex::new(&data);
        for f in &img.functions {
            for addr in f.addr..f.end() {
                assert_eq!(
                    fast.location(addr),
                    full.location(addr),
                    "{} at {addr:#x}",
                    f.demangled
                );
                // The inline chain (row, then each call site outwards) too.
                let want: Vec<(String, u32)> = full
                    .frames(addr)
                    .into_iter()
                    .filter_map(|fr| Some((fr.file?, fr.line.unwrap_or(0))))
                    .collect();
                assert_eq!(fast.chain(addr), want, "{} at {addr:#x}", f.demangled);
                inlined += usize::from(want.len() > 1);
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "{checked}");
    assert!(
        inlined > 10,
        "the inline fixture must exercise inlined frames: {inlined}"
    );
}

#[test]
fn entry_without_return_address() {
    // Jumped to on a fresh stack (cpu_pushed = 0): no return address below
    // the first frame, so the bound is 8 less and the path starts at 0.
    let elf = graph_fixture("tail");
    let e = bound_of(&elf, &entry_cfg("ta_entry", "cpu_pushed = 0"));
    assert_eq!(e.bound, Some(120));
    assert_eq!(e.worst_path[0].stack_at_entry, 0);
    assert_eq!(e.worst_path[1].stack_at_entry, 32);
}
