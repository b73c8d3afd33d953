//! Replays the committed fuzz corpus (kernel/insn/fuzz/corpus/decode/)
//! through the target function `make fuzz` runs, on stable: every input
//! that once found new coverage stays a regression test.

mod common;
mod machine;
#[path = "../fuzz/src/target.rs"]
mod target;

#[test]
fn decode_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
    svsm_testkit::replay_corpus(&dir, target::decode);
}
