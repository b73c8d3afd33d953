//! The kernel's layering, checked on its sources: a module of the binary
//! refers (`crate::<module>`) only to modules of lower rank (docs/kernel.md).

/// Rank of each top-level module of the binary; higher ranks sit above.
const RANKS: &[(&str, u8)] = &[
    ("arch", 0),
    ("bootinfo", 1),
    ("serial", 1),
    ("cpu", 2),
    ("mm", 2),
    ("platform", 2),
    ("stacks", 3),
    ("backtrace", 4),
    ("task", 4),
    ("guest", 4),
    ("fault", 5),
    ("ap", 6),
    ("main", 7),
    ("testcases", 7),
];

/// The library's own modules: pure, below everything, and never `crate::`
/// into the binary (they cannot: it is another crate).
const LIB_FILES: &[&str] = &[
    "lib",
    "cmdline",
    "platform_choice",
    "smp_policy",
    "vectors",
    "vmexit",
    "guest_pages",
    "layering",
];

fn rank(module: &str) -> Option<u8> {
    RANKS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

/// The module a `crate::` path names (`println!`/`print!` live in `serial`).
fn target(path_rest: &str) -> String {
    let ident: String = path_rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    match ident.as_str() {
        "println" | "print" => "serial".into(),
        _ => ident,
    }
}

/// Every (module, referenced module, line) in `text` that runs upward or sideways.
fn violations(module: &str, text: &str) -> Vec<(String, String)> {
    let own = rank(module).unwrap_or_else(|| panic!("module {module} has no rank"));
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let t = target(&line[i + "crate::".len()..]);
            if t == module {
                continue;
            }
            match rank(&t) {
                Some(r) if r < own => {}
                Some(_) => out.push((t, line.trim().to_string())),
                None => {} // `$crate::` in macros, or items of main.rs
            }
        }
    }
    out
}

#[test]
fn imports_run_downward() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    let mut bad = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            if LIB_FILES.contains(&module.as_str()) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (to, line) in violations(&module, &text) {
                bad.push(format!("{}: {module} -> {to}: {line}", rel.display()));
            }
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "only {checked} files found under {}",
        src.display()
    );
    assert!(
        bad.is_empty(),
        "imports running upward:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    let v = violations(
        "mm",
        "use crate::stacks::alloc;\n// crate::fault in a comment\n",
    );
    assert_eq!(
        v,
        [(
            "stacks".to_string(),
            "use crate::stacks::alloc;".to_string()
        )]
    );
    assert!(violations("fault", "use crate::stacks;\ncrate::println!(\"x\");").is_empty());
    assert_eq!(
        violations("cpu", "crate::mm::paging::init();").len(),
        1,
        "sideways"
    );
}
