//! Replays the committed fuzz corpus (kernel/apic/fuzz/corpus/registers/)
//! through the operation interpreter `make fuzz` runs, on stable.

mod common;

#[test]
fn registers_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/registers");
    svsm_testkit::replay_corpus(&dir, common::run_ops);
}
