//! Replays the committed fuzz corpus (igvm-build/fuzz/corpus/<target>/)
//! through the same target functions `make fuzz` runs, on stable: every
//! input that once found new coverage stays a regression test.

#[path = "../fuzz/src/lib.rs"]
mod targets;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    svsm_testkit::replay_corpus(&dir, f);
}

#[test]
fn igvm_corpus() {
    replay("igvm", targets::igvm);
}

#[test]
fn elf_corpus() {
    replay("elf", targets::elf);
}
