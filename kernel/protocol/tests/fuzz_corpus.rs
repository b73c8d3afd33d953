//! Replays the committed fuzz corpus (kernel/protocol/fuzz/corpus/<target>/)
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
fn request_corpus() {
    replay("request", targets::request);
}

#[test]
fn pvalidate_corpus() {
    replay("pvalidate", targets::pvalidate);
}

#[test]
fn vcpu_corpus() {
    replay("vcpu", targets::vcpu);
}
