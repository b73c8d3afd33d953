//! Replays the committed fuzz corpus (stackcheck/fuzz/corpus/<target>/)
//! through the same target functions `make fuzz` runs, on stable: every
//! input that once found new coverage stays a regression test.

#[path = "../fuzz/src/lib.rs"]
mod targets;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    for p in &files {
        f(&std::fs::read(p).expect("read corpus file"));
    }
}

#[test]
fn elf_corpus() {
    replay("elf", targets::elf);
}

#[test]
fn config_corpus() {
    replay("config", targets::config);
}

#[test]
fn log_corpus() {
    replay("log", targets::log);
}
